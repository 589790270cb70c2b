"""Storage per metric-hour, and optionally one hourly pass, on a fresh database.

    python benchmarks/storage.py --metrics 1000 --hours 720
    python benchmarks/storage.py --metrics 1000 --hours 720 --pass
    python benchmarks/storage.py --database-url postgresql+psycopg://127.0.0.1/test ...

Creates a temporary database (a SQLite file in a temporary folder, or a new PostgreSQL
database next to the one `--database-url` names, dropped at the end), migrates it, and
fills it with N metrics x H hours of buckets through the service's own write path
(`add_to_buckets`, one transaction per 100 metrics): bench-like hourly counts, each
bucket written once. Prints the database's growth in bytes per metric-hour: on SQLite the
file's size after a checkpoint against the empty migrated file; on PostgreSQL
`pg_total_relation_size` (heap, indexes, TOAST) of the buckets table's partitions and of
the metrics table.

With `--pass`, it then runs `pipeline.run_hour` inline twice: for the hour before the last
(each metric's first pass, fitting its model on its whole history) and for the last hour
(a trained metric's ordinary pass: its saved state and 29 days of buckets), and prints
the wall time of each per metric, with the process's peak RSS, and the bytes per
metric-hour of what the passes stored of what the detector expected (the first pass
stores each metric's whole judged history).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from scratch import scratch_database
from sqlalchemy import Engine, text

from lantern import pipeline
from lantern.config import Settings
from lantern.db import session_scope
from lantern.db.migrate import upgrade
from lantern.db.session import make_engine
from lantern.metrics.models import Metric
from lantern.metrics.service import add_to_buckets
from lantern.workspaces.service import create_source, get_or_create_workspace

CHUNK = 100  # metrics written per transaction
Executor = Literal["inline", "process"]


def counts(metrics: int, hours: int, seed: int = 1) -> np.ndarray:
    """Hourly counts (metrics x hours): daily and weekly rhythm, levels from 3 to 20,000."""
    rng = np.random.default_rng(seed)
    steps = np.arange(hours)
    peak = np.exp(rng.uniform(np.log(3), np.log(20000), metrics))
    phase = rng.integers(0, 24, metrics)
    daily = 0.55 + 0.45 * np.sin(2 * np.pi * (steps[None, :] + phase[:, None]) / 24)
    weekly = np.where((steps // 24) % 7 >= 5, 0.7, 1.0)[None, :]
    return np.asarray(rng.poisson(peak[:, None] * daily * weekly))


def fill(engine: Engine, metrics: int, hours: int, last: int, kind: str) -> float:
    """Write `metrics` x `hours` buckets ending at epoch hour `last`; seconds taken.

    A count metric (`track`) keeps its count and zero sums; a `value` metric also a sum
    of values and a sum of their squares (one value of 1.5 an event).
    """
    values = counts(metrics, hours)
    first = last - hours + 1
    began = time.perf_counter()
    with session_scope(engine) as session:
        workspace = get_or_create_workspace(session, name="bench")
        source, _ = create_source(session, workspace=workspace, name="web")
        source_id = source.id
    for start in range(0, metrics, CHUNK):
        with session_scope(engine) as session:
            rows = [
                Metric(source_id=source_id, kind=kind, name=f"Event {i}")
                for i in range(start, min(start + CHUNK, metrics))
            ]
            session.add_all(rows)
            session.flush()
            increments: dict[tuple[int, int], tuple[int, float, float]] = {}
            for offset, metric in enumerate(rows):
                for h, c in enumerate(values[start + offset]):
                    value = 1.5 * float(c) if kind == "value" else 0.0
                    increments[(metric.id, first + h)] = (int(c), value, 1.5 * value)
            add_to_buckets(session.connection(), increments)
    return time.perf_counter() - began


def sqlite_bytes(engine: Engine, path: Path) -> int:
    """The SQLite file's size once the write-ahead log is folded into it."""
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def postgres_bytes(engine: Engine) -> dict[str, int]:
    """`pg_total_relation_size` of the tables that grow with metric-hours.

    A partitioned table holds nothing itself: its size is its partitions'
    (`pg_partition_tree`, which has no rows for a plain table).
    """
    with engine.connect() as connection:
        return {
            table: int(
                connection.execute(
                    text(
                        "SELECT coalesce(sum(pg_total_relation_size(relid)), "
                        "pg_total_relation_size(CAST(:t AS regclass))) "
                        "FROM pg_partition_tree(CAST(:t AS regclass))"
                    ),
                    {"t": table},
                ).scalar_one()
            )
            for table in ("buckets", "metrics")
        }


def hourly_passes(engine: Engine, url: str, folder: Path, last: int, first: Executor) -> None:
    """Time run_hour for each metric's first pass, then for its next (a trained pass).

    The trained pass scores inline (one process); the first on executor `first`.
    """
    passes: tuple[tuple[str, int, Executor], ...] = (
        (f"first pass (fit on whole history, {first})", last - 1, first),
        ("trained pass (inline)", last, "inline"),
    )
    storing = [0.0]  # seconds the pass spent storing what the detector expected
    record = pipeline.record_expectations

    def timed_record(*args: Any, **kwargs: Any) -> int:
        began = time.perf_counter()
        try:
            return record(*args, **kwargs)
        finally:
            storing[0] += time.perf_counter() - began

    pipeline.record_expectations = timed_record
    for label, hour, executor in passes:
        settings = Settings(
            data_dir=folder, database_url=url, scheduler_enabled=False, detect_executor=executor
        )
        storing[0] = 0.0
        began = time.perf_counter()
        result = pipeline.run_hour(engine, settings, hour=hour, worker="bench")
        seconds = time.perf_counter() - began
        scored = result.metrics if result else 0
        per = 1000 * seconds / max(scored, 1)
        print(
            f"  run_hour, {label}: {scored} metrics in {seconds:.1f} s = {per:.2f} ms a metric, "
            f"of which storing expectations {1000 * storing[0] / max(scored, 1):.3f} ms"
        )
    pipeline.record_expectations = record
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this process: {peak:.0f} MB")
    rows, size = expectations_bytes(engine)
    print(
        f"  expectations stored by the passes: {rows:,} metric-hours, {size / 1e6:.1f} MB: "
        f"{size / max(rows, 1):.1f} bytes per metric-hour"
    )


def expectations_bytes(engine: Engine) -> tuple[int, int]:
    """Rows of the `expectations` table, and its bytes (with its primary key's index)."""
    with engine.connect() as connection:
        rows = int(connection.exec_driver_sql("SELECT count(*) FROM expectations").scalar_one())
        if engine.dialect.name == "postgresql":
            size = connection.execute(
                text("SELECT pg_total_relation_size('expectations')")
            ).scalar_one()
        else:
            # a WITHOUT ROWID table is its primary key's B-tree
            size = connection.exec_driver_sql(
                "SELECT sum(pgsize) FROM dbstat WHERE name = 'expectations'"
            ).scalar_one()
    return rows, int(size or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=1000, help="metrics to create")
    parser.add_argument("--hours", type=int, default=30 * 24, help="hours of buckets a metric")
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server to create the temporary database on (default: SQLite)",
    )
    parser.add_argument("--kind", choices=["track", "value"], default="track")
    parser.add_argument(
        "--first-pass",
        choices=["inline", "process"],
        default="inline",
        help="where each metric's first pass scores (process: a pool here); the next is inline",
    )
    parser.add_argument("--pass", dest="run_pass", action="store_true", help="time run_hour")
    args = parser.parse_args()
    if args.run_pass and args.hours < 7 * 24 + 2:
        parser.error("--pass needs at least 170 hours: a metric trains on 7 days")

    last = int(time.time() // 3600) - 1  # the last closed hour, in epoch hours
    postgres = args.database_url is not None
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database(args.database_url, Path(tmp), prefix="lantern_storage") as url_text,
    ):
        folder = Path(tmp)
        engine = make_engine(url_text)
        try:
            upgrade(engine)
            empty = 0 if postgres else sqlite_bytes(engine, folder / "lantern.db")
            seconds = fill(engine, args.metrics, args.hours, last, args.kind)
            cells = args.metrics * args.hours
            print(
                f"{engine.dialect.name}: {args.metrics} {args.kind} metrics x {args.hours} hours = "
                f"{cells:,} buckets written in {seconds:.1f} s "
                f"({cells / seconds:,.0f} buckets/s); load average {_load()}"
            )
            if postgres:
                sizes = postgres_bytes(engine)
                total = sum(sizes.values())
                parts = ", ".join(f"{t} {b / 1e6:.1f} MB" for t, b in sizes.items())
                print(f"  {parts}: {total / cells:.1f} bytes per metric-hour")
            else:
                size = sqlite_bytes(engine, folder / "lantern.db") - empty
                print(f"  file grew {size / 1e6:.1f} MB: {size / cells:.1f} bytes per metric-hour")
            if args.run_pass:
                hourly_passes(engine, url_text, folder, last, cast(Executor, args.first_pass))
                print(f"  load average {_load()}")
        finally:
            engine.dispose()


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
