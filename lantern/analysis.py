"""Lantern from a notebook: the service's series, detector and insights as pandas objects.

    from lantern.analysis import connect
    lantern = connect("sqlite:///lantern-data/lantern.db")
    lantern.metrics()                                  # one row per metric
    signups = lantern.series("Signed Up")              # hourly pandas Series
    lantern.replay("Signed Up", sensitivity="high")    # what detection would have said
    lantern.plot("Signed Up")                          # decomposition and alerts
    lantern.insights()                                 # insights as a DataFrame

Everything here reads the database the service writes and runs the same detection code
(`lantern.detect`), so a replay here is what the scheduler would have sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import Engine, func, select

from lantern.db.session import make_engine
from lantern.detect import Decomposition, EpisodeEvent, decompose, replay_series
from lantern.insights.models import Insight
from lantern.metrics.keys import is_value_kind, label
from lantern.metrics.models import Bucket, Metric
from lantern.metrics.service import hour_index, load_series
from lantern.workspaces.models import Source, Workspace

MetricRef = int | str


@dataclass
class Lantern:
    """A read-only view of one Lantern database."""

    engine: Engine

    def metrics(self, source: str | None = None) -> pd.DataFrame:
        """Every metric with its source, kind, label, event count and first and last hour."""
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
            )
            .join(Source, Source.id == Metric.source_id)
            .join(Workspace, Workspace.id == Source.workspace_id)
            .outerjoin(Bucket, Bucket.metric_id == Metric.id)
            .group_by(Metric.id, Workspace.name, Source.name, Metric.kind, Metric.name)
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
            ],
        )
        frame["label"] = [label(k, n) for k, n in zip(frame["kind"], frame["name"], strict=True)]
        for column in ("first_hour", "last_hour"):
            frame[column] = [hour_index(h) if pd.notna(h) else pd.NaT for h in frame[column]]
        return frame.set_index("id")

    def _resolve(self, metric: MetricRef) -> tuple[int, str, str]:
        """(id, kind, name) of a metric given by id or by name (track events first)."""
        table = self.metrics()
        if isinstance(metric, int):
            if metric not in table.index:
                raise KeyError(f"no metric with id {metric}")
            row = table.loc[metric]
            return metric, str(row["kind"]), str(row["name"])
        found = table[table["name"] == metric]
        if found.empty:
            raise KeyError(f"no metric named {metric!r}; see .metrics() for the names")
        order = {"track": 0, "page": 1, "screen": 2, "flag": 3, "value": 4}
        best = min(found.index, key=lambda i: order.get(str(found.loc[i, "kind"]), 9))
        return int(best), str(found.loc[best, "kind"]), str(found.loc[best, "name"])

    def series(self, metric: MetricRef, *, start: Any = None, end: Any = None) -> pd.Series:
        """A metric's hourly series up to the last closed hour (counts zero-filled)."""
        metric_id, kind, name = self._resolve(metric)
        with self.engine.connect() as connection:
            first, last = connection.execute(
                select(func.min(Bucket.hour), func.max(Bucket.hour)).where(
                    Bucket.metric_id == metric_id
                )
            ).one()
            if first is None:
                return pd.Series(dtype=float, name=name)
            begin = pd.Timestamp(start, tz="UTC") if start is not None else hour_index(first)
            # Up to the last closed hour: a metric gone silent shows its zeros.
            closed = pd.Timestamp.now(tz="UTC").floor("h")
            stop = (
                pd.Timestamp(end, tz="UTC")
                if end is not None
                else max(hour_index(last + 1), closed)
            )
            series = load_series(
                connection, metric_ids=[metric_id], start=begin, end=stop, kinds={metric_id: kind}
            )[metric_id]
        return series.rename(name)

    def frame(self, metrics: list[MetricRef], **window: Any) -> pd.DataFrame:
        """Several metrics side by side, one column each."""
        return pd.concat([self.series(m, **window) for m in metrics], axis=1)

    def _kind(self, metric: MetricRef) -> str:
        return "value" if is_value_kind(self._resolve(metric)[1]) else "count"

    def replay(self, metric: MetricRef, *, sensitivity: str = "medium") -> pd.DataFrame:
        """Every episode event the detector raises on the metric's history, as a table."""
        events = replay_series(
            self.series(metric),
            kind=self._kind(metric),  # type: ignore[arg-type]
            sensitivity=sensitivity,  # type: ignore[arg-type]
        )
        return events_frame(events)

    def decompose(self, metric: MetricRef) -> Decomposition:
        """The fitted expected value, band, seasonal and trend parts of the series."""
        return decompose(self.series(metric), kind=self._kind(metric))  # type: ignore[arg-type]

    def plot(self, metric: MetricRef, *, sensitivity: str = "medium", days: int = 28) -> Figure:
        """Observed against expected with its band, and where the detector would alert."""
        series = self.series(metric)
        fitted = decompose(series, kind=self._kind(metric))  # type: ignore[arg-type]
        alerts = self.replay(metric, sensitivity=sensitivity)
        return plot_decomposition(fitted, alerts, days=days, title=str(series.name))

    def insights(self, *, status: str | None = None) -> pd.DataFrame:
        """The insights the service recorded, newest first, one row each."""
        query = (
            select(
                Insight.id,
                Source.name,
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
                Insight.useful,
                Insight.parent_id,
            )
            .join(Metric, Metric.id == Insight.metric_id)
            .join(Source, Source.id == Metric.source_id)
            .order_by(Insight.detected_at.desc(), Insight.id.desc())
        )
        if status is not None:
            query = query.where(Insight.status == status)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        columns = [
            "id",
            "source",
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
            "useful",
            "grouped_under",
        ]
        frame = pd.DataFrame(rows, columns=columns)
        for column in ("start", "detected_at", "ended_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame.set_index("id")


def connect(url: str | None = None) -> Lantern:
    """A view of the database at `url` (default: the one Lantern's settings name)."""
    from lantern.config import get_settings

    return Lantern(make_engine(url or get_settings().resolved_database_url))


def events_frame(events: list[EpisodeEvent]) -> pd.DataFrame:
    """Episode events as a table: one row per event."""
    rows = [
        {
            "at": event.at,
            "status": event.status,
            "kind": event.detection.kind,
            "direction": event.detection.direction,
            "start": event.detection.start,
            "observed": event.detection.observed,
            "expected": event.detection.expected,
            "relative_change": event.detection.relative_change,
            "score": event.detection.score,
        }
        for event in events
    ]
    columns = [
        "at",
        "status",
        "kind",
        "direction",
        "start",
        "observed",
        "expected",
        "relative_change",
        "score",
    ]
    return pd.DataFrame(rows, columns=columns)


def plot_decomposition(
    fitted: Decomposition,
    alerts: pd.DataFrame | None = None,
    *,
    days: int = 28,
    title: str = "",
) -> Figure:
    """Observed vs expected (with band) over the last `days`, seasonal and trend below."""
    end = fitted.observed.index[-1]
    window = fitted.observed.index > end - pd.Timedelta(days=days)
    x = fitted.observed.index[window].to_pydatetime()
    figure = Figure(figsize=(11, 6))
    top, middle, bottom = figure.subplots(3, 1, sharex=True, height_ratios=[3, 1, 1])
    top.fill_between(
        x,
        fitted.lower[window],
        fitted.upper[window],
        color="#9ecae1",
        alpha=0.5,
        linewidth=0,
        label="expected range",
    )
    top.plot(
        x, fitted.expected[window], color="#3182bd", linestyle="--", linewidth=1, label="expected"
    )
    top.plot(x, fitted.observed[window], color="#222222", linewidth=1, label="observed")
    if alerts is not None and len(alerts):
        opened = alerts[
            (alerts["status"] == "opened") & (alerts["at"] > end - pd.Timedelta(days=days))
        ]
        for at in opened["at"]:
            top.axvline(
                pd.Timestamp(at).to_pydatetime(),
                color="#e6550d",
                linewidth=1.5,
            )
    top.set_title(title, loc="left")
    top.legend(loc="upper left", fontsize=8, frameon=False)
    middle.plot(x, fitted.seasonal[window], color="#31a354", linewidth=1)
    middle.set_ylabel("seasonal")
    bottom.plot(x, fitted.trend[window], color="#756bb1", linewidth=1)
    bottom.set_ylabel("trend")
    figure.autofmt_xdate()
    return figure
