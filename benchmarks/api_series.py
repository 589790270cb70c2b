"""Dashboard chart speed: `GET /api/v1/metrics/{id}/series` over a long stored history.

    python benchmarks/api_series.py [--history-days 400] [--days 7 30 90 400] [--repeat 5]
                                    [--postgresql postgresql+psycopg://127.0.0.1:5432/test]

Stores one metric with `--history-days` of hourly counts in a fresh database (SQLite, or a
new database on the PostgreSQL server given, dropped afterwards), then times the chart of
the last N days for each N in `--days` through the app in process (median of `--repeat`
requests), two ways in the same run:

- replayed: no expectation stored yet (an installation upgraded before its next hourly
  pass, or hours judged before the store existed): the detector is replayed from the
  metric's first hour; a first view (wall and CPU time: on a busy machine the wall time
  includes waiting for a core), and the same chart viewed again, served from the replay
  kept in memory;
- stored: after the hourly pass has judged the last closed hour (its first pass on the
  metric judges, and stores, its whole history), the chart reads what the pass stored.
  A first view, against the budget of 100 ms for 90 days.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from scratch import scratch_database
from sqlalchemy import func, select

from lantern.api.app import create_app
from lantern.config import Settings
from lantern.db import session_scope
from lantern.db.migrate import upgrade
from lantern.db.session import make_engine
from lantern.insights.expectations import replays
from lantern.insights.models import HourExpectation
from lantern.metrics.models import Metric
from lantern.metrics.service import add_to_buckets, epoch_hour
from lantern.pipeline import run_hour
from lantern.workspaces.service import create_api_token, create_source, get_or_create_workspace

BUDGET_DAYS, BUDGET_SECONDS = 90, 0.100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history-days", type=int, default=400)
    parser.add_argument("--days", type=int, nargs="+", default=[7, 30, 90, 400])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgresql", metavar="ADMIN_URL", default=None)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp())
    with scratch_database(args.postgresql, folder) as url:
        run(args, url, folder)


def run(args: argparse.Namespace, url: str, folder: Path) -> None:
    engine = make_engine(url)
    upgrade(engine)
    end = pd.Timestamp.now(tz="UTC").floor("h")
    hours = np.arange(args.history_days * 24)
    rng = np.random.default_rng(1)
    daily = 0.55 + 0.45 * np.sin(2 * np.pi * hours / 24)
    counts = rng.poisson(400 * daily * np.where((hours // 24) % 7 >= 5, 0.7, 1.0))
    first = epoch_hour(end) - len(hours)
    with session_scope(engine) as session:
        workspace = get_or_create_workspace(session, name="bench")
        source, _ = create_source(session, workspace=workspace, name="web")
        _, token = create_api_token(session, workspace=workspace, name="bench")
        metric = Metric(source_id=source.id, kind="track", name="Signed Up")
        session.add(metric)
        session.flush()
        metric_id = metric.id
        add_to_buckets(
            session.connection(),
            {(metric_id, first + int(h)): (int(c), 0.0, 0.0) for h, c in enumerate(counts)},
        )
    settings = Settings(data_dir=folder, database_url=url, scheduler_enabled=False)
    headers = {"Authorization": f"Bearer {token}"}
    engine_name = engine.dialect.name
    print(f"one metric, {args.history_days} days of history, {engine_name}")
    figures: dict[str, dict[int, float]] = {"replayed": {}, "stored": {}}
    with TestClient(create_app(settings, engine)) as client:

        def view(days: int) -> tuple[int, float, float, float]:
            """Points, and the median first view (wall, CPU) and view again."""
            params = {"start": (end - pd.Timedelta(days=days)).isoformat(), "end": end.isoformat()}
            path = f"/api/v1/metrics/{metric_id}/series"
            first: list[float] = []
            again: list[float] = []
            cpu: list[float] = []
            for _ in range(args.repeat):
                replays.clear()
                for times in (first, again):
                    began, busy = time.perf_counter(), time.process_time()
                    response = client.get(path, params=params, headers=headers)
                    times.append(time.perf_counter() - began)
                    if times is first:
                        cpu.append(time.process_time() - busy)
                    response.raise_for_status()
            points = len(response.json()["points"])
            return (
                points,
                statistics.median(first),
                statistics.median(cpu),
                statistics.median(again),
            )

        print("replayed (nothing stored: the detector is replayed from the first hour):")
        for days in args.days:
            points, wall, cpu, again = view(days)
            figures["replayed"][days] = wall
            print(
                f"  last {days:>3} days: {points:>5} points, first view {wall:.3f} s "
                f"({cpu:.3f} s CPU), viewed again {again:.3f} s"
            )
        began = time.perf_counter()
        run_hour(engine, settings, hour=epoch_hour(end) - 1, worker="bench")
        with engine.connect() as connection:
            kept = connection.scalar(select(func.count()).select_from(HourExpectation))
        print(
            f"stored (the hourly pass judged and stored {kept:,} hours of the history "
            f"in {time.perf_counter() - began:.1f} s):"
        )
        for days in args.days:
            points, wall, cpu, again = view(days)
            figures["stored"][days] = wall
            budget = f", budget {BUDGET_SECONDS:.3f} s" if days == BUDGET_DAYS else ""
            print(
                f"  last {days:>3} days: {points:>5} points, first view {wall:.3f} s "
                f"({cpu:.3f} s CPU), viewed again {again:.3f} s{budget}"
            )
    if BUDGET_DAYS in figures["stored"]:
        stored, replayed = figures["stored"][BUDGET_DAYS], figures["replayed"][BUDGET_DAYS]
        verdict = "within" if stored <= BUDGET_SECONDS else "OVER"
        print(
            f"{BUDGET_DAYS}-day chart, first view: {stored * 1000:.0f} ms stored "
            f"({verdict} the {BUDGET_SECONDS * 1000:.0f} ms budget) vs "
            f"{replayed * 1000:.0f} ms replayed"
        )
    engine.dispose()


if __name__ == "__main__":
    main()
