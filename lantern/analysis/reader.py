"""The analyst's view of a Lantern database: metrics, series, replays and insights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from lantern.analysis.plots import plot_decomposition
from lantern.analysis.tables import SENSITIVITIES, events_frame, mark_sent, metric_titles
from lantern.breakdowns.read import breakdown_series
from lantern.db.session import make_engine
from lantern.detect import Decomposition, EpisodeEvent, decompose, replay_series
from lantern.detect.series import SeriesKind
from lantern.insights.expectations import expected_band
from lantern.insights.models import Insight, InsightCause
from lantern.insights.service import detected_kind, severity
from lantern.metrics.keys import label, measure, series_kind
from lantern.metrics.models import Bucket, FlagChange, Metric
from lantern.metrics.service import epoch_hour, load_hourly, load_series
from lantern.scoring import refit_hour
from lantern.workspaces.models import Source, Workspace

# An id (a Python or numpy integer, as `.metrics().index[0]` gives) or a metric's name.
MetricRef = int | np.integer[Any] | str
_NAME_ORDER = {"track": 0, "page": 1, "screen": 2, "flag": 3, "value": 4, "mean": 5}
HOUR = pd.Timedelta(hours=1)
# What the observed values of a plot are, by what an hour of the metric holds.
_UNITS = {"count": "events per hour", "sum": "sum of values per hour", "average": "average value"}


@dataclass(frozen=True)
class MetricInfo:
    """What the detector needs to know about one metric besides its series."""

    id: int
    kind: str
    name: str
    source: str
    sensitivity: str  # the workspace's setting
    first_hour: pd.Timestamp | None
    last_hour: pd.Timestamp | None

    @property
    def series_kind(self) -> SeriesKind:
        """``value`` for a real-valued sum, ``mean`` for an hourly average, else ``count``."""
        return series_kind(self.kind)


@dataclass
class Lantern:
    """A read-only view of one Lantern database."""

    engine: Engine

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    def metrics(self, source: str | None = None) -> pd.DataFrame:
        """Every metric with its source, kind, label, event count and first and last hour.

        `measure` says what an hour of the metric holds: `count` (events), `sum` or
        `average` (of the events' values); for a value or an average, `events` counts the
        events that carried a value.
        """
        query = (
            select(
                Metric.id,
                Workspace.name,
                Source.name,
                Metric.kind,
                Metric.name,
                func.coalesce(func.sum(Bucket.count), 0),
                func.min(Bucket.hour),
                func.max(Bucket.hour),
                Workspace.sensitivity,
            )
            .join(Source, Source.id == Metric.source_id)
            .join(Workspace, Workspace.id == Source.workspace_id)
            .outerjoin(Bucket, Bucket.metric_id == Metric.id)
            .group_by(
                Metric.id,
                Workspace.name,
                Source.name,
                Metric.kind,
                Metric.name,
                Workspace.sensitivity,
            )
            .order_by(Source.name, Metric.kind, Metric.name)
        )
        if source is not None:
            query = query.where(Source.name == source)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        frame = pd.DataFrame(
            rows,
            columns=[
                "id",
                "workspace",
                "source",
                "kind",
                "name",
                "events",
                "first_hour",
                "last_hour",
                "sensitivity",
            ],
        )
        frame["label"] = [label(k, n) for k, n in zip(frame["kind"], frame["name"], strict=True)]
        frame["measure"] = [measure(k) for k in frame["kind"]]
        for column in ("first_hour", "last_hour"):
            hours = pd.to_numeric(frame[column], errors="coerce").astype(float)
            frame[column] = pd.to_datetime(hours * 3600, unit="s", utc=True)
        return frame.set_index("id")

    def _infos(self, metrics: Sequence[MetricRef], table: pd.DataFrame) -> list[MetricInfo]:
        """Metrics given by id or by name (a track event before a page of the same name)."""
        ids = []
        for metric in metrics:
            if isinstance(metric, Integral) and not isinstance(metric, bool):
                if int(metric) not in table.index:
                    raise KeyError(f"no metric with id {int(metric)}; see .metrics() for the ids")
                ids.append(int(metric))
                continue
            if not isinstance(metric, str):
                raise TypeError(f"a metric is an id or a name, not {metric!r}")
            found = table[table["name"] == metric]
            if found.empty:
                raise KeyError(f"no metric named {metric!r}; see .metrics() for the names")
            ids.append(
                int(min(found.index, key=lambda i: _NAME_ORDER.get(str(found.at[i, "kind"]), 9)))
            )
        return [
            MetricInfo(
                id=i,
                kind=str(table.at[i, "kind"]),
                name=str(table.at[i, "name"]),
                source=str(table.at[i, "source"]),
                sensitivity=str(table.at[i, "sensitivity"]),
                first_hour=_stamp(table.at[i, "first_hour"]),
                last_hour=_stamp(table.at[i, "last_hour"]),
            )
            for i in ids
        ]

    def info(self, metric: MetricRef) -> MetricInfo:
        """One metric's id, kind, name, source and its workspace's sensitivity."""
        return self._infos([metric], self.metrics())[0]

    def _load(
        self, infos: Sequence[MetricInfo], *, start: Any = None, end: Any = None
    ) -> list[pd.Series]:
        """The series of several metrics, read in one query."""
        known = {i.id: (i.first_hour, i.last_hour) for i in infos if i.first_hour and i.last_hour}
        if not known:
            return [pd.Series(dtype=float, name=i.name) for i in infos]
        firsts = [first for first, _ in known.values()]
        # Up to the last closed hour: a metric gone silent shows its zeros.
        closed = pd.Timestamp.now(tz="UTC").floor("h")
        ends = [last + pd.Timedelta(hours=1) for _, last in known.values()]
        begin = _utc(start) if start is not None else min(firsts)
        stop = _utc(end) if end is not None else max([closed, *ends])
        with self.engine.connect() as connection:
            loaded = load_series(
                connection,
                metric_ids=list(known),
                start=begin,
                end=stop,
                kinds={i.id: i.kind for i in infos},
            )
        out = []
        for info in infos:
            if info.id not in loaded:
                out.append(pd.Series(dtype=float, name=info.name))
                continue
            series = loaded[info.id]
            if start is None:
                series = series[info.first_hour :]
            out.append(series.rename(info.name))
        return out

    def _support(
        self, info: MetricInfo, series: pd.Series
    ) -> tuple[pd.Series | None, pd.Series | None]:
        """An average metric's events and within-hour variances over the hours of
        ``series``, by which detection weighs its hours as the service does; None else."""
        if info.series_kind != "mean" or series.empty:
            return None, None
        with self.engine.connect() as connection:
            hourly = load_hourly(
                connection,
                metric_ids=[info.id],
                start=series.index[0],
                end=series.index[-1] + HOUR,
                kinds={info.id: info.kind},
            )
        return hourly.counts[info.id], hourly.within[info.id]

    def _replay(
        self,
        info: MetricInfo,
        series: pd.Series,
        sensitivity: str | None,
        feedback: Mapping[str, int] | None = None,
        support: tuple[pd.Series | None, pd.Series | None] | None = None,
    ) -> list[EpisodeEvent]:
        """The service's detection over a whole series, with the metric's own refit hour
        and, for an average, its hours weighed by their events (``support``, as `_support`
        gives it, when already read)."""
        if series.empty:
            return []
        counts, within = support if support is not None else self._support(info, series)
        return replay_series(
            series,
            kind=info.series_kind,
            sensitivity=(sensitivity or info.sensitivity),  # type: ignore[arg-type]
            stagger=refit_hour(info.id),
            raised=feedback,
            counts=counts,
            within=within,
        )

    def series(self, metric: MetricRef, *, start: Any = None, end: Any = None) -> pd.Series:
        """A metric's hourly series up to the last closed hour (counts zero-filled)."""
        return self._load([self.info(metric)], start=start, end=end)[0]

    def breakdown(
        self, metric: MetricRef, dimension: str, *, start: Any = None, end: Any = None
    ) -> pd.DataFrame:
        """A metric split by one dimension: hourly, one column per value ("(other)" last),
        over the metric's hours up to the last closed one unless a window is given."""
        info = self.info(metric)
        closed = pd.Timestamp.now(tz="UTC").floor("h")
        last = info.last_hour + HOUR if info.last_hour is not None else closed
        begin = _utc(start) if start is not None else (info.first_hour or closed)
        stop = _utc(end) if end is not None else max(closed, last)
        with self.engine.connect() as connection:
            return breakdown_series(
                connection, metric_id=info.id, dimension=dimension, start=begin, end=stop
            )

    def frame(self, metrics: Sequence[MetricRef], **window: Any) -> pd.DataFrame:
        """Several metrics side by side, one column each, on one hourly index."""
        table = self.metrics()
        infos = self._infos(metrics, table)
        loaded = self._load(infos, **window)
        names = [i.name for i in infos]
        titles = metric_titles(table)
        for n, info in enumerate(infos):
            if names.count(info.name) > 1:  # e.g. an event's count and its value
                loaded[n] = loaded[n].rename(titles[info.id])
        return pd.concat(loaded, axis=1)

    def replay(
        self,
        metric: MetricRef,
        *,
        sensitivity: str | None = None,
        feedback: Mapping[str, int] | None = None,
    ) -> pd.DataFrame:
        """Every episode event the detector raises on the metric's history, as a table.

        Without `sensitivity`, the workspace's setting: what the service itself ran. With
        `feedback` ({kind: settings}, e.g. ``{"spike": 1}`` after a "not useful" on a
        spike), what the team's feedback would have changed (`detect.feedback_bar`).
        """
        info = self.info(metric)
        return events_frame(self._replay(info, self._load([info])[0], sensitivity, feedback))

    def replay_alerts(
        self,
        metrics: Sequence[MetricRef] | None = None,
        *,
        source: str | None = None,
        sensitivities: Sequence[str] = SENSITIVITIES,
    ) -> pd.DataFrame:
        """The alerts the detector would have opened on each metric at each sensitivity.

        One row per alert. `sent` tells which alerts would have been a Slack message of
        their own: alerts of one source that open together in one direction are one story,
        grouped as the service groups them (`lantern.insights.service.group_and_alert`).
        """
        table = self.metrics(source=source)
        chosen = list(table.index) if metrics is None else list(metrics)
        infos = self._infos(chosen, table)
        titles = metric_titles(table)
        rows = []
        for info, series in zip(infos, self._load(infos), strict=True):
            support = self._support(info, series)
            for level in sensitivities:
                for event in self._replay(info, series, level, support=support):
                    if event.status != "opened":
                        continue
                    detection = event.detection
                    rows.append(
                        {
                            "sensitivity": level,
                            "source": info.source,
                            "metric_id": info.id,
                            "metric": info.name,
                            "metric_kind": info.kind,
                            "title": titles[info.id],
                            "at": event.at,
                            "kind": detection.kind,
                            "direction": detection.direction,
                            "start": detection.start,
                            "observed": detection.observed,
                            "expected": detection.expected,
                            "relative_change": detection.relative_change,
                            "score": detection.score,
                            "severity": severity(detection.kind, detection.relative_change),
                        }
                    )
        alerts = pd.DataFrame(rows, columns=_ALERT_COLUMNS)
        for column in ("at", "start"):
            alerts[column] = pd.to_datetime(alerts[column], utc=True)
        alerts = alerts.sort_values(["at", "metric_id", "sensitivity"], ignore_index=True)
        alerts["sent"] = mark_sent(alerts)
        return alerts

    def decompose(self, metric: MetricRef) -> Decomposition:
        """The fitted expected value, band, seasonal and trend parts of the series."""
        info = self.info(metric)
        return decompose(self._load([info])[0], kind=info.series_kind)

    def expected(self, metric: MetricRef, *, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Observed hours against what the detector expected of each when it judged it.

        Columns `observed`, `expected`, `lower`, `upper` (the band insights report), one row
        per hour up to the last closed hour (or `end`). The expectation is the one the
        hourly pass stored, as the dashboard's chart and the Slack alert's show it; hours
        without a stored row (judged before it was kept, or not yet) are replayed by the
        same detector. NaN during training.
        """
        info = self.info(metric)
        observed = self._load([info], start=start, end=end)[0]
        frame = pd.DataFrame({"observed": observed.to_numpy(dtype=float)}, index=observed.index)
        if info.first_hour is None or observed.empty:
            return frame.assign(expected=np.nan, lower=np.nan, upper=np.nan)
        with self.engine.connect() as connection:
            band = expected_band(
                connection,
                metric_id=info.id,
                metric_kind=info.kind,
                first_hour=epoch_hour(info.first_hour),
                start=observed.index[0],
                stop=observed.index[-1] + pd.Timedelta(hours=1),
                sensitivity=info.sensitivity,
            )
        for part in band:
            frame[str(part.name)] = part.to_numpy(dtype=float)
        return frame

    def plot(self, metric: MetricRef, *, sensitivity: str | None = None, days: int = 28) -> Figure:
        """Observed against what the detector expected of each hour (`expected`), the
        seasonal and trend parts of today's fit (`decompose`) below, and where the detector
        would alert at `sensitivity`."""
        info = self.info(metric)
        series = self._load([info])[0]
        fitted = decompose(series, kind=info.series_kind)
        judged = self.expected(info.id, start=series.index[0], end=series.index[-1] + HOUR)
        fitted = replace(
            fitted,
            expected=judged["expected"].rename("expected"),
            lower=judged["lower"].rename("lower"),
            upper=judged["upper"].rename("upper"),
        )
        alerts = events_frame(self._replay(info, series, sensitivity))
        return plot_decomposition(
            fitted,
            alerts,
            days=days,
            title=f"{info.name} ({label(info.kind, info.name)}, {info.source})",
            log_scale=info.series_kind == "count",
            unit=_UNITS[measure(info.kind)],
        )

    def insights(
        self,
        *,
        status: str | None = None,
        source: str | None = None,
        metric: MetricRef | None = None,
        feedback: bool = True,
    ) -> pd.DataFrame:
        """The insights the service recorded, newest first, one row each.

        `detected_as` is the kind the detector found, which `replay_alerts` gives: the
        `kind` but for a tracking break, found as an outage or a drop (see
        `lantern.insights.tracking`). `causes` lists the flag changes kept as possible
        causes, `root_cause` the line naming the breakdown values that explain the change
        ("" without one); with `feedback`, `useful` and `feedback_at` say what a reader
        answered to "was this useful?".
        """
        query = (
            select(
                Insight.id,
                Source.name,
                Insight.metric_id,
                Metric.kind,
                Metric.name,
                Insight.kind,
                Insight.direction,
                Insight.status,
                Insight.severity,
                Insight.start,
                Insight.detected_at,
                Insight.ended_at,
                Insight.observed,
                Insight.expected,
                Insight.relative_change,
                Insight.score,
                Insight.parent_id,
                Insight.useful,
                Insight.feedback_at,
                Insight.root_cause,
                Insight.fingerprint,
            )
            .join(Metric, Metric.id == Insight.metric_id)
            .join(Source, Source.id == Metric.source_id)
            .order_by(Insight.detected_at.desc(), Insight.id.desc())
        )
        if status is not None:
            query = query.where(Insight.status == status)
        if source is not None:
            query = query.where(Source.name == source)
        if metric is not None:
            query = query.where(Insight.metric_id == self.info(metric).id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
            causes = _causes(connection, [row[0] for row in rows])
        frame = pd.DataFrame(rows, columns=[*_INSIGHT_COLUMNS, "fingerprint"])
        frame.insert(
            list(frame.columns).index("kind") + 1,
            "detected_as",
            [detected_kind(key) for key in frame.pop("fingerprint")],
        )
        frame["grouped_under"] = frame["grouped_under"].astype("Int64")
        frame.insert(
            list(frame.columns).index("grouped_under") + 1,
            "causes",
            [causes.get(i, "") for i in frame["id"]],
        )
        # the line the insight's alert, card and page show (`lantern.breakdowns.rootcause`)
        lines = [(found or {}).get("text", "") for found in frame.pop("root_cause")]
        frame.insert(list(frame.columns).index("causes") + 1, "root_cause", lines)
        for column in ("start", "detected_at", "ended_at", "feedback_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        if not feedback:
            frame = frame.drop(columns=["useful", "feedback_at"])
        return frame.set_index("id")


_ALERT_COLUMNS = [
    "sensitivity",
    "source",
    "metric_id",
    "metric",
    "metric_kind",
    "title",
    "at",
    "kind",
    "direction",
    "start",
    "observed",
    "expected",
    "relative_change",
    "score",
    "severity",
]
_INSIGHT_COLUMNS = [
    "id",
    "source",
    "metric_id",
    "metric_kind",
    "metric",
    "kind",
    "direction",
    "status",
    "severity",
    "start",
    "detected_at",
    "ended_at",
    "observed",
    "expected",
    "relative_change",
    "score",
    "grouped_under",
    "useful",
    "feedback_at",
    "root_cause",
]


def _stamp(value: Any) -> pd.Timestamp | None:
    return None if pd.isna(value) else pd.Timestamp(value)


def _utc(moment: Any) -> pd.Timestamp:
    """A moment as a UTC timestamp; naive moments are taken to be UTC."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _causes(connection: Any, insight_ids: list[int]) -> dict[int, str]:
    """Each insight's possible causes, as ``flag v3→v4`` joined by ``; ``."""
    if not insight_ids:
        return {}
    rows = connection.execute(
        select(
            InsightCause.insight_id,
            FlagChange.flag_key,
            FlagChange.old_version,
            FlagChange.new_version,
        )
        .join(FlagChange, FlagChange.id == InsightCause.flag_change_id)
        .where(InsightCause.insight_id.in_(insight_ids))
        .order_by(FlagChange.changed_at)
    ).all()
    out: dict[int, list[str]] = {}
    for insight_id, key, old, new in rows:
        out.setdefault(insight_id, []).append(f"{key} v{old}→v{new}")
    return {i: "; ".join(names) for i, names in out.items()}


def connect(url: str | None = None) -> Lantern:
    """A view of the database at `url` (default: the one Lantern's settings name)."""
    from lantern.config import get_settings

    url = url or get_settings().resolved_database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(str(parsed.database))
        if not path.exists():
            raise FileNotFoundError(
                f"no Lantern database at {path.resolve()}: run `lantern demo` (or "
                "`lantern serve`) first, or set LANTERN_DATABASE_URL to the service's database"
            )
    return Lantern(make_engine(url))
