"""Concurrent requests on the same buckets end with exact counts."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.e2e.conftest import start_server
from tests.factories import make_source
from tests.helpers import totals

THREADS = 12
REQUESTS = 15
EVENTS = 50


def hammer(url: str, key: str, hour: datetime) -> None:
    def one_thread(_: int) -> None:
        with httpx.Client(base_url=url, auth=(key, ""), timeout=30) as http:
            for _ in range(REQUESTS):
                batch = [
                    {
                        "type": "track",
                        "event": "Hot",
                        "userId": "u",
                        "messageId": str(uuid.uuid4()),
                        "timestamp": hour.isoformat(),
                        "properties": {"value": 1},
                    }
                    for _ in range(EVENTS)
                ]
                # Every fifth request is sent twice, as a retrying client would.
                response = http.post("/v1/import", json={"batch": batch})
                assert response.status_code == 200, response.text
                if _ % 5 == 0:
                    assert http.post("/v1/import", json={"batch": batch}).json()["accepted"] == 0

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one_thread, range(THREADS)))


@pytest.mark.slow
def test_many_threads_and_processes_on_one_hour_count_exactly(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    workers = 2 if database_url.startswith("sqlite") else 3
    process, url = start_server(database_url, tmp_path, workers=workers)
    try:
        src = make_source(engine)
        # Half past the previous hour: always in the past, all events in one bucket.
        hour = (datetime.now(UTC) - timedelta(hours=1)).replace(minute=30, second=0, microsecond=0)
        hammer(url, src.key, hour)
    finally:
        process.terminate()
        process.wait(timeout=10)
    expected = THREADS * REQUESTS * EVENTS
    found = totals(engine, src.id)
    assert found[("track", "Hot")] == expected
    assert found[("value", "Hot")] == expected
    assert found[("total", "track")] == expected
