"""Dashboard metrics list speed: `GET /api/v1/metrics` with a source at 10,000 metrics.

    python benchmarks/api_metrics.py [--metrics 10000] [--days 8] [--repeat 5]
                                     [--engine sqlite postgresql]

Stores one source with `--metrics` metrics of `--days` of hourly counts (a third of them
first seen 3 days ago, so still training; every 50th muted) in a fresh database per engine
(PostgreSQL: a database made at LANTERN_TEST_POSTGRES_URL, default the local `test` one,
vacuumed and analysed as autovacuum would, and dropped after), then times pages of the
list through the app in process, median of `--repeat` requests, wall and CPU time (on a
busy machine the wall time includes waiting for a core): the first page, the next one, a
search, a status filter, both, and the last page. The limit is 200 ms for the first page;
the baseline, measured in the same run, is the whole list built at once, as the list was
answered before it was paged.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from scratch import scratch_database
from sqlalchemy import text

from lantern.api.app import create_app
from lantern.config import Settings
from lantern.dashboard.status import metric_items
from lantern.db import session_scope
from lantern.db.base import utcnow
from lantern.db.migrate import upgrade
from lantern.db.session import make_engine
from lantern.insights.models import MetricWatch
from lantern.metrics.models import Metric
from lantern.metrics.service import add_to_buckets, epoch_hour
from lantern.workspaces.service import create_api_token, create_source, get_or_create_workspace

LIMIT_SECONDS = 0.200
PG_ADMIN_URL = os.environ.get(
    "LANTERN_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test"
)


@contextmanager
def database(engine_name: str) -> Iterator[str]:
    """The URL of a new, empty database on `engine_name`, removed afterwards."""
    with tempfile.TemporaryDirectory() as folder:
        admin = PG_ADMIN_URL if engine_name == "postgresql" else None
        with scratch_database(admin, Path(folder)) as url:
            yield url


def fill(url: str, *, metrics: int, days: int) -> tuple[int, str]:
    """One workspace and source holding the metrics; (workspace id, API token)."""
    engine = make_engine(url)
    upgrade(engine)
    end = epoch_hour(pd.Timestamp.now(tz="UTC").floor("h")) - 1
    hours = days * 24
    rng = np.random.default_rng(1)
    with session_scope(engine) as session:
        workspace = get_or_create_workspace(session, name="bench")
        source, _ = create_source(session, workspace=workspace, name="web")
        _, token = create_api_token(session, workspace=workspace, name="bench")
        workspace_id, source_id = workspace.id, source.id
    for start in range(0, metrics, 500):
        with session_scope(engine) as session:
            rows = [
                Metric(source_id=source_id, kind="track", name=f"Event {n:05d}")
                for n in range(start, min(start + 500, metrics))
            ]
            session.add_all(rows)
            session.flush()
            buckets = {}
            for row in rows:
                span = 3 * 24 if row.id % 3 == 0 else hours  # a third still training
                counts = rng.poisson(20, span)
                for h, c in enumerate(counts):
                    buckets[(row.id, end - span + 1 + h)] = (int(c), 0.0, 0.0)
                if row.id % 50 == 0:
                    session.add(MetricWatch(metric_id=row.id, muted=True))
            add_to_buckets(session.connection(), buckets)
    if engine.dialect.name == "postgresql":
        # what autovacuum does after a bulk load: planner statistics, and a visibility map
        # that lets the old hours' index entries answer without reading the table
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return workspace_id, token


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `call`."""
    walls, cpus = [], []
    for _ in range(repeat):
        began, busy = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - began)
        cpus.append(time.process_time() - busy)
    return statistics.median(walls), statistics.median(cpus)


def bench(engine_name: str, *, metrics: int, days: int, repeat: int) -> None:
    with database(engine_name) as url:
        began = time.perf_counter()
        workspace_id, token = fill(url, metrics=metrics, days=days)
        print(
            f"{engine_name}: one source of {metrics:,} metrics, {days} days of hours "
            f"(stored in {time.perf_counter() - began:.0f} s)"
        )
        engine = make_engine(url)
        settings = Settings(
            data_dir=Path(tempfile.mkdtemp()), database_url=url, scheduler_enabled=False
        )
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(settings, engine)) as client:

            def get(**params: Any) -> dict[str, Any]:
                response = client.get("/api/v1/metrics", params=params, headers=headers)
                response.raise_for_status()
                page: dict[str, Any] = response.json()
                return page

            first = get()
            cursor = first["next_cursor"]
            last_cursor = None
            page = get(limit=200)
            while page["next_cursor"] is not None:
                last_cursor = page["next_cursor"]
                page = get(limit=200, cursor=last_cursor)
            cases: list[tuple[str, dict[str, Any]]] = [
                ("first page (50)", {}),
                ("first page (200)", {"limit": 200}),
                ("next page", {"cursor": cursor}),
                ("last page (200)", {"limit": 200, "cursor": last_cursor}),
                ('search "event 09"', {"q": "event 09"}),
                ("status=muted", {"status": "muted"}),
                ("status=training", {"status": "training"}),
                ('status=active, "event 01"', {"status": "active", "q": "event 01"}),
            ]
            # with few metrics there is no next or last page to time
            cases = [(name, params) for name, params in cases if None not in params.values()]
            print(f"  total {first['total']:,}; limit {LIMIT_SECONDS * 1000:.0f} ms a page")
            for name, params in cases:
                matched = get(**params)
                wall, cpu = timed(functools.partial(get, **params), repeat)
                verdict = "ok" if wall <= LIMIT_SECONDS else "OVER"
                print(
                    f"  {name:<26} {len(matched['items']):>4} of {matched['total']:>6,}: "
                    f"{wall * 1000:7.1f} ms ({cpu * 1000:.1f} ms CPU) {verdict}"
                )

        def whole() -> None:
            with session_scope(engine) as session:
                metric_items(session, workspace_id=workspace_id, now=utcnow())

        wall, cpu = timed(whole, repeat)
        print(
            f"  baseline, the whole list at once (before paging): {wall * 1000:7.1f} ms "
            f"({cpu * 1000:.1f} ms CPU), without serialising it"
        )
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--engine", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"]
    )
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for engine_name in args.engine:
        bench(engine_name, metrics=args.metrics, days=args.days, repeat=args.repeat)


if __name__ == "__main__":
    main()
