"""Dashboard chart speed: `GET /api/v1/metrics/{id}/series` over a long stored history.

    python benchmarks/api_series.py [--history-days 400] [--days 7 30 90 400] [--repeat 5]

Stores one metric with `--history-days` of hourly counts in a fresh SQLite database, then
times the chart of the last N days for each N in `--days` through the app in process
(median of `--repeat` requests): a first view (wall and CPU time: on a busy machine the
wall time includes waiting for a core), and the same chart viewed again, served from
the replay kept in memory. The detector is replayed from
56 days before the chart's start, so the cost grows with N, not with the history.
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

from lantern.api.app import create_app
from lantern.config import Settings
from lantern.db import session_scope
from lantern.db.migrate import upgrade
from lantern.db.session import make_engine
from lantern.insights.expectations import replays
from lantern.metrics.models import Metric
from lantern.metrics.service import add_to_buckets, epoch_hour
from lantern.workspaces.service import create_api_token, create_source, get_or_create_workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history-days", type=int, default=400)
    parser.add_argument("--days", type=int, nargs="+", default=[7, 30, 90, 400])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp())
    url = f"sqlite:///{folder / 'lantern.db'}"
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
    print(f"one metric, {args.history_days} days of history, SQLite")
    with TestClient(create_app(settings, engine)) as client:
        for days in args.days:
            start = (end - pd.Timedelta(days=days)).isoformat()
            path = f"/api/v1/metrics/{metric_id}/series"
            first, again, cpu = [], [], []
            for _ in range(args.repeat):
                replays.clear()
                for times in (first, again):
                    began, busy = time.perf_counter(), time.process_time()
                    response = client.get(path, params={"start": start}, headers=headers)
                    times.append(time.perf_counter() - began)
                    if times is first:
                        cpu.append(time.process_time() - busy)
                    response.raise_for_status()
            points = len(response.json()["points"])
            print(
                f"  last {days:>3} days: {points:>5} points, first view "
                f"{statistics.median(first):.3f} s ({statistics.median(cpu):.3f} s CPU), "
                f"viewed again {statistics.median(again):.3f} s"
            )


if __name__ == "__main__":
    main()
