"""Requests committed together are counted exactly as if each had come alone."""

from __future__ import annotations

import base64
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from lantern.db.migrate import upgrade
from lantern.db.session import make_engine
from lantern.errors import Unauthorized
from lantern.ingest.events import Limits, Verdict, judge
from lantern.ingest.service import store
from lantern.ingest.types import Judged
from lantern.ingest.writer import GroupWriter, store_together
from lantern.metrics.models import Bucket, Metric
from tests.factories import make_source
from tests.helpers import totals

LIVE = Limits(late=timedelta(days=7), future=timedelta(minutes=10))


def judged(source_id: int, events: list[dict[str, Any]]) -> Judged:
    now = datetime.now(UTC)
    verdicts: list[Verdict] = [
        judge(event, received_at=now, batch_sent_at=None, limits=LIVE) for event in events
    ]
    return Judged(source_id, verdicts, now, 10_000)


def track(name: str, message_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "userId": "u",
        "messageId": message_id or str(uuid.uuid4()),
        "properties": {"value": 2},
    }


def test_a_message_id_repeated_across_requests_of_one_group_counts_once(engine: Engine) -> None:
    first, second = make_source(engine), make_source(engine, name="app")
    shared = str(uuid.uuid4())
    results = store(
        engine,
        requests=[
            judged(first.id, [track("Paid", shared), track("Paid")]),
            judged(first.id, [track("Paid", shared), {"type": "track", "userId": "u"}]),
            # The same id in another source is another message.
            judged(second.id, [track("Paid", shared)]),
        ],
    )
    assert [(r.accepted, r.duplicates, len(r.rejected)) for r in results] == [
        (2, 0, 0),
        (0, 1, 1),
        (1, 0, 0),
    ]
    assert totals(engine, first.id)[("track", "Paid")] == 2
    assert totals(engine, first.id)[("value", "Paid")] == 2
    assert totals(engine, second.id)[("track", "Paid")] == 1
    again = store(engine, requests=[judged(first.id, [track("Paid", shared)])])
    assert again[0].duplicates == 1


def test_a_request_that_fails_inside_a_group_leaves_the_others_committed(engine: Engine) -> None:
    good = make_source(engine)
    outcomes = store_together(
        engine,
        [
            judged(good.id, [track("Opened")]),
            judged(10**9, [track("Opened")]),  # no such source
            judged(good.id, [track("Opened")]),
        ],
    )
    assert [getattr(outcome, "accepted", None) for outcome in outcomes] == [1, None, 1]
    # A source that does not exist (deleted meanwhile, say) is an unknown key: a 401.
    assert isinstance(outcomes[1], Unauthorized)
    assert totals(engine, good.id)[("track", "Opened")] == 2


def test_the_writer_answers_each_request_once_its_group_is_committed(engine: Engine) -> None:
    src = make_source(engine)
    writer = GroupWriter(engine)
    answers = [writer.submit(judged(src.id, [track("Opened")] * 2)) for _ in range(20)]
    results = [answer.result(timeout=30) for answer in answers]
    # The same message twice in one request: the second is a duplicate.
    assert [(r.accepted, r.duplicates) for r in results] == [(1, 1)] * 20
    assert totals(engine, src.id)[("track", "Opened")] == 20


def test_ingested_counts_reach_the_sqlite_file_itself_soon_after_the_answer(tmp_path: Path) -> None:
    path = tmp_path / "lantern.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    src = make_source(engine)
    writer = GroupWriter(engine)
    for _ in range(3):
        assert writer.submit(judged(src.id, [track("Opened")])).result(timeout=30).accepted == 1
    # `immutable` reads the database file alone, ignoring the write-ahead log.
    deadline = time.monotonic() + 10
    found = 0
    while found < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as raw:
            row = raw.execute(
                "SELECT coalesce(sum(b.count), 0) FROM buckets b JOIN metrics m "
                "ON m.id = b.metric_id WHERE m.source_id = ? AND m.kind = 'track'",
                (src.id,),
            ).fetchone()
            found = row[0]
    engine.dispose()
    assert found == 3


def test_requests_for_known_metrics_count_sum_and_show_as_the_first_did(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{src.key}:".encode()).decode()}
    first = [track("Paid"), track("Viewed")]
    assert client.post("/v1/batch", json={"batch": first}, headers=auth).json()["accepted"] == 2
    # The metrics now exist: on PostgreSQL this request is written in one statement.
    again = track("Paid")
    second = [
        again,
        track("Viewed"),
        first[0],  # a retry of the first request
        again,  # a repeat inside this request
        {"type": "track", "event": "Paid"},  # no user: rejected
    ]
    answer = client.post("/v1/batch", json={"batch": second}, headers=auth).json()
    assert (answer["accepted"], answer["duplicates"], len(answer["rejected"])) == (2, 2, 1)
    found = totals(engine, src.id)
    assert found[("track", "Paid")] == 2
    assert found[("value", "Paid")] == 2
    assert found[("total", "track")] == 4
    view = client.get(
        f"/api/v1/sources/{src.id}/debug", headers={"Authorization": f"Bearer {src.token}"}
    ).json()
    minutes = view["per_minute"]
    assert sum(m["accepted"] for m in minutes) == 4
    assert sum(m["duplicates"] for m in minutes) == 2
    assert sum(m["rejected"] for m in minutes) == 1
    assert [e["event"]["event"] for e in view["accepted"]] == ["Viewed", "Paid", "Viewed", "Paid"]
    assert view["accepted"][0]["event"]["value"] == 2
    assert "userId" in view["rejected"][0]["reason"]


def test_a_bucket_adds_count_sum_and_squares_alike_for_new_and_known_metrics(
    engine: Engine,
) -> None:
    src = make_source(engine)
    priced = [track("Paid"), track("Paid")]
    priced[1]["properties"] = {"value": 3}
    # The first request creates the metrics; the second finds them known, which on
    # PostgreSQL takes the one-statement path.
    store(engine, requests=[judged(src.id, priced)])
    again = track("Paid")
    again["properties"] = {"value": 4}
    store(engine, requests=[judged(src.id, [again])])
    with engine.connect() as connection:
        rows = connection.execute(
            select(Metric.kind, Bucket.count, Bucket.value_sum, Bucket.value_sq)
            .join(Bucket, Bucket.metric_id == Metric.id)
            .where(Metric.source_id == src.id, Metric.name == "Paid")
        ).all()
    found = {kind: (count, value_sum, value_sq) for kind, count, value_sum, value_sq in rows}
    assert found["track"][0] == 3
    assert found["value"] == (3, 9.0, 29.0)  # 2 + 3 + 4, and 4 + 9 + 16
    assert found["mean"] == (3, 9.0, 29.0)
