"""What the detector expected of each hour it judged: stored by the hourly pass, read by
every chart (the dashboard's, the Slack alert's, the analysis API's), so that all of them
show what was judged.

An hour closed since the metric's last pass (in the minutes before the next one) is judged
from the metric's saved state, as that pass will judge it. Any other hour without a stored
row (judged before the table existed, or a metric never scored) is replayed: the detector
is run over the metric's buckets from its first hour, as `lantern replay` would
(`replay_expected`), and the replay kept in memory for the next view. Stored rows always
win: they are what the detector expected when it judged the hour, whatever arrived later.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, delete, func, select
from sqlalchemy.orm import Session

from lantern.detect import JudgedHours, MetricState, replay_expected, score_batch_judged
from lantern.detect.episodes import FIT_HOURS
from lantern.detect.series import TRAINING_DAYS
from lantern.insights.models import HourExpectation, MetricWatch
from lantern.metrics.keys import series_kind
from lantern.metrics.models import Bucket, Metric
from lantern.metrics.service import Hourly, epoch_hour, hour_index, load_hourly

Band = tuple[pd.Series, pd.Series, pd.Series]
TRAINING_HOURS = TRAINING_DAYS * 24
# Rows a statement: a metric scored for the first time stores its whole judged history.
CHUNK = 50_000


def record_expectations(session: Session, judged: Iterable[tuple[int, JudgedHours]]) -> int:
    """Store what the detector expected of each hour it judged, per metric; returns the rows.

    In bulk: the columns are put together as arrays and written `CHUNK` rows a statement
    (arrays on PostgreSQL, parameter rows on SQLite), NaN stored as NULL. An hour stored
    before (a pass re-run after one that died) takes the new figures: they are the same
    detector's on the same data.
    """
    parts = [(metric_id, hours) for metric_id, hours in judged if len(hours.hours)]
    if not parts:
        return 0
    metric_ids = np.concatenate(
        [np.full(len(hours.hours), metric_id, dtype=np.int64) for metric_id, hours in parts]
    ).tolist()
    hours = np.concatenate([h.hours for _, h in parts]).astype(np.int64).tolist()
    expected, lower, upper = (
        _nullable(np.concatenate([getattr(h, name) for _, h in parts]))
        for name in ("expected", "lower", "upper")
    )
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    for i in range(0, len(hours), CHUNK):
        if postgres:
            connection.exec_driver_sql(
                _STORE_ARRAYS,
                tuple(
                    column[i : i + CHUNK] for column in (metric_ids, hours, expected, lower, upper)
                ),
            )
        else:
            connection.exec_driver_sql(
                _STORE_ROWS,
                list(
                    zip(
                        metric_ids[i : i + CHUNK],
                        hours[i : i + CHUNK],
                        expected[i : i + CHUNK],
                        lower[i : i + CHUNK],
                        upper[i : i + CHUNK],
                        strict=True,
                    )
                ),
            )
    return len(hours)


_ON_CONFLICT = (
    "ON CONFLICT (metric_id, hour) DO UPDATE SET expected = excluded.expected, "
    "lower = excluded.lower, upper = excluded.upper"
)
_STORE_ARRAYS = (
    "INSERT INTO expectations (metric_id, hour, expected, lower, upper) "
    "SELECT * FROM unnest(%s::int[], %s::int[], %s::float8[], %s::float8[], %s::float8[]) "
    + _ON_CONFLICT
)
_STORE_ROWS = (
    "INSERT INTO expectations (metric_id, hour, expected, lower, upper) VALUES (?, ?, ?, ?, ?) "
    + _ON_CONFLICT
)


def expected_band(
    connection: Connection,
    *,
    metric_id: int,
    metric_kind: str,
    first_hour: int,
    start: datetime,
    stop: datetime,
    sensitivity: str,
) -> Band:
    """Expected, lower and upper for each hour of [start, stop), NaN where nothing is expected.

    Stored rows first. Hours past the metric's training without one are, when they all
    come after the last hour the pass judged, judged from the metric's saved state as the
    next pass will judge them (`_ahead`); otherwise replayed from the metric's first hour
    (see the module docstring). `first_hour` is the metric's first bucket hour (hours
    since the epoch).
    """
    index = pd.date_range(start, stop, freq="h", inclusive="left")
    band, present = _stored(connection, metric_id, index)
    hours = epoch_hour(start) + np.arange(len(index))
    missing = (hours >= first_hour + TRAINING_HOURS) & ~present
    if not missing.any():
        return band
    filler = _ahead(connection, metric_id, metric_kind, first_hour, int(hours[missing][0]), stop)
    if filler is None:
        filler = _replayed(connection, metric_id, metric_kind, first_hour, stop, sensitivity)
    filled = []
    for stored, again in zip(band, filler, strict=True):
        values = stored.to_numpy(copy=True)
        values[missing] = again.reindex(index).to_numpy(dtype=float)[missing]
        filled.append(pd.Series(values, index=index, name=stored.name))
    return filled[0], filled[1], filled[2]


def _ahead(
    connection: Connection,
    metric_id: int,
    metric_kind: str,
    first_hour: int,
    first_missing: int,
    stop: datetime,
) -> Band | None:
    """Hours closed since the last pass, judged from the metric's saved state; None unless
    every hour missing comes after the last one the pass judged.

    This is the next pass's own computation (its state, the fit window before it), so
    what it gives is what that pass will store; it spares a replay of the whole history
    in the minutes between an hour's close and its pass.
    """
    saved = connection.execute(
        select(MetricWatch.state, MetricWatch.scored_hour).where(MetricWatch.metric_id == metric_id)
    ).first()
    if saved is None or saved.state is None or saved.scored_hour is None:
        return None
    if first_missing <= saved.scored_hour:
        return None
    last = epoch_hour(stop) - 1
    begin = max(first_hour, saved.scored_hour + 1 - FIT_HOURS)
    hourly = load_hourly(
        connection,
        metric_ids=[metric_id],
        start=hour_index(begin),
        end=hour_index(last + 1),
        kinds={metric_id: metric_kind},
    )
    try:
        state = MetricState.from_bytes(saved.state)
        judged = score_batch_judged(
            {metric_id: state},
            hourly.values,
            hour_index(last),
            counts=hourly.counts,
            within=hourly.within,
        )[metric_id][2]
    except (ValueError, TypeError, KeyError):
        return None  # a state the pass cannot use either: replay instead
    index = pd.DatetimeIndex([hour_index(int(h)) for h in judged.hours])
    return (
        pd.Series(judged.expected, index=index, name="expected"),
        pd.Series(judged.lower, index=index, name="lower"),
        pd.Series(judged.upper, index=index, name="upper"),
    )


def forget_unbucketed(session: Session) -> int:
    """Drop expectations of hours before their metric's first bucket; returns how many went.

    Buckets leave with retention: the expectations describing them go with them (and all
    of a metric's with the metric, by its foreign key). Hours after the first bucket stay,
    zeros included: an hour without events is a real zero for a count, judged as one.
    Each metric's first hours are read from the primary keys' indexes, one lookup each.
    """
    first_bucket = (
        select(func.min(Bucket.hour)).where(Bucket.metric_id == Metric.id).scalar_subquery()
    )
    first_expected = (
        select(func.min(HourExpectation.hour))
        .where(HourExpectation.metric_id == Metric.id)
        .scalar_subquery()
    )
    rows = session.execute(select(Metric.id, first_bucket, first_expected)).all()
    gone = 0
    for metric_id, bucketed, expected in rows:
        if expected is None or (bucketed is not None and expected >= bucketed):
            continue
        query = delete(HourExpectation).where(HourExpectation.metric_id == metric_id)
        if bucketed is not None:
            query = query.where(HourExpectation.hour < bucketed)
        gone += session.connection().execute(query).rowcount
    return gone


def _stored(connection: Connection, metric_id: int, index: pd.DatetimeIndex) -> tuple[Band, Any]:
    """The stored rows of [index[0], index[-1]] (NaN for hours without one), and which
    hours have a row."""
    present = np.zeros(len(index), dtype=bool)
    columns = {name: np.full(len(index), np.nan) for name in ("expected", "lower", "upper")}
    if len(index):
        first = epoch_hour(index[0].to_pydatetime())
        rows = connection.execute(
            select(
                HourExpectation.hour,
                HourExpectation.expected,
                HourExpectation.lower,
                HourExpectation.upper,
            ).where(
                HourExpectation.metric_id == metric_id,
                HourExpectation.hour >= first,
                HourExpectation.hour < first + len(index),
            )
        ).all()
        if rows:
            table = np.array([tuple(row) for row in rows], dtype=float)
            at = table[:, 0].astype(np.int64) - first
            present[at] = True
            for n, name in enumerate(("expected", "lower", "upper"), start=1):
                columns[name][at] = table[:, n]
    band = (
        pd.Series(columns["expected"], index=index, name="expected"),
        pd.Series(columns["lower"], index=index, name="lower"),
        pd.Series(columns["upper"], index=index, name="upper"),
    )
    return band, present


def _replayed(
    connection: Connection,
    metric_id: int,
    metric_kind: str,
    first_hour: int,
    stop: datetime,
    sensitivity: str,
) -> Band:
    """What a replay of the metric's buckets up to `stop` expected of each hour."""
    origin = pd.Timestamp(first_hour * 3600, unit="s", tz="UTC")
    if origin >= pd.Timestamp(stop):
        nothing = pd.Series(np.nan, index=pd.DatetimeIndex([], tz="UTC"))
        return nothing, nothing, nothing
    hourly = load_hourly(
        connection,
        metric_ids=[metric_id],
        start=origin,
        end=stop,
        kinds={metric_id: metric_kind},
    )
    url = connection.engine.url.render_as_string(hide_password=True)
    return replays.get(url, metric_id, hourly, series_kind(metric_kind), sensitivity)


class ReplayCache:
    """The detector's replays of the charts viewed lately, keyed by the data they read.

    A chart viewed again within the hour (or by a second person) costs one read of its
    buckets; a late event or a backfill changes the data, and so the key.
    """

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[Any, ...], Band] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str, metric_id: int, hourly: Hourly, kind: Any, sensitivity: str) -> Band:
        """Expected, lower and upper for each hour of the metric's column of `hourly`, as the
        hourly pass had them (an average's hours weighed by their events, as it weighs them)."""
        series = hourly.values[metric_id]
        counts, within = _support(hourly, metric_id)
        digest = hashlib.blake2b(series.to_numpy().tobytes(), digest_size=16)
        for part in (counts, within):
            if part is not None:
                digest.update(part.to_numpy().tobytes())
        key = (url, metric_id, kind, sensitivity, series.index[0], len(series), digest.digest())
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit
        try:
            # the same refit hour as the hourly pass (`scoring.refit_hour`)
            traced = replay_expected(
                series,
                kind=kind,
                sensitivity=sensitivity,  # type: ignore[arg-type]
                stagger=metric_id % 24,
                counts=counts,
                within=within,
            )
            band: Band = (traced.expected, traced.lower, traced.upper)
        except ValueError:
            # a series the detector cannot fit (too few values) is skipped by the hourly
            # pass as well: it is shown without an expectation
            nothing = pd.Series(np.nan, index=series.index)
            band = (nothing, nothing, nothing)
        with self._lock:
            self._entries[key] = band
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return band

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


replays = ReplayCache()


def _support(hourly: Hourly, metric_id: int) -> tuple[pd.Series | None, pd.Series | None]:
    """An average metric's events and within-hour variances by hour; None for others."""
    if metric_id not in hourly.counts.columns:
        return None, None
    return hourly.counts[metric_id], hourly.within[metric_id]


def _nullable(values: np.ndarray) -> list[float | None]:
    return [v if np.isfinite(v) else None for v in values.astype(float).tolist()]
