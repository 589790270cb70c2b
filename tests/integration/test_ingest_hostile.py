"""Hostile events are rejected alone, with a reason; the good ones beside them are counted.

A 5xx makes a Segment client retry the whole batch, so one bad event answered with a 5xx
would keep every good event beside it from ever being counted.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, select

from lantern.ingest.models import DebugEvent
from lantern.workspaces.models import Source
from tests.factories import MadeSource, make_source
from tests.helpers import buckets, totals

MAX_TIME = "9999-12-31T23:59:59Z"
MIN_TIME = "0001-01-01T00:00:00Z"


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def track(event: str = "Signed Up", **extra: Any) -> dict[str, Any]:
    body = {
        "type": "track",
        "event": event,
        "userId": "u1",
        "messageId": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
    }
    body.update(extra)
    return body


@pytest.fixture
def src(engine: Engine) -> MadeSource:
    return make_source(engine)


def test_times_at_the_ends_of_the_calendar_are_rejected_and_the_rest_counted(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    headers = basic(src.key)
    extremes = [
        track(timestamp=MAX_TIME, sentAt=MIN_TIME),
        track(timestamp=MIN_TIME, sentAt=MAX_TIME),
        track(timestamp="9999-12-31T23:59:59-01:00"),
        track(timestamp="0001-01-01T00:00:00+01:00"),
        track(timestamp=MIN_TIME),
    ]
    mixed = client.post("/v1/batch", json={"batch": [track(), *extremes]}, headers=headers)
    # A batch-level sentAt applies to every event without its own.
    batch_sent = client.post(
        "/v1/batch",
        json={
            "batch": [track(timestamp=MAX_TIME), track(sentAt=datetime.now(UTC).isoformat())],
            "sentAt": MIN_TIME,
        },
        headers=headers,
    )
    single = client.post(
        "/v1/track",
        json={"event": "x", "userId": "u", "timestamp": MAX_TIME, "sentAt": MIN_TIME},
        headers=headers,
    )
    assert [mixed.status_code, batch_sent.status_code, single.status_code] == [200, 200, 200]
    assert mixed.json()["accepted"] == 1
    assert [item["index"] for item in mixed.json()["rejected"]] == [1, 2, 3, 4, 5]
    assert all(item["reason"] for item in mixed.json()["rejected"])
    assert "sentAt" in mixed.json()["rejected"][0]["reason"]
    assert batch_sent.json()["accepted"] == 1
    assert single.json()["accepted"] == 0
    assert totals(engine, src.id)[("track", "Signed Up")] == 2


def test_a_nul_character_in_a_name_is_rejected_and_the_hundred_events_beside_it_counted(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    launchdarkly = {"key": "flag\u0000", "environment": "production", "flagVersion": 1}
    bad = [
        track("Signed\u0000Up"),
        {"type": "page", "name": "Home\u0000", "userId": "u"},
        {"type": "screen", "properties": {"name": "\u0000"}, "userId": "u"},
        track("feature", properties=launchdarkly),
    ]
    batch = [track() for _ in range(50)] + bad + [track() for _ in range(50)]
    first = client.post("/v1/batch", json={"batch": batch}, headers=basic(src.key))
    retry = client.post("/v1/batch", json={"batch": batch}, headers=basic(src.key))
    assert first.status_code == retry.status_code == 200
    assert first.json()["accepted"] == 100
    assert {item["index"] for item in first.json()["rejected"]} == {50, 51, 52, 53}
    assert all("NUL" in item["reason"] for item in first.json()["rejected"])
    assert retry.json()["duplicates"] == 100
    assert totals(engine, src.id) == {("track", "Signed Up"): 100, ("total", "track"): 100}


def test_a_flag_version_beyond_what_a_version_column_holds_is_rejected_with_a_reason(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    def feature(version: Any) -> dict[str, Any]:
        props = {"key": "checkout", "environment": "production", "flagVersion": version}
        return track("feature", properties=props)

    batch = [feature(2**40), feature(-1), feature(7)]
    response = client.post("/v1/batch", json={"batch": batch}, headers=basic(src.key))
    assert response.status_code == 200
    assert [item["index"] for item in response.json()["rejected"]] == [0, 1]
    assert "flagVersion" in response.json()["rejected"][0]["reason"]
    assert totals(engine, src.id)[("flag", "checkout")] == 1


def test_values_past_the_bound_are_rejected_and_a_metric_hour_never_overflows(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    headers = basic(src.key)
    huge = [track("Paid", properties={"value": 1e308}) for _ in range(2)]
    first = client.post(
        "/v1/batch",
        json={"batch": [*huge, track("Paid", properties={"value": 2})]},
        headers=headers,
    )
    extremes = [
        track("Paid", properties={"revenue": -1e308}),
        track("Paid", properties={"value": 2.0**53 + 2}),
        track("custom", properties={"key": "exp", "environment": "p", "metricValue": 1e300}),
    ]
    second = client.post("/v1/batch", json={"batch": [*extremes, *huge]}, headers=headers)
    # The bound itself is accepted, and many of them add up without overflowing.
    edge = [track("Paid", properties={"value": 2.0**53}) for _ in range(3)]
    third = client.post("/v1/batch", json={"batch": edge}, headers=headers)
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 200]
    assert first.json()["accepted"] == 1
    assert [item["index"] for item in first.json()["rejected"]] == [0, 1]
    assert "value" in first.json()["rejected"][0]["reason"]
    assert second.json()["accepted"] == 0
    assert third.json()["accepted"] == 3
    value = [v for (kind, name, _hour), v in buckets(engine, src.id).items() if kind == "value"]
    assert value == [(4, 2 + 3 * 2.0**53)]


def test_events_for_a_source_deleted_meanwhile_are_answered_401_not_500(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    headers = basic(src.key)
    assert client.post("/v1/batch", json={"batch": [track()]}, headers=headers).status_code == 200
    # Another process deletes the source: this one still holds the key and metric ids.
    with engine.begin() as connection:
        connection.execute(delete(Source).where(Source.id == src.id))
    known = client.post("/v1/batch", json={"batch": [track()]}, headers=headers)
    new = client.post("/v1/batch", json={"batch": [track("Never Seen")]}, headers=headers)
    later = client.post("/v1/batch", json={"batch": [track()]}, headers=headers)
    assert [known.status_code, new.status_code, later.status_code] == [401, 401, 401]
    assert known.json()["error"] == "invalid_key"
    assert "deleted" in known.json()["detail"]


def test_a_new_source_is_counted_though_another_process_deleted_one_just_before(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    assert (
        client.post("/v1/batch", json={"batch": [track()]}, headers=basic(src.key)).json()[
            "accepted"
        ]
        == 1
    )
    with engine.begin() as connection:
        connection.execute(delete(Source).where(Source.id == src.id))
    # SQLite may give the new source the deleted one's id, which this process's caches
    # still map to the deleted metrics.
    new = make_source(engine)
    response = client.post("/v1/batch", json={"batch": [track()]}, headers=basic(new.key))
    assert response.status_code == 200
    assert totals(engine, new.id) == {("track", "Signed Up"): 1, ("total", "track"): 1}


def test_rejection_reasons_never_hold_the_rejected_value(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    planted = ["jane@example.com", "+1 555 0100 jane", "Jane Doe 12 Elm St"]
    batch = [
        {"type": planted[0], "userId": "u"},
        track(timestamp=planted[1]),
        track(sentAt=planted[2]),
    ]
    response = client.post("/v1/batch", json={"batch": batch}, headers=basic(src.key))
    assert response.status_code == 200
    reasons = [item["reason"] for item in response.json()["rejected"]]
    with engine.connect() as connection:
        stored = connection.scalars(
            select(DebugEvent.reason).where(DebugEvent.source_id == src.id)
        ).all()
    assert len(reasons) == len(stored) == 3
    assert "type" in reasons[0]
    assert "timestamp" in reasons[1]
    assert "sentAt" in reasons[2]
    leaked = [word for word in planted for text in [*reasons, *stored] if word[:8] in str(text)]
    assert leaked == []


def test_a_gzip_body_of_two_members_or_with_trailing_bytes_is_refused_with_a_reason(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    headers = {**basic(src.key), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    member = gzip.compress(json.dumps({"batch": [track()]}).encode())
    two = client.post("/v1/batch", content=member + gzip.compress(b"[]"), headers=headers)
    trailing = client.post("/v1/batch", content=member + b"junk", headers=headers)
    truncated = client.post("/v1/batch", content=member[:-4], headers=headers)
    assert [two.status_code, trailing.status_code, truncated.status_code] == [400, 400, 400]
    assert "one gzip stream" in two.json()["detail"]
    assert "one gzip stream" in trailing.json()["detail"]
    assert "ends before" in truncated.json()["detail"]
    assert totals(engine, src.id) == {}
