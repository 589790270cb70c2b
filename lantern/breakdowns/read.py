"""Reading breakdowns back: a metric's hourly series per value, what a source has seen, and
which values explain an insight's change."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from lantern.breakdowns.dimensions import OTHER
from lantern.breakdowns.models import BreakdownBucket, BreakdownDimension, BreakdownValue
from lantern.breakdowns.ranking import (
    CHART_HOURS_BEFORE,
    MIN_EVENTS,
    WEEK,
    WEEKS,
    find_root_cause,
)
from lantern.breakdowns.service import OTHER_VALUE, VALUES_PER_DIMENSION, list_dimensions_of
from lantern.errors import NotFound
from lantern.metrics.keys import MetricKind, measure
from lantern.metrics.models import Metric
from lantern.metrics.service import epoch_hour, hour_index, load_series

log = logging.getLogger(__name__)


def label_of(value: str) -> str:
    """A stored value as a person reads it: itself, or "(other)" for the values past the cap."""
    return OTHER if value == OTHER_VALUE else value


def breakdown_series(
    connection: Connection,
    *,
    metric_id: int,
    dimension: str,
    start: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp,
) -> pd.DataFrame:
    """A metric's hourly series per value of one dimension over [start, end) hours.

    One column per value (most events first, "(other)" last), on the same regular UTC
    index and with the same meaning as `load_series`: counts zero-filled; a value metric's
    hourly sums and an average metric's hourly means NaN where no event carried a value.
    The columns' sum is the metric's series less the events that had no value for the
    dimension (an event without `context.locale` has no country).
    """
    metric = connection.execute(
        select(Metric.source_id, Metric.kind, Metric.name).where(Metric.id == metric_id)
    ).first()
    if metric is None:
        raise NotFound(f"no metric {metric_id}")
    source_id, kind, name = metric
    held = measure(kind)
    counted_id = metric_id
    if kind in (MetricKind.VALUE, MetricKind.MEAN):  # their rows are their event's metric's
        sibling = connection.scalar(
            select(Metric.id)
            .where(
                Metric.source_id == source_id,
                Metric.kind.in_([MetricKind.TRACK, MetricKind.EXPERIMENT]),
                Metric.name == name,
            )
            .order_by(Metric.kind.desc())  # a track event before an experiment of that name
        )
        counted_id = sibling if sibling is not None else metric_id
    dimension_id = connection.scalar(
        select(BreakdownDimension.id).where(
            BreakdownDimension.source_id == source_id, BreakdownDimension.name == dimension
        )
    )
    if dimension_id is None:
        raise NotFound(
            f"source {source_id} has no dimension {dimension!r}: add it in the source's settings"
        )
    first, last = epoch_hour(start), epoch_hour(end)
    index = pd.date_range(hour_index(first), periods=max(0, last - first), freq="h")
    rows = connection.execute(
        select(
            BreakdownValue.value,
            BreakdownBucket.hour,
            BreakdownBucket.count,
            BreakdownBucket.valued,
            BreakdownBucket.value_sum,
        )
        .join(BreakdownBucket, BreakdownBucket.value_id == BreakdownValue.id)
        .where(
            BreakdownValue.dimension_id == dimension_id,
            BreakdownBucket.metric_id == counted_id,
            BreakdownBucket.hour >= first,
            BreakdownBucket.hour < last,
        )
    ).all()
    frame = pd.DataFrame(
        [tuple(row) for row in rows], columns=["value", "hour", "count", "valued", "value_sum"]
    )
    columns: dict[str, np.ndarray] = {}
    for value, part in frame.groupby("value", sort=False) if len(frame) else []:
        values = np.full(len(index), 0.0 if held == "count" else np.nan)
        positions = part["hour"].to_numpy() - first
        if held == "count":
            values[positions] = part["count"].to_numpy(dtype=float)
        else:
            counts = part["valued"].to_numpy(dtype=float)
            sums = part["value_sum"].to_numpy(dtype=float)
            valued = counts > 0
            values[positions[valued]] = (
                sums[valued] if held == "sum" else sums[valued] / counts[valued]
            )
        columns[label_of(str(value))] = values
    weight = "count" if held == "count" else "valued"
    totals = frame.groupby("value")[weight].sum() if len(frame) else pd.Series(dtype=float)
    order = sorted(columns, key=lambda c: (c == OTHER, -float(totals.get(_stored(c), 0)), c))
    result = pd.DataFrame({c: columns[c] for c in order}, index=index)
    result.columns.name = dimension
    return result


def _stored(label: str) -> str:
    return OTHER_VALUE if label == OTHER else label


@dataclass(frozen=True, slots=True)
class ValueSeen:
    """A value of a dimension and how many events carried it in the window."""

    value: str
    events: int


@dataclass(frozen=True, slots=True)
class DimensionSeen:
    """A dimension as the debug view and Settings show it: its state, and its values lately."""

    name: str
    recording: bool
    refused: str | None
    refused_at: datetime | None
    values: list[ValueSeen]  # most events first, "(other)" last
    full: bool  # its cap is reached: new values are counted as "(other)"


def dimensions_seen(
    connection: Connection, *, source_id: int, now: datetime, hours: int = 24
) -> list[DimensionSeen]:
    """A source's dimensions, with the values its events carried in the last `hours`."""
    since = epoch_hour(now) - hours + 1
    totals = (
        select(Metric.id)
        .where(Metric.source_id == source_id, Metric.kind == MetricKind.TOTAL)
        .scalar_subquery()
    )
    counts = connection.execute(
        select(BreakdownValue.dimension_id, BreakdownValue.value, func.sum(BreakdownBucket.count))
        .join(BreakdownBucket, BreakdownBucket.value_id == BreakdownValue.id)
        .join(BreakdownDimension, BreakdownDimension.id == BreakdownValue.dimension_id)
        .where(
            BreakdownDimension.source_id == source_id,
            BreakdownBucket.metric_id.in_(totals),
            BreakdownBucket.hour >= since,
        )
        .group_by(BreakdownValue.dimension_id, BreakdownValue.value)
    ).all()
    stored = connection.execute(
        select(BreakdownValue.dimension_id, func.count())
        .join(BreakdownDimension, BreakdownDimension.id == BreakdownValue.dimension_id)
        .where(BreakdownDimension.source_id == source_id, BreakdownValue.value != OTHER_VALUE)
        .group_by(BreakdownValue.dimension_id)
    ).all()
    admitted = dict((d, int(n)) for d, n in stored)
    seen: dict[int, list[ValueSeen]] = {}
    for dimension_id, value, events in counts:
        seen.setdefault(dimension_id, []).append(ValueSeen(label_of(value), int(events)))
    return [
        DimensionSeen(
            name=row.name,
            recording=row.refused is None,
            refused=row.refused,
            refused_at=row.refused_at,
            values=sorted(
                seen.get(row.id, []), key=lambda v: (v.value == OTHER, -v.events, v.value)
            ),
            full=admitted.get(row.id, 0) >= VALUES_PER_DIMENSION,
        )
        for row in list_dimensions_of(connection, source_id=source_id)
    ]


def root_cause_of(
    connection: Connection,
    *,
    metric_id: int,
    start: datetime,
    end: datetime,
    direction: str,
) -> dict[str, Any] | None:
    """The breakdown values that explain a metric's change over hours [start, end], in the
    stored form (`RootCause.as_json`); None for an average, for one breakdown value's
    metric (its events are not broken down further), or without breakdown data.

    Reads each recording dimension of the metric's source over the weeks the values'
    expectations need (`lantern.breakdowns.rootcause`), and the metric's own series.
    """
    metric = connection.execute(
        select(Metric.source_id, Metric.kind).where(Metric.id == metric_id)
    ).first()
    if metric is None or measure(metric.kind) == "average" or metric.kind == MetricKind.BREAKDOWN:
        return None
    first = pd.Timestamp(start) - pd.Timedelta(hours=WEEKS * WEEK + CHART_HOURS_BEFORE)
    stop = pd.Timestamp(end) + pd.Timedelta(hours=1)
    frames = {
        row.name: breakdown_series(
            connection, metric_id=metric_id, dimension=row.name, start=first, end=stop
        )
        for row in list_dimensions_of(connection, source_id=metric.source_id)
        if row.refused is None
    }
    frames = {name: frame for name, frame in frames.items() if frame.shape[1]}
    if not frames:
        return None
    total = load_series(
        connection,
        metric_ids=[metric_id],
        start=first,
        end=stop,
        kinds={metric_id: metric.kind},
    )[metric_id]
    # Each dimension from its first counted hour: a metric older than its breakdowns (or a
    # dimension added later than the others) would otherwise seem to have lost what was
    # never counted.
    frames = {name: frame.loc[_first_counted(frame) :] for name, frame in frames.items()}
    try:
        cause = find_root_cause(
            frames,
            start=start,
            end=end,
            direction=direction,
            total=total,
            min_events=MIN_EVENTS if measure(metric.kind) == "count" else 0.0,
            counts=measure(metric.kind) == "count",
        )
    except Exception:  # pure arithmetic: a fault here never keeps an insight from opening
        log.warning("root cause of metric %s not found", metric_id, exc_info=True)
        return None
    return cause.as_json() if cause is not None else None


def _first_counted(frame: pd.DataFrame) -> pd.Timestamp:
    """The first hour any value of a dimension's frame has a count or a sum."""
    counted = frame.fillna(0).ne(0).any(axis=1).to_numpy()
    return pd.DatetimeIndex(frame.index)[int(counted.argmax())]
