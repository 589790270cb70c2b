"""Webhooks: every notification as a signed JSON POST, through the outbox, with retries.

The receiver is a local HTTP server (tests/fakewebhook.py) that checks each request's
signature with the secret Lantern showed when the webhook was added, answers as scripted
(500, a dropped answer, 200), and keeps the delivery ids it acted on, as a receiver should.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from lantern.config import Settings
from lantern.notify.outbox import flush_outbox
from tests.conftest import _free_port
from tests.factories import MadeSource, make_insight, make_source, resolve_insight
from tests.fakewebhook import Receiver


def bearer(src: MadeSource) -> dict[str, str]:
    return {"Authorization": f"Bearer {src.token}"}


def add(client: TestClient, src: MadeSource, url: str) -> dict[str, Any]:
    made = client.post("/api/v1/webhooks", json={"url": url}, headers=bearer(src))
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def test_each_notification_reaches_the_webhook_signed_and_once_per_delivery_id_through_failures(
    fresh_engine: Engine, fresh_client: TestClient, receiver: Receiver, settings: Settings
) -> None:
    src = make_source(fresh_engine)  # no Slack at all: the webhook is the only channel
    made = add(fresh_client, src, receiver.url)
    receiver.secret = made["secret"]
    insight = make_insight(fresh_engine, src)
    receiver.answers.extend([500, "drop"])
    now = datetime.now(UTC)
    tries = [
        flush_outbox(fresh_engine, settings, now=now + timedelta(seconds=s))
        for s in (0, 30, 60, 90, 180)
    ]
    # 500, then too soon (backoff 1 min), then the answer lost, then 2 min later: 200
    assert [(t.sent, t.retrying) for t in tries] == [(0, 1), (0, 0), (0, 1), (0, 0), (1, 0)]
    assert len(receiver.received) == 3 and all(r["signed"] for r in receiver.received)
    ids = {r["headers"]["x-lantern-delivery"] for r in receiver.received}
    assert len(ids) == 1 and receiver.acted_on == list(ids)  # the same id on every try
    opened = receiver.received[-1]["body"]
    assert receiver.received[-1]["headers"]["x-lantern-event"] == "insight.opened"
    assert opened["event"] == "insight.opened" and str(opened["delivery_id"]) in ids
    assert (opened["insight"]["id"], opened["insight"]["metric"]) == (insight, "Signed Up")
    assert opened["insight"]["observed"] < opened["insight"]["lower"]
    assert opened["insight"]["url"].endswith(f"/insights/{insight}")

    resolve_insight(fresh_engine, insight)
    later = flush_outbox(fresh_engine, settings, now=now + timedelta(minutes=5))
    again = flush_outbox(fresh_engine, settings, now=now + timedelta(minutes=6))
    assert (later.sent, again.sent) == (1, 0)
    assert receiver.received[-1]["body"]["event"] == "insight.resolved"
    assert len(receiver.acted_on) == 2
    [shown] = fresh_client.get("/api/v1/webhooks", headers=bearer(src)).json()
    assert (shown["sent"], shown["waiting"], shown["failed"]) == (2, 0, 0)
    assert "secret" not in shown


def test_a_receiver_that_keeps_failing_shows_why_and_is_given_up_after_every_retry(
    fresh_engine: Engine, fresh_client: TestClient, receiver: Receiver, settings: Settings
) -> None:
    src = make_source(fresh_engine)
    receiver.secret = add(fresh_client, src, receiver.url)["secret"]
    make_insight(fresh_engine, src)
    receiver.answers.extend([503] * 40)
    start = datetime.now(UTC)
    for hour in range(0, 24):
        flush_outbox(fresh_engine, settings, now=start + timedelta(hours=hour))
    [shown] = fresh_client.get("/api/v1/webhooks", headers=bearer(src)).json()
    assert (shown["sent"], shown["waiting"], shown["failed"]) == (0, 0, 1)
    assert shown["last_error"] == "the webhook answered 503; will retry"
    assert len(receiver.received) == 20  # MAX_ATTEMPTS, one an hour at most


def test_a_webhook_is_added_tested_and_removed_and_bad_input_is_refused(
    fresh_engine: Engine, fresh_client: TestClient, receiver: Receiver
) -> None:
    src, other = make_source(fresh_engine), make_source(fresh_engine)
    for bad in ["ftp://example.com/x", "https://", "not a url at all", "javascript:alert(1)"]:
        refused = fresh_client.post("/api/v1/webhooks", json={"url": bad}, headers=bearer(src))
        assert refused.status_code in (400, 422) and refused.json()["detail"], refused.text
    made = add(fresh_client, src, receiver.url)
    receiver.secret = made["secret"]
    assert made["secret"].startswith("whsec_")
    test = fresh_client.post(f"/api/v1/webhooks/{made['id']}/test", headers=bearer(src))
    assert test.status_code == 204, test.text
    [sent] = receiver.received
    assert sent["signed"] and sent["body"]["event"] == "test"
    receiver.secret = "a-secret-that-is-not-it"  # the receiver refuses: 401
    refused = fresh_client.post(f"/api/v1/webhooks/{made['id']}/test", headers=bearer(src))
    assert refused.status_code == 502 and "answered 401" in refused.json()["detail"]
    dead = add(fresh_client, src, f"http://127.0.0.1:{_free_port()}/gone")
    down = fresh_client.post(f"/api/v1/webhooks/{dead['id']}/test", headers=bearer(src))
    assert down.status_code == 502 and "could not be reached" in down.json()["detail"]
    for method in ("post", "delete"):
        path = f"/api/v1/webhooks/{made['id']}" + ("/test" if method == "post" else "")
        assert getattr(fresh_client, method)(path, headers=bearer(other)).status_code == 404
    gone = fresh_client.delete(f"/api/v1/webhooks/{made['id']}", headers=bearer(src))
    assert gone.status_code == 204
    listed = fresh_client.get("/api/v1/webhooks", headers=bearer(src)).json()
    assert [w["id"] for w in listed] == [dead["id"]]
