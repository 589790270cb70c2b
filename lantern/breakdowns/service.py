"""A source's dimensions, the values that get counts of their own, and the hourly counts.

The cap: each dimension of a source keeps counts for its first `VALUES_PER_DIMENSION`
distinct values, in the order ingest first met them (within a group of events, the order
of the events); every later new value is counted under the dimension's "other", and
never creates a value row, let alone a metric. The rule is the metrics' own (a source's
first names get metrics, later ones the overflow metric): deterministic, and it bounds a
metric's hour to `dimensions x (cap + 1)` rows whatever a client sends. On PostgreSQL the
admission of new values takes a transaction-level advisory lock per dimension, so that
writers in several processes cannot admit more than the cap between them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, event, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session

from lantern.breakdowns.dimensions import (
    DEFAULT_DIMENSIONS,
    MAX_DIMENSIONS,
    PROPERTY_PREFIX,
    Spec,
    check_dimension_name,
)
from lantern.breakdowns.models import (
    BreakdownAlert,
    BreakdownBucket,
    BreakdownDimension,
    BreakdownValue,
)
from lantern.db.dialect import insert_for
from lantern.db.session import write_serialized
from lantern.errors import BadRequest
from lantern.metrics.models import Metric
from lantern.metrics.partitions import oldest_kept_hour

# Distinct values a dimension counts on their own; the rest are "other".
VALUES_PER_DIMENSION = 20
# The stored form of "other": no real value is empty.
OTHER_VALUE = ""
# How long a process uses a source's dimensions before reading them again (a change in
# Settings reaches every process within this; the one that made it at once).
SPEC_CACHE_SECONDS = 10.0
# Dimension values whose expired rows one delete takes (one short transaction each).
EXPIRE_VALUES_A_CHUNK = 200
# The first key of PostgreSQL's two-key advisory locks taken to admit a dimension's values.
ADMIT_LOCK_SPACE = 0x42D0
# A property refused on its data: at least this many events in one group carried it, and
# nearly each had its own value (the share below). A category repeats; an id does not.
RATIO_MIN_EVENTS = 50
RATIO_MAX_DISTINCT = 0.9
ONE_VALUE_PER_EVENT = (
    "almost every event has a value of its own: it looks like an id of a user, a device "
    "or an order, not a category"
)


def _order(name: str) -> tuple[int, str]:
    """Defaults first, in their documented order, then properties by name."""
    if name in DEFAULT_DIMENSIONS:
        return (DEFAULT_DIMENSIONS.index(name), name)
    return (len(DEFAULT_DIMENSIONS), name)


def load_spec(connection: Connection, *, source_id: int) -> Spec:
    """The dimensions a source records now (refused ones left out)."""
    rows = connection.execute(
        select(BreakdownDimension.id, BreakdownDimension.name).where(
            BreakdownDimension.source_id == source_id, BreakdownDimension.refused.is_(None)
        )
    ).all()
    return Spec(tuple(sorted(((i, n) for i, n in rows), key=lambda row: _order(row[1]))))


class SpecCache:
    """Each source's dimensions, read at most every `SPEC_CACHE_SECONDS` by ingest."""

    def __init__(self, ttl: float = SPEC_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, int], tuple[float, Spec]] = {}
        self._lock = threading.Lock()

    def get(self, engine: Engine, source_id: int) -> Spec:
        key = (str(engine.url), source_id)
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        with engine.connect() as connection:
            spec = load_spec(connection, source_id=source_id)
        with self._lock:
            self._entries[key] = (now + self.ttl, spec)
        return spec

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


specs = SpecCache()


@dataclass(slots=True)
class KnownValues:
    """A dimension's value ids as committed: its own values, its "other", and whether it is
    full (every new value is "other") or refused (nothing is counted)."""

    ids: dict[str, int] = field(default_factory=dict)
    other: int | None = None
    full: bool = False
    refused: bool = False

    def lookup(self, value: str) -> int | None:
        """The id `value` is counted under, or None if it would need a new row."""
        found = self.ids.get(value)
        if found is None and self.full:
            return self.other
        return found


class ValueIdCache:
    """Dimension values already committed, so ingest rarely reads the values table."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int], KnownValues] = {}
        self._lock = threading.Lock()

    def get(self, url: str, dimension_id: int) -> KnownValues | None:
        return self._known.get((url, dimension_id))

    def remember(self, url: str, known: dict[int, KnownValues]) -> None:
        with self._lock:
            for dimension_id, values in known.items():
                self._known[(url, dimension_id)] = values

    def clear(self) -> None:
        with self._lock:
            self._known.clear()


value_ids = ValueIdCache()


def resolve_values(
    connection: Connection, *, wanted: dict[int, list[str]], cap: int = VALUES_PER_DIMENSION
) -> tuple[dict[tuple[int, str], int], dict[int, KnownValues]]:
    """The value id each (dimension, value) is counted under, admitting new values within
    the cap; values of a refused or deleted dimension get none.

    `wanted` lists each dimension's values in the order they were met. Also returns what
    was read or written here, for `value_ids.remember` once the transaction commits.
    """
    url = str(connection.engine.url)
    found: dict[tuple[int, str], int] = {}
    learned: dict[int, KnownValues] = {}
    for dimension_id in sorted(wanted):
        values = wanted[dimension_id]
        known = value_ids.get(url, dimension_id)
        if known is None or (not known.refused and any(known.lookup(v) is None for v in values)):
            known = learned[dimension_id] = _admit(connection, dimension_id, values, cap)
        if known.refused:
            continue
        for value in values:
            value_id = known.lookup(value)
            if value_id is not None:
                found[(dimension_id, value)] = value_id
    return found, learned


def _admit(connection: Connection, dimension_id: int, values: list[str], cap: int) -> KnownValues:
    """Give new values of a dimension rows of their own while there is room, else "other"."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            "SELECT pg_advisory_xact_lock(%s, %s)", (ADMIT_LOCK_SPACE, dimension_id)
        )
    state = connection.execute(
        select(BreakdownDimension.refused).where(BreakdownDimension.id == dimension_id)
    ).first()
    if state is None or state[0] is not None:
        return KnownValues(refused=True)
    known = _read_values(connection, dimension_id, cap)
    new = [v for v in dict.fromkeys(values) if v not in known.ids]
    room = max(0, cap - len(known.ids))
    rows = [{"dimension_id": dimension_id, "value": v} for v in new[:room]]
    if len(known.ids) + len(rows) >= cap and known.other is None:
        rows.append({"dimension_id": dimension_id, "value": OTHER_VALUE})
    if rows:
        connection.execute(insert_for(connection, BreakdownValue).on_conflict_do_nothing(), rows)
        known = _read_values(connection, dimension_id, cap)
    return known


def _read_values(connection: Connection, dimension_id: int, cap: int) -> KnownValues:
    known = KnownValues()
    for value, value_id in connection.execute(
        select(BreakdownValue.value, BreakdownValue.id).where(
            BreakdownValue.dimension_id == dimension_id
        )
    ):
        if value == OTHER_VALUE:
            known.other = value_id
        else:
            known.ids[value] = value_id
    known.full = len(known.ids) >= cap and known.other is not None
    return known


def refuse_dimensions(connection: Connection, *, reasons: dict[int, str], now: datetime) -> None:
    """Stop recording dimensions whose values looked personal, deleting what they counted."""
    for dimension_id in sorted(reasons):
        changed = connection.execute(
            update(BreakdownDimension)
            .where(BreakdownDimension.id == dimension_id, BreakdownDimension.refused.is_(None))
            .values(refused=reasons[dimension_id][:300], refused_at=now)
        ).rowcount
        if changed:
            # its values' metrics (alerts per value) name its values: they go first
            drop_value_metrics(connection, dimension_ids=[dimension_id])
            connection.execute(
                delete(BreakdownAlert).where(BreakdownAlert.dimension_id == dimension_id)
            )
            connection.execute(
                delete(BreakdownValue).where(BreakdownValue.dimension_id == dimension_id)
            )


def drop_value_metrics(
    connection: Connection, *, dimension_ids: list[int], parent_id: int | None = None
) -> int:
    """Delete the metrics of the values of `dimension_ids` (alerts per value: of one
    parent's, or of every metric's), with their buckets and insights; returns how many.

    Their links are plain integers (`Metric.breakdown_value_id`), so whatever deletes a
    value or an alert calls this first.
    """
    values = select(BreakdownValue.id).where(BreakdownValue.dimension_id.in_(dimension_ids))
    query = delete(Metric).where(Metric.breakdown_value_id.in_(values))
    if parent_id is not None:
        query = query.where(Metric.parent_id == parent_id)
    return int(connection.execute(query).rowcount or 0)


# Built once: this runs for every ingest transaction that counts a breakdown.
_UPSERT = (
    "INSERT INTO breakdown_buckets (value_id, metric_id, hour, count, valued, value_sum) {rows} "
    "ON CONFLICT (value_id, metric_id, hour) DO UPDATE SET "
    "count = breakdown_buckets.count + excluded.count, "
    "valued = breakdown_buckets.valued + excluded.valued, "
    "value_sum = breakdown_buckets.value_sum + excluded.value_sum"
)


def breakdown_upsert(rows: str) -> str:
    """The statement adding increments to breakdown buckets; `rows` gives them in key order."""
    return _UPSERT.format(rows=rows)


_FROM_ARRAYS = breakdown_upsert(
    "SELECT * FROM unnest(%s::int[], %s::int[], %s::int[], %s::bigint[], %s::bigint[], "
    "%s::float8[])"
)
_FROM_VALUES = breakdown_upsert("VALUES (?, ?, ?, ?, ?, ?)")


def add_to_breakdowns(
    connection: Connection, increments: dict[tuple[int, int, int], tuple[int, int, float]]
) -> None:
    """Add (events, events with a value, value sum) to breakdown buckets `(value_id,
    metric_id, hour)`."""
    add_breakdown_rows(connection, [(*key, *value) for key, value in sorted(increments.items())])


def add_breakdown_rows(
    connection: Connection, rows: list[tuple[int, int, int, int, int, float]]
) -> None:
    """`add_to_breakdowns` for rows (value_id, metric_id, hour, events, events with a
    value, value sum) already summed per key and in key order (the order rows are locked)."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            _FROM_ARRAYS, tuple(list(column) for column in zip(*rows, strict=True))
        )
    else:
        connection.exec_driver_sql(_FROM_VALUES, rows)


def add_default_dimensions(session: Session, *, source_id: int) -> None:
    """Give a new source the default dimensions."""
    session.add_all(BreakdownDimension(source_id=source_id, name=n) for n in DEFAULT_DIMENSIONS)
    session.flush()


def list_dimensions(session: Session, *, source_id: int) -> list[BreakdownDimension]:
    """A source's dimensions, recording or refused, in the order they are shown."""
    rows = session.scalars(
        select(BreakdownDimension).where(BreakdownDimension.source_id == source_id)
    ).all()
    return sorted(rows, key=lambda row: _order(row.name))


def list_dimensions_of(connection: Connection, *, source_id: int) -> list[Row[Any]]:
    """`list_dimensions` as rows (id, name, refused, refused_at), for readers of a connection."""
    rows = connection.execute(
        select(
            BreakdownDimension.id,
            BreakdownDimension.name,
            BreakdownDimension.refused,
            BreakdownDimension.refused_at,
        ).where(BreakdownDimension.source_id == source_id)
    ).all()
    return sorted(rows, key=lambda row: _order(row.name))


def set_dimensions(session: Session, *, source_id: int, names: list[str]) -> None:
    """Make `names` the source's dimensions: new ones start counting, dropped ones are
    deleted with their counts, kept ones keep their counts (and a refusal its reason)."""
    wanted = list(dict.fromkeys(name.strip() for name in names))
    if len(wanted) > MAX_DIMENSIONS:
        raise BadRequest(
            f"{len(wanted)} dimensions given; a source has at most {MAX_DIMENSIONS}: "
            "keep the ones you split alerts by",
            error="too_many_dimensions",
        )
    for name in wanted:
        reason = check_dimension_name(name)
        if reason is not None:
            raise BadRequest(reason, error="personal_dimension")
    existing = {row.name: row for row in list_dimensions(session, source_id=source_id)}
    dropped = [row for name, row in existing.items() if name not in wanted]
    if dropped:
        # their values' metrics (alerts per value) go with their values
        drop_value_metrics(session.connection(), dimension_ids=[row.id for row in dropped])
    for row in dropped:
        session.delete(row)
    session.add_all(
        BreakdownDimension(source_id=source_id, name=name)
        for name in wanted
        if name not in existing
    )
    session.flush()
    event.listen(session, "after_commit", _forget, once=True)


def _forget(_session: Session) -> None:
    """Once a change of dimensions is committed, this process reads them afresh."""
    specs.clear()
    value_ids.clear()


def property_dimensions(spec: Spec) -> frozenset[int]:
    """The ids of a spec's `properties.<key>` dimensions (the ones checked on their data)."""
    return frozenset(i for i, name in spec.dimensions if name.startswith(PROPERTY_PREFIX))


def expire_breakdowns(engine: Engine, *, now: datetime, retention_days: int) -> int:
    """Delete breakdown rows of hours older than the retention; returns how many went.

    Row by row on both engines, a few dimension values a transaction (each delete reaches
    its values' expired hours through the primary key): a breakdown holds at most
    `dimensions x (cap + 1)` rows per metric-hour, and most metric-hours far fewer.
    """
    keep_from = oldest_kept_hour(now, retention_days=retention_days)
    with engine.connect() as connection:
        ids = list(connection.scalars(select(BreakdownValue.id).order_by(BreakdownValue.id)))
    deleted = 0
    for start in range(0, len(ids), EXPIRE_VALUES_A_CHUNK):
        chunk = ids[start : start + EXPIRE_VALUES_A_CHUNK]
        with write_serialized(engine), engine.begin() as connection:
            result = connection.execute(
                delete(BreakdownBucket).where(
                    BreakdownBucket.value_id.in_(chunk), BreakdownBucket.hour < keep_from
                )
            )
            deleted += result.rowcount or 0
    return deleted
