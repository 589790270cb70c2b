"""The hourly pass in bulk: a partition's states and series read in one query each, states
and expectations written back in one statement, gives each metric exactly what scoring it
alone, from its own buckets, gives."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, select

from lantern import pipeline
from lantern.config import Settings
from lantern.db import session_scope
from lantern.insights.models import HourExpectation, Insight, MetricWatch
from lantern.metrics.keys import measure
from lantern.metrics.models import Bucket, Metric
from lantern.metrics.service import add_to_buckets, epoch_hour, hour_index
from lantern.scoring import Partition, Scored, score_partition
from tests.factories import last_closed_hour, make_metric, make_source

DAYS = 16


def series(seed: int, *, peak: float, kind: str, broken: bool) -> pd.Series:
    """Sixteen days of hourly values ending in the last closed hour: a daily cycle, noise,
    quiet hours (zero, or no value at all for an average), a jump in the last hours."""
    index = pd.date_range(end=last_closed_hour(), periods=DAYS * 24, freq="h")
    rng = np.random.default_rng(seed)
    daily = 0.55 + 0.45 * np.sin((index.hour.to_numpy() - 6) / 24 * 2 * np.pi)
    values = rng.poisson(peak * daily).astype(float)
    if broken:
        values[-4:] *= 5
    if kind == "mean":
        values[values < 0.3 * peak] = np.nan
    return pd.Series(values, index=index)


def mean_metric(engine: Engine, source_id: int, values: pd.Series) -> int:
    """An average metric whose hours hold three valued events each (NaN: none)."""
    valued = values.dropna()
    with session_scope(engine) as session:
        metric = Metric(source_id=source_id, kind="mean", name="Load time")
        session.add(metric)
        session.flush()
        add_to_buckets(
            session.connection(),
            {
                (metric.id, epoch_hour(t)): (3, 3 * v + 1, (3 * v + 1) ** 2)
                for t, v in zip(pd.DatetimeIndex(valued.index), valued, strict=True)
            },
        )
        return metric.id


def own_frame(
    engine: Engine, metric_id: int, kind: str, start: int, hour: int
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """The metric's hours [start, hour] from its buckets, one by one, as a reader would; for
    an average, also the events behind each hour and their values' variance within it."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(Bucket.hour, Bucket.count, Bucket.value_sum, Bucket.value_sq).where(
                Bucket.metric_id == metric_id, Bucket.hour >= start, Bucket.hour <= hour
            )
        ).all()
    held = measure(kind)
    index = pd.date_range(hour_index(start), hour_index(hour), freq="h")
    values = np.full(len(index), 0.0 if held == "count" else np.nan)
    events, within = np.zeros(len(index)), np.full(len(index), np.nan)
    for at, count, value_sum, value_sq in rows:
        if held == "count":
            values[at - start] = float(count)
        elif held == "sum":
            values[at - start] = float(value_sum)
        elif count > 0:
            values[at - start] = float(value_sum) / float(count)
            events[at - start] = float(count)
            if count > 1 and value_sq is not None:
                spread = (value_sq - value_sum**2 / count) / (count - 1)
                within[at - start] = max(spread, 0.0)
    frame = pd.DataFrame({metric_id: values}, index=index)
    if held != "average":
        return frame, None, None
    return (
        frame,
        pd.DataFrame({metric_id: events}, index=index),
        pd.DataFrame({metric_id: within}, index=index),
    )


@dataclass
class Alone:
    """A metric scored alone, hour after hour: its state, what it expected, what opened."""

    kind: str
    first_hour: int
    state: bytes | None = None
    scored: int | None = None
    expected: dict[int, tuple[float | None, ...]] = field(default_factory=dict)
    opened: set[tuple[str, str, int]] = field(default_factory=set)


def score_alone(engine: Engine, metric_id: int, alone: Alone, hour: int) -> None:
    start = (
        alone.first_hour
        if alone.scored is None
        else max(alone.first_hour, alone.scored + 1 - pipeline.HISTORY_HOURS)
    )
    scored = Scored(metric_id, alone.kind, "medium", alone.first_hour, alone.state)
    frame, events, within = own_frame(engine, metric_id, alone.kind, start, hour)
    (outcome,) = score_partition(Partition(hour, (scored,), frame, events, within))
    assert outcome.error is None
    since = hour - 1 if alone.scored is None else alone.scored
    for event in outcome.events:
        at = epoch_hour(event.detection.detected_at)
        if event.status == "opened" and at > since:
            alone.opened.add((event.detection.kind, event.detection.direction, at))
    judged = outcome.judged
    assert judged is not None
    for h, e, lo, hi in zip(judged.hours, judged.expected, judged.lower, judged.upper, strict=True):
        alone.expected[int(h)] = tuple(float(v) if np.isfinite(v) else None for v in (e, lo, hi))
    alone.state, alone.scored = outcome.state, hour


def test_a_pass_over_several_partitions_and_sources_stores_what_each_metric_alone_gives(
    fresh_engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3 sources x 5 metrics of every kind, in partitions of 4: partitions span sources
    monkeypatch.setattr(pipeline, "PARTITION", 4)
    metrics: dict[int, Alone] = {}
    for s, name in enumerate(("web", "ios", "api")):
        src = make_source(fresh_engine, name=name, workspace=f"team {name}")
        for m, kind in enumerate(("track", "track", "value", "mean", "page")):
            values = series(10 * s + m, peak=[40, 800, 60, 30, 5][m], kind=kind, broken=m == 1)
            if kind == "mean":
                metric_id = mean_metric(fresh_engine, src.id, values)
            else:
                metric_id = make_metric(fresh_engine, src, name=f"E{m}", kind=kind, counts=values)
            metrics[metric_id] = Alone(kind, epoch_hour(values.index[0]))
    with session_scope(fresh_engine) as session:
        firsts = dict(session.execute(select(Metric.id, Metric.first_hour)).tuples().all())
    for metric_id, alone in metrics.items():
        alone.first_hour = firsts[metric_id] or alone.first_hour
    last = epoch_hour(last_closed_hour())
    for hour in range(last - 3, last + 1):
        result = pipeline.run_hour(fresh_engine, settings, hour=hour, worker="bulk")
        assert result is not None and result.metrics == len(metrics) and result.failures == 0
        for metric_id, alone in metrics.items():
            score_alone(fresh_engine, metric_id, alone, hour)

    with session_scope(fresh_engine) as session:
        watches = {
            w.metric_id: (w.state, w.scored_hour) for w in session.scalars(select(MetricWatch))
        }
        stored = {
            (e.metric_id, e.hour): (e.expected, e.lower, e.upper)
            for e in session.scalars(select(HourExpectation))
        }
        insights = {
            (i.metric_id, i.kind, i.direction, epoch_hour(i.detected_at))
            for i in session.scalars(select(Insight))
        }
    for metric_id, alone in metrics.items():
        assert watches[metric_id] == (alone.state, last)
        assert {h: v for (m, h), v in stored.items() if m == metric_id} == alone.expected
    opened = {(m, *o) for m, alone in metrics.items() for o in alone.opened}
    assert insights == opened
    assert opened  # the jumps were told
