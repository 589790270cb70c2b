"""PostgreSQL as it grows: ingest's bucket upsert and the hourly pass's reads, fresh and at 50M.

    python benchmarks/pg_growth.py
    python benchmarks/pg_growth.py --rows 50000000 --metrics 10000 --schema plain

Creates a database of its own (`lantern_growth`, beside the one `--database-url` names;
dropped at the end unless `--keep`), migrates it (`--schema partitioned`, today's schema,
or `plain`: the revision before the buckets were partitioned) and makes `--metrics` count
metrics in one source. Then it measures twice, on the same metrics and the same hours:

1. **fresh**: the database holds only the 30 days the hourly pass reads (metrics x 720
   hours, ending with the last closed hour);
2. **grown**: older history is added before those days, by weeks, until the table holds
   `--rows` buckets (on the partitioned schema each week first gets its partition, as the
   scheduler would have made it then).

Rows are generated in SQL (`generate_series`), hour by hour as ingest writes them, each
metric's first hour kept as ingest keeps it, then `VACUUM ANALYZE`d. What is measured each time:

- **insert**: ingest's bucket upsert (`add_to_buckets`, the statement ingest's
  PostgreSQL path also runs: the buckets, then the first hours of the metrics whose
  buckets it created), for every
  metric at a new hour, 500 increments a transaction, at three new hours: once creating
  the rows, then twice adding to them; microseconds per increment, of the median
  transaction; and as a baseline the same with the bucket statement alone, as it was
  before migration 0013 kept the first hours (the two take turns, a transaction each);
- **read**: the query `run_hour` runs to load a partition's series (`load_series`'s, for
  500 metrics and the 29 days before the hour judged, `pipeline.HISTORY_HOURS`), for
  every metric, three times: its time in the database (`EXPLAIN ANALYZE`'s planning and
  execution), the query with its rows fetched as the driver's tuples, and `load_series`
  itself, which also builds the frames (on four partitions); milliseconds, the median
  partition of 500 metrics;
- **trained metrics**: the first hour of every metric as `run_hour` finds it
  (`pipeline._trained_metrics`, reading `metrics.first_hour`), and as a baseline the
  aggregate over every bucket it ran before migration 0013.

On `--schema plain` (a revision before migration 0013, without `metrics.first_hour`)
only the baselines run; the lines of today's code print nan.

Prints both columns side by side, with the time each fill took and the table's size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url

from lantern.db import session_scope
from lantern.db.migrate import upgrade
from lantern.db.session import make_engine
from lantern.metrics.partitions import HOURS_A_WEEK, ensure_partitions, week_of
from lantern.metrics.service import (
    add_to_buckets,
    bucket_upsert,
    epoch_hour,
    hour_index,
    load_series,
)
from lantern.pipeline import HISTORY_HOURS, PARTITION, _trained_metrics

DATABASE = "lantern_growth"
BEFORE_PARTITIONS = "5e6f7a8b9c0d"  # the revision before migration 0011
FRESH_HOURS = 720
INCREMENTS_A_TRANSACTION = 500


def create_database(admin_url: str) -> str:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        connection.exec_driver_sql(f'CREATE DATABASE "{DATABASE}"')
    admin.dispose()
    return make_url(admin_url).set(database=DATABASE).render_as_string(hide_password=False)


def drop_database(admin_url: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    admin.dispose()


def make_metrics(engine: Engine, metrics: int) -> list[int]:
    """`metrics` count metrics in one source, in SQL: the plain schema's revision is older
    than the models."""
    with engine.begin() as connection:
        workspace = connection.scalar(
            text(
                "INSERT INTO workspaces (name, sensitivity, created_at) "
                "VALUES ('growth', 'medium', now()) RETURNING id"
            )
        )
        source_id = connection.scalar(
            text(
                "INSERT INTO sources (workspace_id, name, key_hash, key_hint, created_at) "
                "VALUES (:w, 'web', 'growth', 'grow', now()) RETURNING id"
            ),
            {"w": workspace},
        )
        connection.execute(
            text(
                "INSERT INTO metrics (source_id, kind, name, created_at) "
                "SELECT :s, 'track', 'Event ' || i, now() FROM generate_series(1, :n) AS i"
            ),
            {"s": source_id, "n": metrics},
        )
        return list(
            connection.scalars(
                text("SELECT id FROM metrics WHERE source_id = :s ORDER BY id"), {"s": source_id}
            )
        )


def fill(engine: Engine, first: int, last: int, ids: list[int], partitioned: bool) -> float:
    """Buckets for every metric and hour in [first, last), a week a statement; seconds."""
    began = time.perf_counter()
    low, high = min(ids), max(ids)
    start = first
    while start < last:
        end = min(last, week_of(start) + HOURS_A_WEEK)
        if partitioned:
            ensure_partitions(engine, now=hour_index(start), retention_days=36_500, ahead=0)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO buckets (metric_id, hour, count, value_sum, value_sq) "
                    "SELECT m, h, (random() * 200)::bigint, 0, 0 "
                    # hour by hour, each hour's metrics in order: as ingest writes them
                    "FROM generate_series(CAST(:a AS int), CAST(:b AS int)) AS h "
                    "CROSS JOIN LATERAL generate_series(CAST(:lo AS int), CAST(:hi AS int)) AS m"
                ),
                {"a": start, "b": end - 1, "lo": low, "hi": high},
            )
            if partitioned:  # each metric's first hour, as every write of buckets keeps it
                connection.execute(
                    text(
                        "UPDATE metrics SET first_hour = :a WHERE id BETWEEN :lo AND :hi "
                        "AND (first_hour IS NULL OR first_hour > :a)"
                    ),
                    {"a": start, "lo": low, "hi": high},
                )
        start = end
    with engine.connect() as connection:
        # the metrics too: moving their first hours back a week at a time left dead rows
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "VACUUM ANALYZE buckets, metrics"
        )
    return time.perf_counter() - began


def rows_and_bytes(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        rows = int(connection.scalar(text("SELECT count(*) FROM buckets")) or 0)
        size = int(
            connection.scalar(
                # a plain table is no partition tree: it is its own size
                text(
                    "SELECT coalesce(sum(pg_total_relation_size(relid)), "
                    "pg_total_relation_size('buckets')) "
                    "FROM pg_partition_tree('buckets'::regclass)"
                )
            )
            or 0
        )
    return rows, size


Write = Callable[[Connection, dict[tuple[int, int], tuple[int, float, float]]], None]


# `add_to_buckets`'s statement on PostgreSQL before migration 0013: the buckets alone.
BUCKETS_ALONE = bucket_upsert(
    "SELECT * FROM unnest(%s::int[], %s::int[], %s::bigint[], %s::float8[], %s::float8[])"
)


def buckets_alone(
    connection: Connection, increments: dict[tuple[int, int], tuple[int, float, float]]
) -> None:
    """The bucket upsert without the metrics' first hours: `add_to_buckets` before 0013."""
    rows = [(*key, *value) for key, value in sorted(increments.items())]
    connection.exec_driver_sql(BUCKETS_ALONE, tuple(list(c) for c in zip(*rows, strict=True)))


def insert_costs(
    engine: Engine, ids: list[int], hours: dict[str, list[int]], writes: dict[str, Write]
) -> dict[str, tuple[float, float]]:
    """Microseconds per increment, the median transaction's, per writer: creating the
    buckets of its `hours`, then adding to them (twice). The writers take turns
    transaction by transaction, so that they share whatever else loads the machine."""
    rounds: dict[str, list[list[float]]] = {name: [] for name in writes}
    for again in range(3):
        took: dict[str, list[float]] = {name: [] for name in writes}
        for n in range(len(next(iter(hours.values())))):
            for i in range(0, len(ids), INCREMENTS_A_TRANSACTION):
                part = ids[i : i + INCREMENTS_A_TRANSACTION]
                for name, write in writes.items():
                    hour = hours[name][n]
                    began = time.perf_counter()
                    with engine.begin() as connection:
                        write(connection, {(m, hour): (3, 0.0, 0.0) for m in part})
                    took[name].append((time.perf_counter() - began) / len(part) * 1e6)
        for name in writes:
            rounds[name].append(took[name])
        if again == 0:
            with engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "ANALYZE buckets"
                )
    return {
        name: (statistics.median(r[0]), statistics.median(r[1] + r[2]))
        for name, r in rounds.items()
    }


# What `load_series` asks the database (its IN list as one array parameter).
SERIES_QUERY = (
    "SELECT metric_id, hour, count, value_sum FROM buckets "
    "WHERE metric_id = ANY(%s) AND hour >= %s AND hour < %s"
)
# Partitions whose series `load_series` builds, for its own line: building frames from
# rows costs seconds a partition here, whatever the database holds.
FRAMED_PARTITIONS = 4


def read_cost(engine: Engine, ids: list[int], hour: int) -> dict[str, float]:
    """Milliseconds per partition of metrics (the median partition's): the query in the
    database alone, the query with its rows fetched, and `load_series`."""
    first, last = hour + 1 - HISTORY_HOURS, hour + 1
    parts = [ids[i : i + PARTITION] for i in range(0, len(ids), PARTITION)]
    inside, fetched, framed = [], [], []
    kinds = dict.fromkeys(ids, "track")
    for run in range(3):
        for number, part in enumerate(parts):
            with engine.connect() as connection:
                plan = connection.exec_driver_sql(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + SERIES_QUERY, (part, first, last)
                ).scalar_one()[0]
                inside.append(plan["Planning Time"] + plan["Execution Time"])
                began = time.perf_counter()
                rows = connection.exec_driver_sql(SERIES_QUERY, (part, first, last)).fetchall()
                fetched.append((time.perf_counter() - began) * 1000)
                assert len(rows) == len(part) * HISTORY_HOURS
                if run and number < FRAMED_PARTITIONS:
                    began = time.perf_counter()
                    series = load_series(
                        connection,
                        metric_ids=part,
                        start=hour_index(first),
                        end=hour_index(last),
                        kinds=kinds,
                    )
                    framed.append((time.perf_counter() - began) * 1000)
                    assert len(series[part[0]]) == HISTORY_HOURS
    label = f"ms for {PARTITION} metrics x {HISTORY_HOURS} h"
    return {
        f"read, in the database (plan + execution): {label}": statistics.median(inside),
        f"read, the query with its rows fetched: {label}": statistics.median(fetched),
        f"read, load_series (frames too): {label}": statistics.median(framed),
    }


# How `_trained_metrics` found each metric's first hour before migration 0013.
FIRST_HOURS_AGGREGATED = "SELECT metric_id, min(hour) FROM buckets GROUP BY metric_id"


def trained_cost(engine: Engine, hour: int, metrics: int, today: bool) -> dict[str, float]:
    """Milliseconds, the median of three: `_trained_metrics` as the pass runs it (`today`:
    not on the plain schema, which has no `metrics.first_hour`), and the aggregate over
    every bucket it ran before (the baseline)."""
    kept, aggregated = [], []
    for _ in range(3):
        if today:
            began = time.perf_counter()
            with session_scope(engine) as session:
                trained = _trained_metrics(session, hour, None)
            kept.append((time.perf_counter() - began) * 1000)
            assert len(trained) == metrics
        began = time.perf_counter()
        with engine.connect() as connection:
            found = connection.exec_driver_sql(FIRST_HOURS_AGGREGATED).fetchall()
        aggregated.append((time.perf_counter() - began) * 1000)
        assert len(found) == metrics
    return {
        "trained metrics (first hours of all, metrics.first_hour): ms": (
            statistics.median(kept) if kept else float("nan")
        ),
        "baseline: first hours aggregated over all buckets (before 0013): ms": (
            statistics.median(aggregated)
        ),
    }


def measure(
    engine: Engine, ids: list[int], hour: int, new_hours: list[int], today: bool
) -> dict[str, float]:
    """Every line of a column; `new_hours`: six hours no bucket holds yet. `today` is False
    on the plain schema: it has no `metrics.first_hour`, so only the baselines run there."""
    writes: dict[str, Write] = {"alone": buckets_alone}
    if today:
        writes["today"] = add_to_buckets
    costs = insert_costs(engine, ids, {"today": new_hours[:3], "alone": new_hours[3:]}, writes)
    nan = (float("nan"), float("nan"))
    created, added = costs.get("today", nan)
    alone_created, alone_added = costs["alone"]
    return {
        "insert: us an increment, new bucket": created,
        "insert: us an increment, existing bucket": added,
        "baseline: the bucket statement alone (before 0013), new bucket": alone_created,
        "baseline: the bucket statement alone (before 0013), existing bucket": alone_added,
        **read_cost(engine, ids, hour),
        **trained_cost(engine, hour, len(ids), today),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("LANTERN_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1/test"),
    )
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--metrics", type=int, default=10_000)
    parser.add_argument("--schema", choices=["partitioned", "plain"], default="partitioned")
    parser.add_argument("--keep", action="store_true", help=f"keep the {DATABASE} database")
    args = parser.parse_args()

    url = create_database(args.database_url)
    engine = make_engine(url)
    partitioned = args.schema == "partitioned"
    try:
        upgrade(engine, "head" if partitioned else BEFORE_PARTITIONS)
        ids = make_metrics(engine, args.metrics)
        now = epoch_hour(datetime.now(UTC))
        judged = now - 1  # the last closed hour, the one run_hour scores
        fresh_first = judged + 1 - FRESH_HOURS
        if partitioned:
            ensure_partitions(engine, now=hour_index(now), retention_days=36_500)
        fills = [fill(engine, fresh_first, judged + 1, ids, partitioned)]
        sizes = [rows_and_bytes(engine)]
        columns = [measure(engine, ids, judged, list(range(now, now + 6)), partitioned)]
        older = max(0, args.rows - sizes[0][0]) // len(ids)
        fills.append(fill(engine, fresh_first - older, fresh_first, ids, partitioned))
        sizes.append(rows_and_bytes(engine))
        columns.append(measure(engine, ids, judged, list(range(now + 6, now + 12)), partitioned))
    finally:
        engine.dispose()
        if not args.keep:
            drop_database(args.database_url)

    load = os.getloadavg()
    print(f"schema: {args.schema}, {args.metrics:,} metrics, load average {load[0]:.1f}")
    print(f"{'':70} {'fresh':>14} {'grown':>14}")
    print(f"{'bucket rows':70} {sizes[0][0]:>14,} {sizes[1][0]:>14,}")
    print(
        f"{'buckets on disk (MB)':70} {sizes[0][1] / 2**20:>14,.0f} {sizes[1][1] / 2**20:>14,.0f}"
    )
    print(f"{'fill: seconds (these rows added)':70} {fills[0]:>14,.1f} {fills[1]:>14,.1f}")
    for name in columns[0]:
        print(f"{name:70} {columns[0][name]:>14,.2f} {columns[1][name]:>14,.2f}")


if __name__ == "__main__":
    main()
