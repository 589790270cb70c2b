"""Weekly partitions of the buckets table on PostgreSQL, and the retention on both engines.

On PostgreSQL `buckets` is partitioned by range of `hour`, one partition a UTC week
(Monday 00:00 to Monday 00:00), named after its Monday (`buckets_w20261130`). Why weeks:
the retention drops whole partitions, so a week keeps at most seven days more than
`LANTERN_RETENTION_DAYS` (a month would keep up to 31); the hourly pass reads 29 days,
five partitions; autovacuum works on each partition alone, and the one ingest rewrites
(this week's) stays a week of rows, so its dead row versions are found and cleared in
proportion; and 400 days are 58 partitions, few enough for the planner to prune at no
visible cost. At 1,000,000 metrics a week is 168 million rows (14 GB), a month 720
million.

`ensure_partitions` (the scheduler's hourly `partitions` job, and at start-up) creates
this week's partition and the next `PARTITIONS_AHEAD`. An hour no partition covers (the
scheduler stopped for a month, history sent to `/v1/import` for a week before the
upgrade) lands in the DEFAULT partition, `buckets_default`, so no event is lost; the next
run of the job gives each week found there (within the retention) a partition of its own
and moves its rows into it. A partition is created beside the table and attached
(`ATTACH PARTITION`, which takes a SHARE UPDATE EXCLUSIVE lock on `buckets`, not the
ACCESS EXCLUSIVE that `CREATE TABLE ... PARTITION OF` takes), so ingest and the hourly
pass never wait on it; each step gives up after `LOCK_TIMEOUT` rather than queue ingest
behind it, and the next run tries again.

`expire_buckets` (the daily clean-up) enforces the retention: on PostgreSQL each
partition whose last hour is older than the retention is dropped whole (no row is
deleted, nothing is left for vacuum); hours that sit in a partition that is not a week
(the DEFAULT one, and `buckets_before_YYYYMMDD`, which holds every hour stored before the
upgrade to partitions) are deleted row by row. On SQLite, a plain table, the expired
rows are deleted metric by metric, in short transactions taken in turn with ingest.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from lantern.db.session import write_serialized
from lantern.metrics.models import Metric
from lantern.metrics.service import epoch_hour

log = logging.getLogger(__name__)

HOURS_A_WEEK = 168
# Monday 1970-01-05 00:00 UTC in epoch hours: the epoch itself was a Thursday.
FIRST_MONDAY = 96
# Weeks created after the current one: a month of events has a partition waiting even
# if the scheduler stops.
PARTITIONS_AHEAD = 4
DEFAULT_PARTITION = "buckets_default"
# How long a partition's creation or drop waits for a lock before trying again next
# run: ingest's inserts would queue behind a waiting ACCESS EXCLUSIVE request.
LOCK_TIMEOUT = "2s"
# Metrics whose expired rows one delete takes (one short transaction each).
EXPIRE_METRICS_A_CHUNK = 200

# Every table that is a partition of buckets: weeks, the rows from before partitions,
# the default. Alembic leaves them alone (they are not in the models).
PARTITION_NAME = re.compile(r"^buckets_(w\d{8}|before_\d{8}|default)$")
_BOUND = re.compile(r"FOR VALUES FROM \((-?\d+|MINVALUE)\) TO \((-?\d+|MAXVALUE)\)")


def is_partition_name(name: str) -> bool:
    """Whether `name` is a partition of buckets (which Alembic's comparison skips)."""
    return PARTITION_NAME.match(name) is not None


def compared_by_alembic(name: str | None, type_: str, _parents: object) -> bool:
    """Alembic's `include_name`: every table but the partitions, which no model declares."""
    return not (type_ == "table" and name is not None and is_partition_name(name))


def week_of(hour: int) -> int:
    """The epoch hour of the Monday 00:00 UTC starting the week that holds `hour`."""
    return hour - (hour - FIRST_MONDAY) % HOURS_A_WEEK


def week_name(start: int) -> str:
    """The partition name of the week starting at epoch hour `start`."""
    return f"buckets_w{datetime.fromtimestamp(start * 3600, UTC):%Y%m%d}"


def oldest_kept_hour(now: datetime, *, retention_days: int) -> int:
    """The first epoch hour the retention keeps: hours before it go."""
    return epoch_hour(now - timedelta(days=retention_days))


@dataclass(frozen=True, slots=True)
class Part:
    """A partition of buckets and the hours it holds, `[lower, upper)`; None is unbounded."""

    name: str
    lower: int | None
    upper: int | None
    default: bool = False

    @property
    def is_week(self) -> bool:
        return (
            self.lower is not None
            and self.upper == self.lower + HOURS_A_WEEK
            and week_of(self.lower) == self.lower
        )

    def overlaps(self, lower: int, upper: int) -> bool:
        if self.default:
            return False
        below = self.lower is None or self.lower < upper
        above = self.upper is None or self.upper > lower
        return below and above


def is_partitioned(connection: Connection) -> bool:
    """Whether buckets is a partitioned table here (PostgreSQL, at migration 0011 or later)."""
    if connection.dialect.name != "postgresql":
        return False
    kind = connection.scalar(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass('buckets')")
    )
    return kind == "p"


def partitions(connection: Connection) -> list[Part]:
    """The partitions of buckets with their ranges, oldest first, the default last."""
    rows = connection.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits AS i "
            "JOIN pg_class AS c ON c.oid = i.inhrelid WHERE i.inhparent = 'buckets'::regclass"
        )
    ).all()
    parts = []
    for name, bound in rows:
        if bound == "DEFAULT":
            parts.append(Part(name, None, None, default=True))
            continue
        found = _BOUND.fullmatch(bound)
        if found is None:  # not a range Lantern makes: left alone, never dropped
            log.warning("partition %s of buckets has an unexpected bound: %s", name, bound)
            continue
        low, high = found.groups()
        parts.append(
            Part(
                name,
                None if low == "MINVALUE" else int(low),
                None if high == "MAXVALUE" else int(high),
            )
        )
    return sorted(parts, key=lambda p: (p.default, p.lower is not None, p.lower or 0))


def _default_weeks(connection: Connection, parts: list[Part]) -> set[int]:
    """The weeks of the hours sitting in the default partition."""
    if not any(part.default for part in parts):
        return set()
    hours = connection.scalars(
        text(
            f"SELECT DISTINCT hour - ((hour - {FIRST_MONDAY}) % {HOURS_A_WEEK} "
            f"+ {HOURS_A_WEEK}) % {HOURS_A_WEEK} FROM {DEFAULT_PARTITION}"
        )
    ).all()
    return {int(hour) for hour in hours}


def ensure_partitions(
    engine: Engine, *, now: datetime, retention_days: int, ahead: int = PARTITIONS_AHEAD
) -> list[str]:
    """Create this week's partition and the next `ahead`, and give each week found in the
    default partition one of its own, moving its rows; returns the partitions created.

    Nothing to do on SQLite. A week that could not be created (a lock not granted in
    `LOCK_TIMEOUT`) is logged and left for the next run; its events meanwhile go to the
    default partition.
    """
    with engine.connect() as connection:
        if not is_partitioned(connection):
            return []
        parts = partitions(connection)
        strays = _default_weeks(connection, parts)
    current = week_of(epoch_hour(now))
    oldest = week_of(oldest_kept_hour(now, retention_days=retention_days))
    wanted = {current + HOURS_A_WEEK * i for i in range(ahead + 1)}
    # Weeks past the retention stay in the default partition until the clean-up deletes them.
    wanted |= {week for week in strays if week >= oldest}
    created = []
    for start in sorted(wanted):
        if any(part.overlaps(start, start + HOURS_A_WEEK) for part in parts):
            continue
        try:
            _create_week(engine, start, moving=start in strays)
        # A lock not granted in time, or an event for this week that reached the default
        # partition meanwhile (the attach refuses the range): the next run tries again.
        except (OperationalError, IntegrityError) as exc:
            log.warning("partition %s not created: %s", week_name(start), _first_line(exc))
            continue
        created.append(week_name(start))
    if created:
        log.info("bucket partitions created: %s", ",".join(created))
    return created


def _create_week(engine: Engine, start: int, *, moving: bool) -> None:
    """Create the week's partition beside buckets, fill it from the default, attach it."""
    name, end = week_name(start), start + HOURS_A_WEEK
    with engine.begin() as connection:
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        if moving:
            # First, so no event for this week enters the default between the move and
            # the attach (which would then refuse the range).
            connection.exec_driver_sql(f"LOCK TABLE {DEFAULT_PARTITION} IN EXCLUSIVE MODE")
        connection.exec_driver_sql(
            f"CREATE TABLE {name} (LIKE buckets INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        # The attach then trusts this check instead of scanning the table for its range.
        connection.exec_driver_sql(
            f"ALTER TABLE {name} ADD CONSTRAINT {name}_hours "
            f"CHECK (hour >= {start} AND hour < {end})"
        )
        if moving:
            connection.exec_driver_sql(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "
                f"WHERE hour >= {start} AND hour < {end} RETURNING *) "
                f"INSERT INTO {name} SELECT * FROM moved"
            )
        connection.exec_driver_sql(
            f"ALTER TABLE buckets ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})"
        )
        connection.exec_driver_sql(f"ALTER TABLE {name} DROP CONSTRAINT {name}_hours")


@dataclass(frozen=True, slots=True)
class Expired:
    """What one run of the retention removed."""

    dropped: tuple[str, ...]
    deleted_rows: int
    # metrics whose every bucket has gone: they train again when events come back
    untrained: int = 0


def expire_buckets(engine: Engine, *, now: datetime, retention_days: int) -> Expired:
    """Remove the buckets of hours older than the retention (see the module's docstring),
    then the first hour of each metric left without any."""
    keep_from = oldest_kept_hour(now, retention_days=retention_days)
    with engine.connect() as connection:
        partitioned = is_partitioned(connection)
        parts = partitions(connection) if partitioned else []
    if not partitioned:
        deleted = _delete_before(engine, "buckets", keep_from)
        return Expired((), deleted, _forget_first_hours(engine, keep_from))
    dropped: list[str] = []
    deleted = 0
    for part in parts:
        if not part.default and part.upper is not None and part.upper <= keep_from:
            try:
                with engine.begin() as connection:
                    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    connection.exec_driver_sql(f"DROP TABLE {part.name}")
            except OperationalError as exc:  # a lock not granted in time: tomorrow's run
                log.warning("partition %s not dropped: %s", part.name, _first_line(exc))
                continue
            dropped.append(part.name)
        elif not part.is_week and (part.lower is None or part.lower < keep_from):
            deleted += _delete_before(engine, part.name, keep_from)
    if dropped:
        log.info("bucket partitions dropped: %s", ",".join(dropped))
    return Expired(tuple(dropped), deleted, _forget_first_hours(engine, keep_from))


def _forget_first_hours(engine: Engine, keep_from: int) -> int:
    """Clear the first hour of the metrics left without buckets; returns how many.

    A metric whose first weeks expired keeps its first hour: it had its training week, and
    the pass goes on scoring it. One whose every bucket expired (no event for the whole
    retention) leaves the pass and trains again when events come back, as its first hour
    read from its buckets would say. Only metrics first seen before `keep_from` can be
    left without buckets; each costs a lookup of its buckets' primary key. On PostgreSQL,
    a bucket committed by ingest while this runs, for a metric it finds without any, may
    be left with its metric's first hour cleared: the metric's next bucket sets it again.
    """
    statement = text(
        "UPDATE metrics SET first_hour = NULL WHERE first_hour < :keep_from "
        "AND NOT EXISTS (SELECT 1 FROM buckets WHERE buckets.metric_id = metrics.id)"
    )
    with write_serialized(engine), engine.begin() as connection:
        return connection.execute(statement, {"keep_from": keep_from}).rowcount or 0


def _delete_before(engine: Engine, table: str, keep_from: int) -> int:
    """Delete `table`'s rows of hours before `keep_from`, a few metrics a transaction.

    Each delete reaches its metrics' expired hours through the primary key (metric,
    hour), so it reads only what it deletes.
    """
    with engine.connect() as connection:
        metric_ids = list(connection.scalars(select(Metric.id).order_by(Metric.id)))
    statement = text(
        f"DELETE FROM {table} WHERE metric_id IN :ids AND hour < :keep_from"
    ).bindparams(bindparam("ids", expanding=True))
    deleted = 0
    for chunk in _chunks(metric_ids, EXPIRE_METRICS_A_CHUNK):
        with write_serialized(engine), engine.begin() as connection:
            result = connection.execute(statement, {"ids": chunk, "keep_from": keep_from})
            deleted += result.rowcount or 0
    return deleted


def _first_line(exc: Exception) -> str:
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0]


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
