"""A metric's chart: observed hours against what the detector expected, and its anomalies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lantern.dashboard.status import MetricItem, get_metric_item
from lantern.detect.kinds import label
from lantern.errors import Invalid
from lantern.insights.expectations import expected_band
from lantern.insights.models import Insight
from lantern.metrics.service import epoch_hour, hour_index, load_series

MAX_RANGE = timedelta(days=400)
DEFAULT_RANGE = timedelta(days=7)
# A point per hour, or per UTC day: each hourly figure averaged over the day's hours.
Step = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class Point:
    """One hour (or day) of the chart; `expected`, `lower`, `upper` are None while training.

    A day's point holds the averages of its hours: observed, expected and the band's
    bounds, with `hours` the hours it averages and `outside` how many of them were outside
    the band. `partial` marks the hour (or day) still under way: its count is so far, and
    the hourly pass has not judged it yet.
    """

    t: datetime
    observed: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    partial: bool = False
    hours: int = 1
    outside: int | None = None


@dataclass(frozen=True, slots=True)
class Anomaly:
    """An insight of the metric overlapping the chart."""

    insight_id: int
    kind: str
    kind_label: str
    direction: str
    start: datetime
    end: datetime | None
    severity: str
    status: str


@dataclass(frozen=True, slots=True)
class Chart:
    metric: MetricItem
    points: list[Point]
    anomalies: list[Anomaly]
    step: Step = "hour"


def chart_window(
    start: datetime | None, end: datetime | None, *, now: datetime
) -> tuple[datetime, datetime]:
    """[start, end) in whole hours: by default the last 7 closed days, at most 400 days."""
    stop = _hour_ceil(end) if end is not None else _hour_floor(now)
    begin = _hour_floor(start) if start is not None else stop - DEFAULT_RANGE
    if begin >= stop:
        raise Invalid("start must be before end (both ISO 8601 times, UTC if no offset)")
    if stop - begin > MAX_RANGE:
        raise Invalid("the range from start to end is longer than 400 days: narrow it")
    return begin, stop


def metric_chart(
    session: Session,
    *,
    workspace_id: int,
    metric_id: int,
    start: datetime | None,
    end: datetime | None,
    sensitivity: str,
    now: datetime,
    step: Step = "hour",
) -> Chart:
    """Observed, expected and band for each hour of [start, end), and the insights in it.

    The expectation is the one the hourly pass stored when it judged each hour; hours it
    has not stored (judged before the store existed, or not judged yet) are replayed by
    the same detector, each hour judged on earlier data (`insights.expectations`).
    A range reaching into the hour under way ends with that hour's count so far, marked
    partial; hours after it have no point. With `step="day"`, one point per UTC day.
    """
    metric = get_metric_item(session, workspace_id=workspace_id, metric_id=metric_id, now=now)
    begin, stop = chart_window(start, end, now=now)
    current = _hour_floor(now)
    shown_stop = min(stop, current)
    points: list[Point] = []
    if metric.first_hour is not None and begin < shown_stop:
        points = _points(session, metric, begin, shown_stop, sensitivity)
    elif begin < shown_stop:
        points = [
            Point(t=t.to_pydatetime(), observed=None, expected=None, lower=None, upper=None)
            for t in pd.date_range(begin, shown_stop, freq="h", inclusive="left")
        ]
    if step == "day":
        points = _daily(points, current)
    elif stop > current and begin <= current and metric.first_hour is not None:
        points.append(_hour_so_far(session, metric, current))
    anomalies = session.scalars(
        select(Insight)
        .where(
            Insight.metric_id == metric_id,
            Insight.start < stop,
            or_(Insight.ended_at.is_(None), Insight.ended_at >= begin),
        )
        .order_by(Insight.start, Insight.id)
    ).all()
    return Chart(
        metric=metric,
        points=points,
        anomalies=[
            Anomaly(
                insight_id=i.id,
                kind=i.kind,
                kind_label=label(i.kind),
                direction=i.direction,
                start=i.start,
                end=i.ended_at,
                severity=i.severity,
                status=i.status,
            )
            for i in anomalies
        ],
        step=step,
    )


def _hour_so_far(session: Session, metric: MetricItem, hour: datetime) -> Point:
    """The hour under way: what its bucket holds so far, not yet judged."""
    loaded = load_series(
        session.connection(),
        metric_ids=[metric.id],
        start=hour,
        end=hour + timedelta(hours=1),
        kinds={metric.id: metric.kind},
    )[metric.id]
    (observed,) = _floats(loaded)
    return Point(t=hour, observed=observed, expected=None, lower=None, upper=None, partial=True)


def _daily(points: list[Point], current: datetime) -> list[Point]:
    """One point per UTC day: the day's hourly figures averaged, with its hours out of band.

    Per-hour averages keep the scale of the hourly chart, and a day's band is the average
    of its hourly bands (a sum of bands would be far wider than any day's real spread).
    """
    if not points:
        return []
    index = pd.DatetimeIndex([p.t for p in points])
    frame = pd.DataFrame(
        {
            "observed": [p.observed for p in points],
            "expected": [p.expected for p in points],
            "lower": [p.lower for p in points],
            "upper": [p.upper for p in points],
        },
        index=index,
        dtype=float,
    )
    judged = frame["lower"].notna() & frame["observed"].notna()
    frame["out"] = (
        judged & ((frame["observed"] < frame["lower"]) | (frame["observed"] > frame["upper"]))
    ).astype(float)
    frame["judged"] = judged.astype(float)
    frame["seen"] = frame["observed"].notna().astype(float)
    days = frame.groupby(index.floor("D"))
    means = days[["observed", "expected", "lower", "upper"]].mean()
    sums = days[["out", "judged", "seen"]].sum()
    columns = {name: _floats(means[name]) for name in means.columns}
    today = pd.Timestamp(current).floor("D")
    return [
        Point(
            t=day.to_pydatetime(),
            observed=columns["observed"][n],
            expected=columns["expected"][n],
            lower=columns["lower"][n],
            upper=columns["upper"][n],
            partial=day >= today,
            hours=int(sums["seen"].iloc[n]),
            outside=int(sums["out"].iloc[n]) if sums["judged"].iloc[n] else None,
        )
        for n, day in enumerate(means.index)
    ]


def _points(
    session: Session, metric: MetricItem, begin: datetime, stop: datetime, sensitivity: str
) -> list[Point]:
    assert metric.first_hour is not None
    index = pd.date_range(begin, stop, freq="h", inclusive="left")
    first = epoch_hour(metric.first_hour)
    if metric.first_hour >= stop:
        series = pd.Series(np.nan, index=index)
        expected = lower = upper = series
    else:
        connection = session.connection()
        series = load_series(
            connection,
            metric_ids=[metric.id],
            start=max(begin, metric.first_hour),
            end=stop,
            kinds={metric.id: metric.kind},
        )[metric.id].reindex(index)
        expected, lower, upper = expected_band(
            connection,
            metric_id=metric.id,
            metric_kind=metric.kind,
            first_hour=first,
            start=begin,
            stop=stop,
            sensitivity=sensitivity,
        )
        # before the metric's first event there is nothing to show, not zeros
        series[index < pd.Timestamp(metric.first_hour)] = np.nan
    columns = [_floats(s) for s in (series, expected, lower, upper)]
    return [
        Point(t=t, observed=o, expected=e, lower=lo, upper=hi)
        for t, o, e, lo, hi in zip(index.to_pydatetime(), *columns, strict=True)
    ]


def _floats(series: pd.Series) -> list[Any]:
    """Values as floats, with None for NaN (JSON has no NaN)."""
    # (Python floats from tolist(): a 90-day chart has 8,640 of them to round)
    return [None if v != v else round(v, 6) for v in series.to_numpy(dtype=float).tolist()]


def _hour_floor(moment: datetime) -> datetime:
    return hour_index(epoch_hour(moment)).to_pydatetime()


def _hour_ceil(moment: datetime) -> datetime:
    floor = _hour_floor(moment)
    return floor if floor == moment else floor + timedelta(hours=1)
