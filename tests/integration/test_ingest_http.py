"""Segment's HTTP tracking API as a client sees it: codes, auth, limits, counting."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.factories import MadeSource, make_source
from tests.helpers import buckets, totals


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def now_iso(delta: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def track(event: str = "Signed Up", **extra: Any) -> dict[str, Any]:
    body = {
        "type": "track",
        "event": event,
        "userId": "u1",
        "messageId": str(uuid.uuid4()),
        "timestamp": now_iso(),
    }
    body.update(extra)
    return body


@pytest.fixture
def src(engine: Engine) -> MadeSource:
    return make_source(engine)


def test_a_batch_with_basic_auth_is_counted_per_metric(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    events = [
        track(),
        track(),
        track("Logged In"),
        {"type": "page", "name": "Home", "anonymousId": "a", "timestamp": now_iso()},
        {"type": "identify", "userId": "u1", "traits": {"email": "x@example.com"}},
    ]
    response = client.post("/v1/batch", json={"batch": events}, headers=basic(src.key))
    assert response.status_code == 200
    assert response.json()["accepted"] == 5
    assert totals(engine, src.id) == {
        ("track", "Signed Up"): 2,
        ("track", "Logged In"): 1,
        ("total", "track"): 3,
        ("page", "Home"): 1,
        ("total", "page"): 1,
        ("total", "identify"): 1,
    }


@pytest.mark.parametrize("how", ["basic_colon", "basic_raw", "raw_header", "write_key"])
def test_every_way_segment_sends_a_key_authenticates(
    client: TestClient, engine: Engine, src: MadeSource, how: str
) -> None:
    body: dict[str, Any] = {"batch": [track()]}
    headers: dict[str, str] = {}
    if how == "basic_colon":
        headers = basic(src.key)
    elif how == "basic_raw":
        headers = {"Authorization": f"Basic {src.key}"}
    elif how == "raw_header":
        headers = {"Authorization": src.key}
    else:
        body["writeKey"] = src.key
    assert client.post("/v1/batch", json=body, headers=headers).status_code == 200
    assert totals(engine, src.id)[("track", "Signed Up")] == 1


def test_a_missing_or_unknown_key_is_401_with_a_reason(client: TestClient, src: MadeSource) -> None:
    missing = client.post("/v1/batch", json={"batch": [track()]})
    unknown = client.post("/v1/batch", json={"batch": [track()]}, headers=basic("nope"))
    assert missing.status_code == 401
    assert "API key" in missing.json()["detail"]
    assert unknown.status_code == 401
    assert unknown.json()["error"] == "invalid_key"


def test_malformed_json_is_400(client: TestClient, src: MadeSource) -> None:
    response = client.post("/v1/batch", content=b'{"batch": [', headers=basic(src.key))
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]


def test_oversize_requests_events_and_batches_are_400(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    big_request = {"batch": [track(properties={"pad": "x" * 20_000}) for _ in range(30)]}
    big_event = {"batch": [track(properties={"pad": "x" * 40_000})]}
    many = {"batch": [{"type": "track"} for _ in range(2501)]}
    for body, code in (
        (big_request, "payload_too_large"),
        (big_event, "event_too_large"),
        (many, "too_many_events"),
    ):
        response = client.post("/v1/batch", json=body, headers=basic(src.key))
        assert response.status_code == 400
        assert response.json()["error"] == code
    assert totals(engine, src.id) == {}


def test_invalid_events_are_rejected_alone_with_reasons(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    events = [
        track(),
        {"type": "track", "event": "No One", "timestamp": now_iso()},
        {"type": "track", "userId": "u1"},
        {"type": "launch", "userId": "u1"},
        track(timestamp="yesterday-ish"),
    ]
    response = client.post("/v1/batch", json={"batch": events}, headers=basic(src.key))
    assert response.status_code == 200
    reasons = {item["index"]: item["reason"] for item in response.json()["rejected"]}
    assert set(reasons) == {1, 2, 3, 4}
    assert "userId or anonymousId" in reasons[1]
    assert "event" in reasons[2]
    assert "unknown type" in reasons[3]
    assert "ISO-8601" in reasons[4]
    assert totals(engine, src.id) == {("track", "Signed Up"): 1, ("total", "track"): 1}


@pytest.mark.parametrize(
    ("integrations", "counted"),
    [
        ({"All": False}, False),
        ({"All": False, "Lantern": True}, True),
        ({"All": False, "Lazy Lantern": {"option": 1}}, True),
        ({"Lantern": False}, False),
        ({"All": True, "Lazy Lantern": False}, False),
        ({"Salesforce": False}, True),
    ],
)
def test_the_integrations_object_is_honoured(
    client: TestClient, engine: Engine, src: MadeSource, integrations: dict[str, Any], counted: bool
) -> None:
    body = {"batch": [track(integrations=integrations)]}
    assert client.post("/v1/batch", json=body, headers=basic(src.key)).status_code == 200
    assert (("track", "Signed Up") in totals(engine, src.id)) is counted


def test_batch_level_integrations_and_context_merge_into_each_item(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    body = {
        "batch": [track(), track(integrations={"Lantern": True})],
        "integrations": {"All": False},
        "context": {"library": {"name": "x"}},
    }
    response = client.post("/v1/batch", json=body, headers=basic(src.key))
    assert response.json()["accepted"] == 1
    assert totals(engine, src.id)[("track", "Signed Up")] == 1


def test_gzip_bodies_are_read_and_bombs_refused(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    body = gzip.compress(json.dumps({"batch": [track(), track()]}).encode())
    headers = {**basic(src.key), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    assert client.post("/v1/batch", content=body, headers=headers).status_code == 200
    bomb = gzip.compress(b'{"batch": [' + b" " * 5_000_000 + b"]}")
    response = client.post("/v1/batch", content=bomb, headers=headers)
    assert response.status_code == 400
    assert "decompressed" in response.json()["detail"]
    assert totals(engine, src.id)[("track", "Signed Up")] == 2


def test_event_time_is_corrected_for_the_client_clock(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    # The device clock runs 3 hours fast: sentAt and timestamp are both 3 h ahead.
    skew = timedelta(hours=3)
    happened = datetime.now(UTC) - timedelta(hours=5)
    body = {
        "batch": [track(timestamp=(happened + skew).isoformat())],
        "sentAt": (datetime.now(UTC) + skew).isoformat(),
    }
    assert client.post("/v1/batch", json=body, headers=basic(src.key)).status_code == 200
    hours = [h for (k, n, h) in buckets(engine, src.id) if k == "track"]
    expected = happened.replace(minute=0, second=0, microsecond=0)
    assert [datetime.fromisoformat(h) for h in hours] in (
        [expected],
        [expected + timedelta(hours=1)],  # the request may cross an hour
    )


def test_live_calls_outside_the_window_are_rejected_and_import_takes_history(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    old = track(timestamp=now_iso(-timedelta(days=30)))
    future = track(timestamp=now_iso(timedelta(hours=2)))
    live = client.post("/v1/batch", json={"batch": [old, future]}, headers=basic(src.key)).json()
    reasons = [item["reason"] for item in live["rejected"]]
    assert "/v1/import" in reasons[0]
    assert "future" in reasons[1]
    imported = client.post(
        "/v1/import",
        json={"batch": [track(timestamp=now_iso(-timedelta(days=30)))]},
        headers=basic(src.key),
    ).json()
    ancient = client.post(
        "/v1/import",
        json={"batch": [track(timestamp=now_iso(-timedelta(days=500)))]},
        headers=basic(src.key),
    ).json()
    assert imported["accepted"] == 1
    assert ancient["accepted"] == 0
    assert totals(engine, src.id)[("track", "Signed Up")] == 1


def test_a_repeated_message_id_is_acknowledged_and_counted_once(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    event = track()
    first = client.post("/v1/batch", json={"batch": [event, event]}, headers=basic(src.key))
    again = client.post("/v1/track", json=event, headers=basic(src.key))
    assert first.status_code == again.status_code == 200
    assert first.json()["duplicates"] == 1
    assert again.json()["duplicates"] == 1
    assert totals(engine, src.id)[("track", "Signed Up")] == 1


def test_seen_ids_are_purged_after_the_window(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    from lantern.ingest.dedupe import purge_seen_messages

    event = track()
    client.post("/v1/track", json=event, headers=basic(src.key))
    dropped = purge_seen_messages(
        engine, now=datetime.now(UTC) + timedelta(hours=2), horizon_hours=1
    )
    client.post("/v1/track", json=event, headers=basic(src.key))
    assert dropped >= 1
    assert totals(engine, src.id)[("track", "Signed Up")] == 2


def test_single_call_endpoints_take_their_type_from_the_path(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    headers = basic(src.key)
    client.post("/v1/track", json={"event": "Clicked", "userId": "u"}, headers=headers)
    client.post("/v1/page", json={"name": "Pricing", "userId": "u"}, headers=headers)
    client.post("/v1/screen", json={"name": "Feed", "anonymousId": "a"}, headers=headers)
    client.post("/v1/identify", json={"userId": "u", "traits": {"name": "A"}}, headers=headers)
    client.post("/v1/group", json={"userId": "u", "groupId": "g"}, headers=headers)
    client.post("/v1/alias", json={"userId": "u", "previousId": "p"}, headers=headers)
    assert totals(engine, src.id) == {
        ("track", "Clicked"): 1,
        ("total", "track"): 1,
        ("page", "Pricing"): 1,
        ("total", "page"): 1,
        ("screen", "Feed"): 1,
        ("total", "screen"): 1,
        ("total", "identify"): 1,
    }


def test_the_partner_webhook_takes_one_event_or_an_array(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    headers = basic(src.key)
    assert client.post("/v1/webhook", json=track(), headers=headers).json()["accepted"] == 1
    many = client.post("/v1/webhook", json=[track(), track()], headers=headers).json()
    assert many["accepted"] == 2
    assert totals(engine, src.id)[("track", "Signed Up")] == 3


def test_value_metrics_sum_value_else_revenue(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    events = [
        track("Order", properties={"value": 2.5}),
        track("Order", properties={"revenue": 4}),
        track("Order", properties={"value": "7"}),
        track("Order", properties={"value": True}),
    ]
    client.post("/v1/batch", json={"batch": events}, headers=basic(src.key))
    stored = buckets(engine, src.id)
    value = [v for (k, n, _h), v in stored.items() if (k, n) == ("value", "Order")]
    assert value == [(2, 6.5)]
    assert totals(engine, src.id)[("track", "Order")] == 4


def test_launchdarkly_events_become_flag_metrics_and_version_changes_are_kept(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    from sqlalchemy import select

    from lantern.metrics.models import FlagChange

    def feature(version: int, minutes_ago: int) -> dict[str, Any]:
        return track(
            "feature",
            timestamp=now_iso(-timedelta(minutes=minutes_ago)),
            properties={
                "key": "new-checkout",
                "environment": "production",
                "project": "web",
                "value": True,
                "flagVersion": version,
                "variation": 1,
            },
        )

    events = [
        feature(3, 30),
        feature(3, 20),
        feature(4, 10),
        track(
            "custom", properties={"key": "checkout-time", "environment": "prod", "metricValue": 1.5}
        ),
    ]
    client.post("/v1/batch", json={"batch": events}, headers=basic(src.key))
    found = totals(engine, src.id)
    assert found[("flag", "new-checkout")] == 3
    assert found[("experiment", "checkout-time")] == 1
    assert ("track", "feature") not in found
    with engine.connect() as connection:
        changes = connection.execute(
            select(FlagChange.flag_key, FlagChange.old_version, FlagChange.new_version).where(
                FlagChange.source_id == src.id
            )
        ).all()
    assert [tuple(c) for c in changes] == [("new-checkout", 3, 4)]


def test_new_names_past_the_cap_count_into_one_overflow_metric(
    app: Any, engine: Engine, src: MadeSource
) -> None:
    app.state.settings.metric_cap = 3
    with TestClient(app) as capped:
        events = [track(f"Event {i}") for i in range(6)]
        response = capped.post("/v1/batch", json={"batch": events}, headers=basic(src.key))
    assert response.json()["accepted"] == 6
    found = totals(engine, src.id)
    assert sum(1 for kind, _ in found if kind == "track") == 3
    assert found[("overflow", "(over the metric cap)")] == 3
    assert found[("total", "track")] == 6


def test_names_past_the_cap_stay_in_the_overflow_request_after_request_until_the_cap_rises(
    app: Any, engine: Engine, src: MadeSource
) -> None:
    app.state.settings.metric_cap = 3
    with TestClient(app) as capped:
        for _ in range(3):
            events = [track(f"Event {i}") for i in range(5)]
            sent = capped.post("/v1/batch", json={"batch": events}, headers=basic(src.key))
            assert sent.json()["accepted"] == 5
        found = totals(engine, src.id)
        assert {name for kind, name in found if kind == "track"} == {
            "Event 0",
            "Event 1",
            "Event 2",
        }
        assert found[("overflow", "(over the metric cap)")] == 6
        view = capped.get(
            f"/api/v1/sources/{src.id}/debug", headers={"Authorization": f"Bearer {src.token}"}
        )
        assert view.json()["over_cap_last_hour"] == 6
        # Room made by a higher cap is used by the next event that names a new metric.
        app.state.settings.metric_cap = 4
        capped.post("/v1/batch", json={"batch": [track("Event 3")]}, headers=basic(src.key))
    found = totals(engine, src.id)
    assert found[("track", "Event 3")] == 1
    assert found[("overflow", "(over the metric cap)")] == 6


def test_the_debug_view_shows_recent_events_and_minutes_to_a_token(
    client: TestClient, src: MadeSource, engine: Engine
) -> None:
    client.post(
        "/v1/batch",
        json={"batch": [track(), {"type": "track", "userId": "u"}]},
        headers=basic(src.key),
    )
    auth = {"Authorization": f"Bearer {src.token}"}
    view = client.get(f"/api/v1/sources/{src.id}/debug", headers=auth)
    assert view.status_code == 200
    data = view.json()
    assert data["accepted"][0]["event"]["event"] == "Signed Up"
    assert "event" in data["rejected"][0]["reason"]
    assert data["per_minute"][-1]["accepted"] == 1
    assert data["per_minute"][-1]["rejected"] == 1
    other = make_source(engine, name="other")
    denied = client.get(
        f"/api/v1/sources/{src.id}/debug", headers={"Authorization": f"Bearer {other.token}"}
    )
    assert denied.status_code == 404
    assert client.get(f"/api/v1/sources/{src.id}/debug").status_code == 401


def test_healthz_answers_when_the_database_is_reachable(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_a_rotated_key_replaces_the_old_one_at_once(
    client: TestClient, engine: Engine, src: MadeSource
) -> None:
    from lantern.db import session_scope
    from lantern.workspaces.models import Source
    from lantern.workspaces.service import rotate_source_key

    assert client.post("/v1/track", json=track(), headers=basic(src.key)).status_code == 200
    with session_scope(engine) as session:
        source = session.get(Source, src.id)
        assert source is not None
        new_key = rotate_source_key(session, source=source)
    assert client.post("/v1/track", json=track(), headers=basic(src.key)).status_code == 401
    assert client.post("/v1/track", json=track(), headers=basic(new_key)).status_code == 200
