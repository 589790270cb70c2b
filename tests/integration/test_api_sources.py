"""The dashboard API's sources: list, create, rotate, delete, and the debug view."""

from __future__ import annotations

from typing import Any

import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from lantern.insights.models import Insight
from lantern.metrics.models import Bucket, Metric
from lantern.notify.models import Notification
from tests.factories import MadeSource, make_insight, make_metric, make_source


def bearer(src: MadeSource) -> dict[str, str]:
    return {"Authorization": f"Bearer {src.token}"}


def track(name: str = "Signed Up") -> dict[str, Any]:
    return {"type": "track", "userId": "u", "event": name}


def test_a_new_source_shows_its_key_once_and_is_listed_without_it(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    created = client.post("/api/v1/sources", json={"name": " app "}, headers=bearer(src))
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "app"
    assert body["key_hint"] == body["api_key"][:4]
    assert body["rotated_at"] is None
    listed = client.get("/api/v1/sources", headers=bearer(src)).json()
    assert [s["name"] for s in listed] == ["app", "web"]
    fresh = listed[0]
    assert "api_key" not in fresh
    assert fresh["metrics"] == 0
    assert fresh["training_ends_at"] is None
    assert fresh["training_left_seconds"] is None
    assert fresh["events_last_hour"] == 0
    assert fresh["last_event_at"] is None
    sent = client.post("/v1/track", json=track(), auth=(body["api_key"], ""))
    assert sent.status_code == 200


def test_a_taken_name_is_a_conflict_and_a_blank_or_unprintable_one_is_invalid(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    taken = client.post("/api/v1/sources", json={"name": "web"}, headers=bearer(src))
    assert taken.status_code == 409
    assert "web" in taken.json()["detail"]
    for name in ("", "   ", "bad\x00name", "x" * 101):
        invalid = client.post("/api/v1/sources", json={"name": name}, headers=bearer(src))
        assert invalid.status_code == 422, name
        assert "name" in invalid.json()["detail"]
    unknown = client.post("/api/v1/sources", json={"name": "a", "x": 1}, headers=bearer(src))
    assert unknown.status_code == 422


def test_the_list_counts_metrics_the_training_countdown_and_the_last_hours_events(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    before = pd.Timestamp.now(tz="UTC")
    batch = [track("Signed Up"), track("Signed Up"), track("Checkout Completed")]
    assert client.post("/v1/batch", json={"batch": batch}, auth=(src.key, "")).status_code == 200
    (listed,) = client.get("/api/v1/sources", headers=bearer(src)).json()
    assert listed["metrics"] == 3  # two event names and the track total
    assert listed["trained_metrics"] == 0
    assert listed["events_last_hour"] == 3
    assert pd.Timestamp(listed["last_event_at"]) >= before.floor("s")
    ends = pd.Timestamp(listed["training_ends_at"])
    assert ends == before.floor("h") + pd.Timedelta(days=7)
    assert 6 * 86400 < listed["training_left_seconds"] <= 7 * 86400

    make_metric(engine, src, name="Old Event", days=10)
    (listed,) = client.get("/api/v1/sources", headers=bearer(src)).json()
    assert listed["metrics"] == 4
    assert listed["trained_metrics"] == 1
    assert listed["training_left_seconds"] == 0


def test_a_backfill_counts_as_history_received_not_as_this_hours_traffic(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    now = pd.Timestamp.now(tz="UTC")
    history = [
        {**track("Signed Up"), "timestamp": (now - pd.Timedelta(days=d)).isoformat()}
        for d in range(2, 12)
    ]
    imported = client.post("/v1/import", json={"batch": history}, auth=(src.key, ""))
    assert imported.status_code == 200
    live = client.post("/v1/batch", json={"batch": [track(), track()]}, auth=(src.key, ""))
    assert live.status_code == 200
    (listed,) = client.get("/api/v1/sources", headers=bearer(src)).json()
    assert listed["events_this_hour"] == 2
    assert listed["events_last_hour"] == 12  # received: the import and the live calls
    assert listed["earlier_events_last_hour"] == 10


def test_rotating_a_key_returns_a_new_one_and_the_old_one_stops_working(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    rotated = client.post(f"/api/v1/sources/{src.id}/rotate", headers=bearer(src))
    assert rotated.status_code == 200
    body = rotated.json()
    assert body["api_key"] != src.key
    assert body["rotated_at"] is not None
    assert client.post("/v1/track", json=track(), auth=(src.key, "")).status_code == 401
    assert client.post("/v1/track", json=track(), auth=(body["api_key"], "")).status_code == 200


def test_deleting_a_source_takes_its_metrics_buckets_and_insights_and_its_key_stops(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    keep = client.post("/api/v1/sources", json={"name": "keep"}, headers=bearer(src)).json()
    insight_id = make_insight(engine, src)
    assert client.post("/v1/track", json=track(), auth=(src.key, "")).status_code == 200

    deleted = client.delete(f"/api/v1/sources/{src.id}", headers=bearer(src))
    assert deleted.status_code == 204
    assert [s["name"] for s in client.get("/api/v1/sources", headers=bearer(src)).json()] == [
        "keep"
    ]
    assert client.post("/v1/track", json=track(), auth=(src.key, "")).status_code == 401
    assert client.get(f"/api/v1/insights/{insight_id}", headers=bearer(src)).status_code == 404
    with engine.connect() as connection:
        metrics = connection.scalar(
            select(func.count()).select_from(Metric).where(Metric.source_id == src.id)
        )
        buckets = connection.scalar(
            select(func.count())
            .select_from(Bucket)
            .join(Metric, Metric.id == Bucket.metric_id)
            .where(Metric.source_id == src.id)
        )
        insights = connection.scalar(
            select(func.count()).select_from(Insight).where(Insight.id == insight_id)
        )
        notifications = connection.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.insight_id == insight_id)
        )
    assert (metrics, buckets, insights, notifications) == (0, 0, 0, 0)
    assert client.delete(f"/api/v1/sources/{src.id}", headers=bearer(src)).status_code == 404
    still = client.post("/v1/track", json=track(), auth=(keep["api_key"], ""))
    assert still.status_code == 200


def test_the_debug_view_names_the_events_that_fell_over_the_metric_cap(
    app: Any, engine: Engine
) -> None:
    src = make_source(engine)
    app.state.settings.metric_cap = 3
    with TestClient(app) as capped:
        events = [track(f"Event {i}") for i in range(5)] + [{"type": "track", "userId": "u"}]
        assert capped.post("/v1/batch", json={"batch": events}, auth=(src.key, "")).status_code
        view = capped.get(f"/api/v1/sources/{src.id}/debug", headers=bearer(src)).json()
    assert view["over_cap"] == ["Event 3", "Event 4"]
    assert view["over_cap_last_hour"] == 2
    assert view["over_cap_latest_hour"] == 2
    assert view["rejection_reasons"] == {"track call without an `event` name": 1}
    other = make_source(engine)
    calm = TestClient(app).get(f"/api/v1/sources/{other.id}/debug", headers=bearer(other))
    assert calm.json()["over_cap"] == []


def test_text_with_a_nul_character_is_refused_as_invalid_wherever_it_is_sent(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    sent = [
        client.get("/api/v1/metrics", params={"q": "a\x00b"}, headers=bearer(src)),
        client.get("/api/v1/insights", params={"cursor": "a\x00b"}, headers=bearer(src)),
        client.post("/api/v1/auth/login", json={"email": "a\x00@b.c", "password": "p\x00"}),
        client.put(
            "/api/v1/slack/token",
            json={"bot_token": "xoxb-\x00abc", "channel": "#a\x00"},
            headers=bearer(src),
        ),
    ]
    assert [r.status_code for r in sent] == [422, 422, 422, 422]
    assert all(r.json()["error"] == "invalid_request" for r in sent)
