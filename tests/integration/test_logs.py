"""The operator's log: one line per ingest group, hourly pass and delivery, never personal data."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from lantern.config import Settings
from lantern.db import session_scope
from lantern.metrics.service import epoch_hour
from lantern.notify.connection import connect_with_token
from lantern.notify.outbox import flush_outbox
from lantern.pipeline import run_hour
from tests.factories import history_events, import_events, make_source
from tests.fakeslack import GOOD_TOKEN, FakeSlack
from tests.integration.test_pipeline import recent_end, rhythm_counts

# Planted in every event: none of it may reach a log line.
PERSONAL = {
    "userId": "user-8c1f-jane",
    "anonymousId": "anon-77d2-jane",
    "email": "jane.doe@example.org",
    "ip": "203.0.113.77",
    "name": "Jane Q. Doe",
    "phone": "+1 555 0100 4242",
    "userAgent": "JaneBrowser/9.9",
    "deviceId": "device-3b9e-jane",
}


def with_personal_data(event: dict[str, object]) -> dict[str, object]:
    traits = {"email": PERSONAL["email"], "name": PERSONAL["name"], "phone": PERSONAL["phone"]}
    return {
        **event,
        "userId": PERSONAL["userId"],
        "anonymousId": PERSONAL["anonymousId"],
        "context": {
            "ip": PERSONAL["ip"],
            "userAgent": PERSONAL["userAgent"],
            "device": {"id": PERSONAL["deviceId"]},
            "traits": traits,
        },
        "properties": {"email": PERSONAL["email"], "customer": PERSONAL["name"]},
    }


def lines(caplog: pytest.LogCaptureFixture, logger: str, level: int, start: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == logger and r.levelno == level and r.getMessage().startswith(start)
    ]


def test_a_pass_and_its_delivery_are_logged_with_ids_and_durations_and_no_personal_data(
    fresh_client: TestClient,
    fresh_engine: Engine,
    settings: Settings,
    fake_slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="lantern")
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    src = make_source(fresh_engine)
    with session_scope(fresh_engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="alerts",
            settings=settings,
        )
    end = recent_end()
    broken = rhythm_counts(end, peak=120, seed=1)
    broken.iloc[-4:] = 0  # the last four hours go silent: an outage
    events = [with_personal_data(e) for e in history_events(broken, event="Checkout")]
    for i in range(0, len(events), 500):  # heavier events: fewer per batch
        import_events(fresh_client, src.key, events[i : i + 500])
    last = epoch_hour(broken.index[-1])
    for hour in range(last - 5, last + 1):
        run_hour(fresh_engine, settings, hour=hour, worker="test")
    delivered = flush_outbox(fresh_engine, settings, now=datetime.now(UTC))
    assert delivered.sent >= 1  # the alert, its chart in it

    groups = lines(caplog, "lantern.ingest.writer", logging.DEBUG, "ingest group written:")
    assert groups
    assert all(re.search(rf"sources={src.id} .* ms=\d+\.\d", g) for g in groups)
    assert sum(int(re.findall(r"accepted=(\d+)", g)[0]) for g in groups) == len(events)
    passes = lines(caplog, "lantern.pipeline", logging.INFO, "hourly pass done:")
    assert len(passes) == 6
    assert all(
        re.search(r"metrics=2 insights=\d+ alerts=\d failures=0 ms=\d+\.\d", p) for p in passes
    )
    assert sum(int(re.findall(r"alerts=(\d+)", p)[0]) for p in passes) == 1
    sent = lines(caplog, "lantern.notify.delivery", logging.INFO, "notification delivered:")
    assert [re.findall(r"purpose=(\w+)", line)[0] for line in sent] == ["alert"]
    assert all(
        re.search(rf"workspace={src.workspace_id} insight=\d+ .* outcome=sent .* ms=", line)
        for line in sent
    )
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert [value for value in PERSONAL.values() if value in logged] == []
