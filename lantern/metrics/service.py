"""Metric discovery, bucket increments, and reading buckets back as series."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import func, select, tuple_
from sqlalchemy.engine import Connection

from lantern.db.dialect import fetch_all, insert_for
from lantern.metrics.keys import OVERFLOW_NAME, UNCAPPED, MetricKey, MetricKind, measure
from lantern.metrics.models import Bucket, Metric

HOUR = pd.Timedelta(hours=1)


class MetricIdCache:
    """Metric ids already known to exist, so ingest rarely queries the metrics table.

    Only committed ids enter the cache (`remember` is called after commit). Names found
    past a source's cap are remembered too, with the cap and the overflow metric's id: a
    source's metrics are never deleted while it exists, so a name past the cap stays past
    it for as long as the cap is the same, and a source at its cap does not query the
    metrics table for each group of events.
    """

    def __init__(self) -> None:
        self._ids: dict[tuple[str, int, MetricKey], int] = {}
        self._over: dict[tuple[str, int, MetricKey], tuple[int, int]] = {}
        self._lock = threading.Lock()

    def get(self, url: str, source_id: int, key: MetricKey) -> int | None:
        return self._ids.get((url, source_id, key))

    def over_cap(self, url: str, source_id: int, key: MetricKey, cap: int) -> int | None:
        """The overflow metric's id if `key` was found past the cap `cap`, else None."""
        found = self._over.get((url, source_id, key))
        return found[1] if found is not None and found[0] == cap else None

    def remember(
        self,
        url: str,
        source_id: int,
        ids: dict[MetricKey, int],
        *,
        over_cap: Iterable[MetricKey] = (),
        cap: int = 0,
        overflow_id: int | None = None,
    ) -> None:
        with self._lock:
            for key, metric_id in ids.items():
                self._ids[(url, source_id, key)] = metric_id
            if overflow_id is not None:
                for key in over_cap:
                    self._over[(url, source_id, key)] = (cap, overflow_id)

    def clear(self) -> None:
        with self._lock:
            self._ids.clear()
            self._over.clear()


metric_ids = MetricIdCache()


@dataclass(frozen=True, slots=True)
class Resolved:
    """Metric ids for a request's keys; `over_cap` names that fell into the overflow metric."""

    ids: dict[MetricKey, int]
    over_cap: set[MetricKey]


def resolve_metrics(
    connection: Connection, *, source_id: int, keys: Iterable[MetricKey], cap: int
) -> Resolved:
    """Ids for `keys`, creating the metrics that are new, within the source's cap."""
    url = str(connection.engine.url)
    ids: dict[MetricKey, int] = {}
    missing: list[MetricKey] = []
    over_cap: set[MetricKey] = set()
    for key in keys:
        known = metric_ids.get(url, source_id, key)
        if known is None:
            known = metric_ids.over_cap(url, source_id, key, cap)
            if known is not None:
                over_cap.add(key)
        if known is None:
            missing.append(key)
        else:
            ids[key] = known
    if not missing:
        return Resolved(ids, over_cap)
    found = _select_ids(connection, source_id, missing)
    ids.update(found)
    new = [key for key in missing if key not in found]
    if new:
        # Past the cap, an event's count and sum come before its average: the average last.
        capped = sorted(
            (key for key in new if key[0] not in UNCAPPED),
            key=lambda key: (key[0] == MetricKind.MEAN, key),
        )
        if capped:
            existing = (
                connection.scalar(
                    select(func.count())
                    .select_from(Metric)
                    .where(
                        Metric.source_id == source_id,
                        Metric.kind.not_in([k.value for k in UNCAPPED]),
                    )
                )
                or 0
            )
            room = max(0, cap - existing)
            over_cap.update(capped[room:])
        new = [key for key in new if key not in over_cap]
        if over_cap and (MetricKind.OVERFLOW, OVERFLOW_NAME) not in ids:
            new.append((MetricKind.OVERFLOW, OVERFLOW_NAME))
        insert = insert_for(connection, Metric).on_conflict_do_nothing()
        connection.execute(
            insert, [{"source_id": source_id, "kind": k, "name": n} for k, n in sorted(new)]
        )
        ids.update(_select_ids(connection, source_id, new))
        if over_cap:
            overflow = ids[(MetricKind.OVERFLOW, OVERFLOW_NAME)]
            for key in over_cap:
                ids[key] = overflow
    return Resolved(ids, over_cap)


def _select_ids(
    connection: Connection, source_id: int, keys: Sequence[MetricKey]
) -> dict[MetricKey, int]:
    rows = connection.execute(
        select(Metric.kind, Metric.name, Metric.id).where(
            Metric.source_id == source_id,
            tuple_(Metric.kind, Metric.name).in_([tuple(k) for k in keys]),
        )
    )
    return {(kind, name): metric_id for kind, name, metric_id in rows}


def bucket_upsert(rows: str) -> str:
    """The statement that adds increments to buckets, creating them as needed: ingest's hot path.

    `rows` is a VALUES list or a SELECT giving `(metric_id, hour, count, value_sum,
    value_sq)`, in key order so that concurrent writers lock buckets in the same order.
    SQLite and PostgreSQL spell it alike; every path that writes buckets builds it here
    (`add_to_buckets` on both engines, and ingest's one-statement PostgreSQL group in
    `lantern.ingest.postgres`), and each keeps the metrics' first hours in the same
    transaction (`first_hour_update` on PostgreSQL).
    """
    # A sum of squares added to one never kept (NULL) stays unknown: the hour's spread is lost.
    return (
        "INSERT INTO buckets (metric_id, hour, count, value_sum, value_sq) "
        f"{rows} "
        "ON CONFLICT (metric_id, hour) DO UPDATE SET count = buckets.count + excluded.count, "
        "value_sum = buckets.value_sum + excluded.value_sum, "
        "value_sq = buckets.value_sq + excluded.value_sq"
    )


def first_hour_update(rows: str) -> str:
    """The statement that moves metrics' `first_hour` back to the earliest hour written for
    them (PostgreSQL); `rows` is a SELECT giving `(metric_id, hour)`, one row a metric.

    Only the metrics whose first hour moves are locked, in id order and after their
    buckets, as every writer locks them, so writers moving the same metrics wait for each
    other but never deadlock. `FOR NO KEY UPDATE` is the lock an UPDATE of a non-key column
    takes: a new bucket's foreign-key check (`FOR KEY SHARE` on its metric) does not wait
    for it, nor it for one. A locked row is checked again once its writer commits, so a
    first hour never moves later.
    """
    return (
        "UPDATE metrics SET first_hour = earlier.hour FROM ("
        "SELECT m.id, f.hour FROM metrics AS m "
        f"JOIN ({rows}) AS f (metric_id, hour) ON f.metric_id = m.id "
        "WHERE m.first_hour IS NULL OR m.first_hour > f.hour "
        "ORDER BY m.id FOR NO KEY UPDATE OF m) AS earlier "
        "WHERE metrics.id = earlier.id"
    )


# The earliest hour, per metric, of the buckets that the upsert `bucket_rows` (returning
# metric_id, hour, count) created from the increments `increments` (metric_id, hour, n):
# only a new bucket can come before its metric's first hour, and a bucket whose count is
# the increment's own after the upsert is a new one (or held no event: a lookup for
# nothing). Buckets are created once an hour and added to many times, so most groups of
# events look up no metric at all.
CREATED_FIRST_HOURS = (
    "SELECT b.metric_id, min(b.hour) FROM bucket_rows AS b "
    "JOIN increments AS i ON i.metric_id = b.metric_id AND i.hour = b.hour "
    "WHERE b.count = i.n GROUP BY b.metric_id"
)

# Built once: these run for every ingest transaction.
_BUCKETS_FROM_ARRAYS = (
    "WITH increments AS (SELECT * FROM unnest(%s::int[], %s::int[], %s::bigint[], "
    "%s::float8[], %s::float8[]) AS i (metric_id, hour, n, v, q)), "
    "bucket_rows AS ("
    + bucket_upsert("SELECT * FROM increments ORDER BY metric_id, hour")
    + " RETURNING metric_id, hour, count) "
    + first_hour_update(CREATED_FIRST_HOURS)
)
_BUCKETS_FROM_VALUES = bucket_upsert("VALUES (?, ?, ?, ?, ?)")
# SQLite writes one transaction at a time: a plain conditional update per metric.
_FIRST_HOURS_FROM_VALUES = (
    "UPDATE metrics SET first_hour = ? WHERE id = ? AND (first_hour IS NULL OR first_hour > ?)"
)


def add_to_buckets(
    connection: Connection, increments: dict[tuple[int, int], tuple[int, float, float]]
) -> None:
    """Add counts, value sums and sums of squares to buckets `(metric_id, hour)`, and move
    each metric's `first_hour` back to the earliest of its hours.

    PostgreSQL takes the rows as arrays, in one statement that looks up the metrics of the
    buckets it created (`CREATED_FIRST_HOURS`); SQLite takes them as parameter rows, then
    looks up each metric of the call (see `bucket_upsert` and `first_hour_update`). A
    metric's row is written only when its first hour moves.
    """
    if not increments:
        return
    rows = sorted(increments.items())
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            _BUCKETS_FROM_ARRAYS,
            (
                [key[0] for key, _ in rows],
                [key[1] for key, _ in rows],
                [value[0] for _, value in rows],
                [value[1] for _, value in rows],
                [value[2] for _, value in rows],
            ),
        )
    else:
        firsts: dict[int, int] = {}
        for (metric_id, hour), _ in rows:  # in key order: a metric's first is its earliest
            firsts.setdefault(metric_id, hour)
        connection.exec_driver_sql(
            _BUCKETS_FROM_VALUES, [(key[0], key[1], *value) for key, value in rows]
        )
        connection.exec_driver_sql(
            _FIRST_HOURS_FROM_VALUES, [(hour, m, hour) for m, hour in firsts.items()]
        )


def hour_index(hour: int) -> pd.Timestamp:
    """The UTC start of an epoch-hour number."""
    return pd.Timestamp(hour * 3600, unit="s", tz="UTC")


def epoch_hour(moment: datetime | pd.Timestamp) -> int:
    """The epoch-hour number of the hour containing `moment`."""
    return int(pd.Timestamp(moment).timestamp() // 3600)


def load_series(
    connection: Connection,
    *,
    metric_ids: Sequence[int],
    start: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp,
    kinds: dict[int, str] | None = None,
) -> dict[int, pd.Series]:
    """Regular hourly series for many metrics in one query, over [start, end) hours.

    Count metrics are zero-filled; value metrics hold the hour's sum and average metrics
    the hour's mean (sum / events with a value), both NaN where no event carried a value.
    The columns of `load_frame`, one series a metric.
    """
    frame = load_frame(connection, metric_ids=metric_ids, start=start, end=end, kinds=kinds)
    return {int(metric_id): frame[metric_id] for metric_id in frame.columns}


def load_frame(
    connection: Connection,
    *,
    metric_ids: Sequence[int],
    start: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp,
    kinds: dict[int, str] | None = None,
) -> pd.DataFrame:
    """Many metrics' regular hourly values over [start, end) hours, read in one query: one
    column a metric (named by its id, in the order of `metric_ids`), one row an hour.

    The values are `load_series`'s; `load_hourly`'s `Hourly.values`.
    """
    return load_hourly(connection, metric_ids=metric_ids, start=start, end=end, kinds=kinds).values


@dataclass(frozen=True, slots=True)
class Hourly:
    """Many metrics' hourly values, and what each average metric's hours rest on.

    `values` has one column a metric (`load_frame`'s). `counts` and `within` have one
    column per average metric among them, on the same hours: the events with a value
    behind each hour's average (0 where none), and the variance of their values within
    the hour, ``(value_sq - value_sum^2 / n) / (n - 1)`` (NaN where fewer than two events
    or where the sum of squares was not kept). Detection weighs an average's hours by
    them (`lantern.detect.score_batch`).
    """

    values: pd.DataFrame
    counts: pd.DataFrame
    within: pd.DataFrame


def load_hourly(
    connection: Connection,
    *,
    metric_ids: Sequence[int],
    start: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp,
    kinds: dict[int, str] | None = None,
) -> Hourly:
    """Many metrics' regular hourly values over [start, end) hours and, for the average
    metrics among them, their hours' events and within-hour variances, in one query.

    The buckets arrive as arrays (`_bucket_arrays`) and are placed by position: no
    per-row or per-metric pandas objects, so a partition of the hourly pass (hundreds of
    metrics x 29 days) costs little more than its rows' fetch.
    """
    first, last = epoch_hour(start), epoch_hour(end)
    hours = max(0, last - first)
    index = pd.date_range(hour_index(first), periods=hours, freq="h")
    ids = list(dict.fromkeys(metric_ids))
    kinds = kinds or {}
    held = np.array([_MEASURES.index(measure(kinds.get(m, ""))) for m in ids], dtype=np.int8)
    values = np.full((hours, len(ids)), np.nan)
    values[:, held == _COUNT] = 0.0
    means = np.flatnonzero(held == _AVERAGE)
    events = np.zeros((hours, len(means)))
    within = np.full((hours, len(means)), np.nan)
    if ids and hours:
        counted = [m for m, h in zip(ids, held.tolist(), strict=True) if h == _COUNT]
        found, at, counts, sums, squares = _bucket_arrays(
            connection, ids, counted, first, last, squares=len(means) > 0
        )
        wanted = np.asarray(ids, dtype=np.int64)
        order = np.argsort(wanted, kind="stable")
        column = order[np.searchsorted(wanted, found, sorter=order)]
        row = at - first
        of_row = held[column]
        plain = of_row == _COUNT
        values[row[plain], column[plain]] = counts[plain]
        summed = of_row == _SUM
        values[row[summed], column[summed]] = sums[summed]
        averaged = (of_row == _AVERAGE) & (counts > 0)
        values[row[averaged], column[averaged]] = sums[averaged] / counts[averaged]
        if len(means):
            # the averages' own columns, in the order of `means`
            place = np.full(len(ids), -1)
            place[means] = np.arange(len(means))
            mean_row, mean_column = row[averaged], place[column[averaged]]
            n, total, square = counts[averaged], sums[averaged], squares[averaged]
            events[mean_row, mean_column] = n
            with np.errstate(invalid="ignore", divide="ignore"):
                spread = np.maximum(square - total**2 / n, 0.0) / (n - 1)
            within[mean_row, mean_column] = np.where(n >= 2, spread, np.nan)
    columns = pd.Index(ids, dtype=np.int64)
    of_means = columns[means]
    return Hourly(
        values=pd.DataFrame(values, index=index, columns=columns),
        counts=pd.DataFrame(events, index=index, columns=of_means),
        within=pd.DataFrame(within, index=index, columns=of_means),
    )


_MEASURES = ("count", "sum", "average")
_COUNT, _SUM, _AVERAGE = range(3)
# metric ids, hours, counts, value sums, sums of squares
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]

# PostgreSQL: the buckets as one row of four arrays (`array_agg`, which reads the rows in
# the same order for each), sent by a binary COPY and read by numpy: in the binary format
# each element is its length (4 bytes) then its value, and no element is NULL (a missing
# sum is NaN). A COPY row per bucket would cost a Python call per bucket. A fifth array,
# of sums of squares, comes only where average metrics need it.
_COPY_HEADER = 19  # signature (11 bytes), flags (4), header extension length (4, zero)
_ARRAY_TYPES = (">i4", ">i4", ">i8", ">f8", ">f8")  # metric_id, hour, count, sum, squares
# SQLite: a count metric's buckets as one hex string, 32 digits a bucket (metric id, hour
# after the first, count), formatted by the engine and decoded by numpy.
_HEX_ROW = np.dtype([("metric_id", ">u4"), ("hour", ">u4"), ("count", ">i8")])


def _bucket_arrays(
    connection: Connection,
    metric_ids: list[int],
    counted: list[int],
    first: int,
    last: int,
    *,
    squares: bool = False,
) -> Arrays:
    """Metric ids, hours, counts, value sums (NaN for a NULL or a count metric's) and sums
    of squares (NaN for a NULL, for a count metric's, and for all on PostgreSQL unless
    ``squares``) of the metrics' buckets in [first, last): PostgreSQL's as a binary COPY,
    SQLite's count metrics' as one hex string, other metrics' as the driver's plain tuples."""
    if connection.dialect.name == "postgresql":
        return _copied_buckets(connection, metric_ids, first, last, squares=squares)
    parts = [_hex_buckets(connection, counted, first, last)] if counted else []
    others = sorted(set(metric_ids) - set(counted))
    if others:
        parts.append(_tuple_buckets(connection, others, first, last))
    if not parts:
        empty = np.empty(0)
        return empty.astype(np.int64), empty.astype(np.int64), empty, empty, empty
    joined = [np.concatenate([p[k] for p in parts]) for k in range(5)]
    return joined[0], joined[1], joined[2], joined[3], joined[4]


def _copied_buckets(
    connection: Connection, metric_ids: list[int], first: int, last: int, *, squares: bool
) -> Arrays:
    ids = ",".join(str(int(m)) for m in metric_ids)  # integers, written by us
    also = ", array_agg(coalesce(value_sq, 'NaN')::float8)" if squares else ""
    statement = (
        "COPY (SELECT array_agg(metric_id::int4), array_agg(hour::int4), "
        f"array_agg(count::int8), array_agg(coalesce(value_sum, 'NaN')::float8){also} "
        f"FROM buckets WHERE metric_id = ANY('{{{ids}}}'::int4[]) AND hour >= {int(first)} "
        f"AND hour < {int(last)}) TO STDOUT (FORMAT BINARY)"
    )
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        data = b"".join(bytes(chunk) for chunk in copy)
    fields = len(_ARRAY_TYPES) if squares else len(_ARRAY_TYPES) - 1
    if int.from_bytes(data[_COPY_HEADER : _COPY_HEADER + 2], "big", signed=True) != fields:
        raise ValueError("unexpected COPY layout for buckets")
    columns, at = [], _COPY_HEADER + 2
    for kind in _ARRAY_TYPES[:fields]:
        size = int.from_bytes(data[at : at + 4], "big", signed=True)
        at += 4
        if size < 0:  # no bucket at all: array_agg of nothing is NULL
            columns.append(np.empty(0, dtype=kind))
            continue
        columns.append(_binary_array(data[at : at + size], np.dtype(kind)))
        at += size
    return (
        columns[0].astype(np.int64),
        columns[1].astype(np.int64),
        columns[2].astype(np.float64),
        columns[3].astype(np.float64),
        columns[4].astype(np.float64) if squares else np.full(len(columns[0]), np.nan),
    )


def _binary_array(raw: bytes, kind: np.dtype) -> np.ndarray:
    """The elements of a one-dimensional array in PostgreSQL's binary format, none NULL."""
    ndim = int.from_bytes(raw[0:4], "big")
    if ndim == 0:
        return np.empty(0, dtype=kind)
    length = int.from_bytes(raw[12:16], "big")
    elements = np.frombuffer(
        raw, dtype=np.dtype([("size", ">i4"), ("value", kind)]), count=length, offset=20
    )
    if ndim != 1 or (elements["size"] != kind.itemsize).any():
        raise ValueError("unexpected array layout in the buckets' COPY")
    return elements["value"]


def _hex_buckets(connection: Connection, metric_ids: list[int], first: int, last: int) -> Arrays:
    text = connection.exec_driver_sql(
        "SELECT group_concat(printf('%08x%08x%016x', metric_id, hour - ?, count), '') "
        "FROM buckets WHERE metric_id IN (SELECT value FROM json_each(?)) "
        "AND hour >= ? AND hour < ?",
        (first, json.dumps(metric_ids), first, last),
    ).scalar()
    if text and len(text) % (2 * _HEX_ROW.itemsize):
        raise ValueError("a metric id or an hour too large for the buckets' hex read")
    rows = np.frombuffer(bytes.fromhex(text or ""), dtype=_HEX_ROW)
    return (
        rows["metric_id"].astype(np.int64),
        rows["hour"].astype(np.int64) + first,
        rows["count"].astype(np.float64),
        np.full(len(rows), np.nan),
        np.full(len(rows), np.nan),
    )


def _tuple_buckets(connection: Connection, metric_ids: list[int], first: int, last: int) -> Arrays:
    rows = fetch_all(
        connection,
        select(
            Bucket.metric_id, Bucket.hour, Bucket.count, Bucket.value_sum, Bucket.value_sq
        ).where(Bucket.metric_id.in_(metric_ids), Bucket.hour >= first, Bucket.hour < last),
    )
    table = np.array(rows, dtype=np.float64).reshape(-1, 5)  # a NULL sum is NaN
    return (
        table[:, 0].astype(np.int64),
        table[:, 1].astype(np.int64),
        table[:, 2],
        table[:, 3],
        table[:, 4],
    )


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """A metric with its totals, for listings."""

    id: int
    kind: str
    name: str
    events: int
    value_sum: float
    first_hour: pd.Timestamp | None
    last_hour: pd.Timestamp | None


def list_metrics(connection: Connection, *, source_id: int) -> list[MetricSummary]:
    """Every metric of a source with its event count, value sum and first and last hour."""
    rows = connection.execute(
        select(
            Metric.id,
            Metric.kind,
            Metric.name,
            func.coalesce(func.sum(Bucket.count), 0),
            func.coalesce(func.sum(Bucket.value_sum), 0.0),
            func.min(Bucket.hour),
            func.max(Bucket.hour),
        )
        .outerjoin(Bucket, Bucket.metric_id == Metric.id)
        .where(Metric.source_id == source_id)
        .group_by(Metric.id, Metric.kind, Metric.name)
        .order_by(Metric.kind, Metric.name)
    ).all()
    return [
        MetricSummary(
            id=row[0],
            kind=row[1],
            name=row[2],
            events=int(row[3]),
            value_sum=float(row[4]),
            first_hour=hour_index(row[5]) if row[5] is not None else None,
            last_hour=hour_index(row[6]) if row[6] is not None else None,
        )
        for row in rows
    ]
