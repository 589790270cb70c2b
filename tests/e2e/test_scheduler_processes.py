"""The scheduler runs by itself inside `lantern serve` and alone as `lantern worker`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from lantern.db.session import make_engine
from lantern.insights.models import DetectionRun
from tests.e2e.conftest import start_server


@pytest.mark.slow
@pytest.mark.parametrize("how", ["serve", "worker"])
def test_the_hourly_pass_runs_on_its_own_after_start_up(
    empty_database_url: str, tmp_path: Path, how: str
) -> None:
    env = {
        **os.environ,
        "LANTERN_DATABASE_URL": empty_database_url,
        "LANTERN_DATA_DIR": str(tmp_path),
    }
    subprocess.run(
        [sys.executable, "-m", "lantern", "db", "upgrade"], env=env, check=True, capture_output=True
    )
    if how == "serve":
        process, _ = start_server(empty_database_url, tmp_path, LANTERN_SCHEDULER_ENABLED="true")
    else:
        process = subprocess.Popen(
            [sys.executable, "-m", "lantern", "worker"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    engine = make_engine(empty_database_url)
    try:
        deadline = time.monotonic() + 30
        runs = 0
        while time.monotonic() < deadline and not runs:
            with engine.connect() as connection:
                runs = (
                    connection.scalar(
                        select(func.count())
                        .select_from(DetectionRun)
                        .where(DetectionRun.finished_at.is_not(None))
                    )
                    or 0
                )
            time.sleep(0.3)
    finally:
        process.terminate()
        process.wait(timeout=15)
        engine.dispose()
    last_closed = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)
    assert runs >= 1
    with make_engine(empty_database_url).connect() as connection:
        newest = connection.scalar(select(func.max(DetectionRun.hour)))
    assert newest in (
        int(last_closed.timestamp() // 3600),
        int(last_closed.timestamp() // 3600) - 1,
    )
