"""Metric discovery, bucket increments, and reading buckets back as series."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import func, select, tuple_
from sqlalchemy.engine import Connection

from lantern.db.dialect import insert_for
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
    """
    first, last = epoch_hour(start), epoch_hour(end)
    index = pd.date_range(hour_index(first), periods=max(0, last - first), freq="h")
    result: dict[int, pd.Series] = {}
    if not metric_ids:
        return result
    # plain tuples: pandas builds a frame from SQLAlchemy rows ten times slower (it probes
    # each row for attributes the row answers with a caught lookup error)
    rows = [
        tuple(row)
        for row in connection.execute(
            select(Bucket.metric_id, Bucket.hour, Bucket.count, Bucket.value_sum).where(
                Bucket.metric_id.in_(list(metric_ids)), Bucket.hour >= first, Bucket.hour < last
            )
        )
    ]
    frame = pd.DataFrame(rows, columns=["metric_id", "hour", "count", "value_sum"])
    kinds = kinds or {}
    groups = dict(tuple(frame.groupby("metric_id"))) if len(frame) else {}
    for metric_id in metric_ids:
        held = measure(kinds.get(metric_id, ""))
        values = np.full(len(index), 0.0 if held == "count" else np.nan)
        part = groups.get(metric_id)
        if part is not None:
            positions = part["hour"].to_numpy() - first
            if held == "average":
                counts = part["count"].to_numpy(dtype=float)
                sums = part["value_sum"].to_numpy(dtype=float)
                valued = counts > 0
                values[positions[valued]] = sums[valued] / counts[valued]
            else:
                column = "count" if held == "count" else "value_sum"
                values[positions] = part[column].to_numpy(dtype=float)
        result[metric_id] = pd.Series(values, index=index, name=metric_id)
    return result


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
