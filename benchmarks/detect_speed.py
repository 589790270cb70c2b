"""Detection speed: one hourly pass (`run_hour`) over many trained metrics on a database,
and `lantern replay` of a bench set.

    python benchmarks/detect_speed.py [--metrics 1000 10000] [--database-url URL]
        [--baseline DIR] [--dask-workers 1 2] [--no-replay] [--bench DIR] [--jobs 2]

For each N of `--metrics`, a scratch database (a SQLite file in a temporary folder, or,
with `--database-url postgresql+psycopg://127.0.0.1/test`, a database of its own on that
server, dropped at the end) is prepared, untimed: N count metrics, 10,000 a source (the
default cap), each with 30 days of hourly buckets up to the last closed hour
(bulk-inserted: rows straight into `buckets`, not through ingest's upsert; on PostgreSQL
into weekly partitions made first), and each metric's saved detector state after its
first pass, `run_hour` for the hour before the last. Then `pipeline.run_hour` for the last
hour, the ordinary pass of a trained metric (its saved state and 29 days of buckets, its
new state, expectation and insights written back), is timed in a fresh process, inline
(one process), which prints its wall time, ms a metric and its peak RSS (the process's
`VmHWM`: the preparation's memory is not counted), and a digest of the states,
expectations and insights it left. The second line is the detector alone in that same
pass (`score_batch_judged`, every metric advanced one hour), the states' decoding and
encoding around it (`scoring.score_partition`), and the rest: the claiming process's
reads and writes. With `--baseline DIR`, another checkout's pass is timed first on the
same data (its states, expectations and insights put back after it), and the digests
tell whether the two passes left the same.

The first pass fits each metric on its whole history (about 60 ms a metric), too slow to
run on 100,000 metrics here; so each metric's buckets are those of one of `--templates`
distinct synthetic series (a multiple of 24), and only those metrics run the first
pass: every other metric gets a copy of its template's saved state and open insights,
which is what its own first pass would have given (the same values, the same refit hour
`metric_id % 24`, the same first hour). Every metric is then scored on its own rows.

With `--dask-workers 1 2`, the same pass on the same data (states, expectations,
insights and the hour's claim put back as they were before each run) is also timed on a
local Dask cluster of that many single-threaded worker processes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from scratch import scratch_database
from sqlalchemy import Engine, insert, text

from lantern.db import session_scope
from lantern.db.migrate import upgrade
from lantern.db.session import make_engine
from lantern.metrics.models import Metric
from lantern.workspaces.service import create_source, get_or_create_workspace

HOURS = 30 * 24  # buckets a metric: the 29 days the pass reads, and a day more
# metrics a source: the default LANTERN_METRIC_CAP (a source's metrics are recorded in one
# transaction, so their outcomes are held together)
PER_SOURCE = 10_000
ROWS_A_CHUNK = 500_000  # buckets a statement (SQLite) or a COPY (PostgreSQL)


def synthetic_counts(templates: int, hours: int, seed: int = 1) -> np.ndarray:
    """Hourly counts (templates x hours): daily and weekly rhythm, levels from 3 to 20,000,
    gamma-Poisson noise."""
    rng = np.random.default_rng(seed)
    steps = np.arange(hours)
    peak = np.exp(rng.uniform(np.log(3), np.log(20000), templates))
    phase = rng.integers(0, 24, templates)
    daily = 0.55 + 0.45 * np.sin(2 * np.pi * (steps[None, :] + phase[:, None]) / 24)
    weekly = np.where((steps // 24) % 7 >= 5, 0.7, 1.0)[None, :]
    lam = rng.gamma(100.0, peak[:, None] * daily * weekly / 100.0)
    return np.asarray(rng.poisson(lam), dtype=np.int64)


def prepare(
    engine: Engine, url: str, folder: Path, metrics: int, templates: int, last: int
) -> None:
    """Fill the database with `metrics` trained metrics whose last pass judged `last - 1`."""
    from lantern import pipeline
    from lantern.config import Settings

    first = last - HOURS + 1
    values = synthetic_counts(templates, HOURS)
    with session_scope(engine) as session:
        workspace = get_or_create_workspace(session, name="bench")
        source_ids = [
            create_source(session, workspace=workspace, name=f"web {s}")[0].id
            for s in range(-(-metrics // PER_SOURCE))
        ]
    with engine.begin() as connection:
        # Only the templates are trained for the first pass; the others are given their
        # first hour once they have their template's state.
        connection.execute(
            insert(Metric),
            [
                {
                    "id": i,
                    "source_id": source_ids[(i - 1) // PER_SOURCE],
                    "kind": "track",
                    "name": f"Event {i}",
                    "first_hour": first if i <= templates else None,
                }
                for i in range(1, metrics + 1)
            ],
        )
    began = time.perf_counter()
    _fill_buckets(engine, values, metrics, first)
    filled = time.perf_counter() - began
    settings = Settings(
        data_dir=folder, database_url=url, scheduler_enabled=False, detect_executor="process"
    )
    began = time.perf_counter()
    pipeline.run_hour(engine, settings, hour=last - 1, worker="bench-prepare")
    trained = time.perf_counter() - began
    began = time.perf_counter()
    _copy_templates(engine, metrics, templates, first)
    copied = time.perf_counter() - began
    print(
        f"  prepared (untimed): {metrics * HOURS:,} buckets in {filled:.0f} s, first pass of "
        f"{min(metrics, templates)} template metrics in {trained:.0f} s (2 processes), "
        f"states copied in {copied:.0f} s; load average {_load()}",
        flush=True,
    )


def _fill_buckets(engine: Engine, values: np.ndarray, metrics: int, first: int) -> None:
    """Insert every metric's buckets, metric by metric in key order, a chunk at a time."""
    templates, hours = values.shape
    per_chunk = max(1, ROWS_A_CHUNK // hours)
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        from lantern.metrics.partitions import ensure_partitions
        from lantern.metrics.service import hour_index

        # the weeks of the 30 days, as the scheduler's job would have made them
        ensure_partitions(
            engine, now=hour_index(first).to_pydatetime(), retention_days=400, ahead=6
        )
    for start in range(1, metrics + 1, per_chunk):
        ids = np.arange(start, min(start + per_chunk, metrics + 1))
        counts = values[(ids - 1) % templates].ravel()
        metric_ids = np.repeat(ids, hours)
        hour = np.tile(np.arange(first, first + hours), len(ids))
        with engine.begin() as connection:
            if postgres:
                cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
                lines = "".join(
                    f"{m}\t{h}\t{c}\t0\t0\n"
                    for m, h, c in zip(
                        metric_ids.tolist(), hour.tolist(), counts.tolist(), strict=True
                    )
                )
                with cursor.copy(
                    "COPY buckets (metric_id, hour, count, value_sum, value_sq) FROM STDIN"
                ) as copy:
                    copy.write(lines)
            else:
                connection.exec_driver_sql(
                    "INSERT INTO buckets (metric_id, hour, count, value_sum, value_sq) "
                    "VALUES (?, ?, ?, 0.0, 0.0)",
                    list(zip(metric_ids.tolist(), hour.tolist(), counts.tolist(), strict=True)),
                )


def _copy_templates(engine: Engine, metrics: int, templates: int, first: int) -> None:
    """Give every other metric its template's state, open insights (with the alerts queued
    for them) and first hour."""
    from lantern.insights.models import Insight
    from lantern.notify.models import Notification

    if metrics <= templates:
        return
    template = f"((m.id - 1) % {templates}) + 1"
    copied = [c.name for c in Insight.__table__.columns if c.name not in _OWN_INSIGHT]
    told = [c.name for c in Notification.__table__.columns if c.name not in ("id", "insight_id")]
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO metric_watch (metric_id, muted, state, scored_hour) "
                "SELECT m.id, w.muted, w.state, w.scored_hour FROM metrics AS m "
                f"JOIN metric_watch AS w ON w.metric_id = {template} WHERE m.id > {templates}"
            )
        )
        connection.execute(
            text(
                f"INSERT INTO insights (metric_id, fingerprint, {', '.join(copied)}) "
                "SELECT m.id, CAST(m.id AS VARCHAR(20)) || ':' || i.kind || ':' || i.direction, "
                f"{', '.join('i.' + c for c in copied)} FROM metrics AS m "
                f"JOIN insights AS i ON i.metric_id = {template} "
                f"WHERE m.id > {templates} AND i.status IN ('open', 'updated')"
            )
        )
        connection.execute(
            text(
                f"INSERT INTO notifications (insight_id, {', '.join(told)}) "
                f"SELECT c.id, {', '.join('n.' + c for c in told)} FROM insights AS c "
                f"JOIN insights AS i ON i.metric_id = ((c.metric_id - 1) % {templates}) + 1 "
                "AND i.kind = c.kind AND i.direction = c.direction AND i.start = c.start "
                f"JOIN notifications AS n ON n.insight_id = i.id WHERE c.metric_id > {templates}"
            )
        )
        connection.execute(text(f"UPDATE metrics SET first_hour = {first} WHERE id > {templates}"))


_OWN_INSIGHT = ("id", "metric_id", "fingerprint", "parent_id")


def _snapshot(engine: Engine) -> None:
    """Keep the states as the timed pass finds them, to put them back between runs."""
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE bench_watch AS SELECT metric_id, state, scored_hour FROM metric_watch"
        )
        connection.exec_driver_sql(
            "CREATE TABLE bench_insights AS SELECT id, status, observed, expected, lower, "
            "upper, relative_change, score, updated_at, ended_at, severity FROM insights"
        )
        connection.exec_driver_sql(
            "CREATE TABLE bench_notifications AS SELECT id FROM notifications"
        )


def _restore(engine: Engine, hour: int) -> None:
    """Put the database back as it was before the timed pass of `hour`."""
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE metric_watch SET state = b.state, scored_hour = b.scored_hour "
            "FROM bench_watch AS b WHERE b.metric_id = metric_watch.metric_id"
        )
        connection.exec_driver_sql(
            "DELETE FROM insights WHERE id NOT IN (SELECT id FROM bench_insights)"
        )
        connection.exec_driver_sql(
            "UPDATE insights SET status = b.status, observed = b.observed, "
            "expected = b.expected, lower = b.lower, upper = b.upper, "
            "relative_change = b.relative_change, score = b.score, updated_at = b.updated_at, "
            "ended_at = b.ended_at, severity = b.severity "
            "FROM bench_insights AS b WHERE b.id = insights.id"
        )
        connection.exec_driver_sql(f"DELETE FROM expectations WHERE hour = {hour}")
        connection.exec_driver_sql(f"DELETE FROM detection_runs WHERE hour = {hour}")
        connection.exec_driver_sql(
            "DELETE FROM notifications WHERE id NOT IN (SELECT id FROM bench_notifications)"
        )


def timed_pass(url: str, folder: str, hour: int, executor: str, dask: str | None) -> dict[str, Any]:
    """`run_hour` for `hour`, in this process (meant to be a fresh one): its figures."""
    from lantern import pipeline, scoring
    from lantern.config import Settings
    from lantern.detect import stream

    engine = make_engine(url)
    settings = Settings(
        data_dir=Path(folder),
        database_url=url,
        scheduler_enabled=False,
        detect_executor=executor,  # type: ignore[arg-type]
        dask_scheduler_address=dask,
    )
    scoring_seconds = [0.0]
    score_partition = scoring.score_partition

    def timed(partition: scoring.Partition) -> list[scoring.Outcome]:
        began = time.perf_counter()
        try:
            return score_partition(partition)
        finally:
            scoring_seconds[0] += time.perf_counter() - began

    detector_seconds = [0.0]
    judged = stream.score_batch_judged

    def timed_judged(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return judged(*args, **kwargs)
        finally:
            detector_seconds[0] += time.perf_counter() - began

    if executor == "inline":
        pipeline.score_partition = timed  # type: ignore[assignment]
        stream.score_batch_judged = timed_judged  # type: ignore[assignment]
    with engine.connect():
        pass  # connected before the clock starts, as a running service is
    began = time.perf_counter()
    result = pipeline.run_hour(engine, settings, hour=hour, worker="bench")
    seconds = time.perf_counter() - began
    rss = peak_rss_mb()
    digest = outcome_digest(engine, hour)
    engine.dispose()
    return {
        "metrics": result.metrics if result else 0,
        "insights": result.insights if result else 0,
        "failures": result.failures if result else 0,
        "seconds": seconds,
        "scoring": scoring_seconds[0] if executor == "inline" else None,
        "detector": detector_seconds[0] if executor == "inline" else None,
        "rss_mb": rss,
        "digest": digest,
    }


def peak_rss_mb() -> float:
    """This process's peak resident set since it started, in MB.

    `VmHWM` of /proc/self/status: `ru_maxrss` would not do, as a child started by fork
    and exec inherits its parent's peak (here, the preparation's).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def outcome_digest(engine: Engine, hour: int) -> str:
    """A digest of what a pass left: every saved state, the hour's expectations, the insights."""
    queries = (
        "SELECT metric_id, scored_hour, state FROM metric_watch ORDER BY metric_id",
        f"SELECT metric_id, expected, lower, upper FROM expectations WHERE hour = {hour} "
        "ORDER BY metric_id",
        "SELECT metric_id, kind, direction, status, start, detected_at, observed, expected, "
        "score FROM insights ORDER BY metric_id, kind, direction, start",
    )
    digest = hashlib.blake2b(digest_size=8)
    with engine.connect() as connection:
        for query in queries:
            result = connection.exec_driver_sql(query)
            while rows := result.fetchmany(1000):
                for row in rows:
                    digest.update(
                        repr(
                            tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                        ).encode()
                    )
    return digest.hexdigest()


def run_timed(
    url: str,
    folder: Path,
    hour: int,
    executor: str,
    dask: str | None,
    code: Path | None = None,
) -> dict[str, Any]:
    """`timed_pass` in a fresh process, so that its peak RSS is the pass's own; with
    `code`, that checkout's Lantern is the one timed."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--timed-pass",
            json.dumps([url, str(folder), hour, executor, dask]),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _report(label: str, figures: dict[str, Any]) -> None:
    n = max(figures["metrics"], 1)
    print(
        f"  run_hour, {label}: {figures['metrics']} metrics in {figures['seconds']:.2f} s = "
        f"{1000 * figures['seconds'] / n:.3f} ms a metric; peak RSS {figures['rss_mb']:.0f} MB; "
        f"{figures['insights']} insights, {figures['failures']} failures; "
        f"outcome digest {figures['digest']}; load average {_load()}",
        flush=True,
    )
    if figures["failures"]:
        # a pass whose metrics failed times the failures, not the detector
        raise SystemExit(
            f"{figures['failures']} of {figures['metrics']} metrics failed in the pass "
            f"({label}): its time is not a pass's; run_hour logs why"
        )
    if figures["scoring"] is not None:
        rest = figures["seconds"] - figures["scoring"]
        states = figures["scoring"] - figures["detector"]
        print(
            f"    of which the detector alone (score_batch_judged): "
            f"{1000 * figures['detector'] / n:.3f} ms a metric; states decoded and encoded "
            f"{1000 * states / n:.3f} ms; the claiming process's reads and writes "
            f"{1000 * rest / n:.3f} ms",
            flush=True,
        )


def hourly_pass(
    admin_url: str | None,
    metrics: int,
    templates: int,
    dask_workers: list[int],
    baseline: Path | None = None,
) -> None:
    """Prepare a database of `metrics` trained metrics and time the next hour's pass."""
    last = int(time.time() // 3600) - 1  # the last closed hour, in epoch hours
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database(admin_url, Path(tmp), prefix="lantern_detect") as url,
    ):
        engine = make_engine(url)
        try:
            upgrade(engine)
            print(f"{engine.dialect.name}, {metrics} trained metrics:", flush=True)
            prepare(engine, url, Path(tmp), metrics, templates, last)
            if dask_workers or baseline is not None:
                _snapshot(engine)
            engine.dispose()
            if baseline is not None:
                figures = run_timed(url, Path(tmp), last, "inline", None, code=baseline)
                _report(f"inline, one process, the code in {baseline}", figures)
                _restore(engine, last)
                engine.dispose()
            _report("inline, one process", run_timed(url, Path(tmp), last, "inline", None))
            for workers in dask_workers:
                _restore(engine, last)
                engine.dispose()
                with _local_cluster(workers) as address:
                    figures = run_timed(url, Path(tmp), last, "dask", address)
                _report(f"Dask, {workers} worker(s) of 1 thread", figures)
        finally:
            engine.dispose()


@contextmanager
def _local_cluster(workers: int) -> Iterator[str]:
    """The address of a local Dask cluster of `workers` single-threaded worker processes."""
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


def replay_time(bench: Path | None, jobs: int) -> float:
    """Seconds of wall time for `lantern replay` of a bench set (generated when not given)."""
    with tempfile.TemporaryDirectory() as tmp:
        if bench is None:
            bench = Path(tmp) / "bench"
            generator = Path(__file__).resolve().parents[2] / "shared" / "bench" / "generate.py"
            subprocess.run(
                [sys.executable, str(generator), "--out", str(bench), "--seed", "7"],
                check=True,
                capture_output=True,
            )
        begin = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "lantern",
                "replay",
                str(bench / "series"),
                "--out",
                str(Path(tmp) / "alerts.jsonl"),
                "--jobs",
                str(jobs),
            ],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        return time.perf_counter() - begin


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, nargs="+", default=[10_000])
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server to create the scratch database on (default: SQLite)",
    )
    parser.add_argument(
        "--templates",
        type=int,
        default=1_200,
        help="distinct series (a multiple of 24); the other metrics repeat them",
    )
    parser.add_argument("--dask-workers", type=int, nargs="*", default=[])
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout whose pass is timed first on the same data (its states put back)",
    )
    parser.add_argument("--no-replay", action="store_true", help="skip `lantern replay`")
    parser.add_argument("--bench", type=Path, default=None, help="a generated bench folder")
    parser.add_argument("--jobs", type=int, default=2, help="processes for `lantern replay`")
    parser.add_argument("--timed-pass", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.timed_pass is not None:
        print(json.dumps(timed_pass(*json.loads(args.timed_pass))))
        return
    if args.templates % 24:
        parser.error("--templates must be a multiple of 24 (each copy keeps its refit hour)")
    if not args.no_replay:
        replay = replay_time(args.bench, args.jobs)
        print(f"lantern replay, 300 series x 8 weeks: {replay:.1f} s wall (budget 20 s)")
    for metrics in args.metrics:
        hourly_pass(args.database_url, metrics, args.templates, args.dask_workers, args.baseline)


if __name__ == "__main__":
    main()
