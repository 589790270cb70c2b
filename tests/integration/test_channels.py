"""The outbox's guarantees, held by every channel: Slack and a webhook go through one driver.

Each test runs once per channel, against the local Slack-compatible server
(tests/fakeslack.py) or a local webhook receiver that checks signatures and acts once per
delivery id (tests/fakewebhook.py). Faults are played after the message has landed (an
error answer, an answer too slow, a rate limit, the process dying between the send and its
record), and the clock is the `now` each flush is given.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from lantern.config import Settings
from lantern.db import session_scope
from lantern.notify.connection import connect_with_token
from lantern.notify.models import Notification, WebhookDelivery
from lantern.notify.outbox import FlushResult, flush_outbox
from lantern.notify.slack import SlackNotifier
from lantern.notify.webhooks import WebhookNotifier
from tests.factories import MadeSource, make_insight, make_source
from tests.fakeslack import GOOD_TOKEN, OTHER_TOKEN, Answer, FakeSlack
from tests.fakewebhook import Receiver

CHANNELS = ["slack", "webhook"]
FAULTS = ["error after acting", "timeout after acting", "429 Retry-After 12", "crash after sending"]


def quick_slack(token: str, settings: Settings) -> SlackNotifier:
    """Gives up waiting for Slack after one second, for the timeout faults."""
    return SlackNotifier(token, base_url=settings.slack_base_url, timeout=1)


def quick_webhook(url: str, secret: str) -> WebhookNotifier:
    """Gives up waiting for a receiver after one second, for the timeout faults."""
    return WebhookNotifier(url, secret, timeout=1)


@dataclass
class Side:
    """One channel as the tests see it: connect a workspace, play a fault, count what landed."""

    kind: str
    engine: Engine
    settings: Settings
    client: TestClient
    slack: FakeSlack
    receivers: list[Receiver]

    def connect(self, index: int = 0) -> MadeSource:
        src = make_source(self.engine)
        if self.kind == "slack":
            with session_scope(self.engine) as session:
                connect_with_token(
                    session,
                    workspace_id=src.workspace_id,
                    bot_token=(GOOD_TOKEN, OTHER_TOKEN)[index],
                    channel=("alerts", "general")[index],
                    settings=self.settings,
                )
            return src
        receiver = self.receivers[index]
        made = self.client.post(
            "/api/v1/webhooks",
            json={"url": receiver.url},
            headers={"Authorization": f"Bearer {src.token}"},
        )
        assert made.status_code == 201, made.text
        receiver.secret = made.json()["secret"]
        return src

    def play(self, fault: str, index: int = 0) -> None:
        """The next send through workspace `index`'s channel meets `fault`."""
        token = (GOOD_TOKEN, OTHER_TOKEN)[index]
        if fault == "crash after sending":
            self.flush_in_a_process_that_dies_after_sending()
        elif self.kind == "webhook":
            answers: dict[str, list[int | str]] = {
                "error after acting": [500],
                "timeout after acting": ["slow"],
                "429 Retry-After 12": [429] * 3,
                "error before acting": [503],
            }
            self.receivers[index].answers.extend(answers[fault])
        elif fault == "error after acting":
            self.slack.script("chat.postMessage", Answer(500, {"ok": False}, store=True))
        elif fault == "timeout after acting":
            self.slack.script("chat.postMessage", Answer(delay=2.5, store=True), token=token)
        elif fault == "error before acting":
            self.slack.script("chat.postMessage", Answer(503, {"ok": False}))
        else:
            limited = Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "12"})
            self.slack.script("chat.postMessage", *[limited] * 3)

    def flush_in_a_process_that_dies_after_sending(self) -> None:
        url = self.engine.url.render_as_string(hide_password=False)
        crash = textwrap.dedent(
            f"""
            import os
            from datetime import UTC, datetime
            from lantern.config import Settings
            from lantern.db.session import make_engine
            from lantern.notify.outbox import flush_outbox
            settings = Settings(database_url={url!r}, slack_base_url={self.slack.api_url!r})
            flush_outbox(make_engine({url!r}), settings, now=datetime.now(UTC),
                         after_send=lambda row: os._exit(9))
            """
        )
        died = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True)
        assert died.returncode == 9, died.stderr

    def flush(self, now: datetime) -> FlushResult:
        return flush_outbox(
            self.engine,
            self.settings,
            now=now,
            notifier_factory=quick_slack,
            webhook_factory=quick_webhook,
        )

    def landed(self, index: int = 0) -> int:
        """How many messages the destination acted on (a webhook: distinct delivery ids)."""
        if self.kind == "slack":
            return len(self.slack.posted_by((GOOD_TOKEN, OTHER_TOKEN)[index]))
        return len(self.receivers[index].acted_on)

    def tries(self) -> int:
        """How many sends reached the destination."""
        if self.kind == "slack":
            return len(self.slack.calls("chat.postMessage"))
        return len(self.receivers[0].received)

    def wait_for_the_stuck_answer(self) -> None:
        """Until the hanging destination (workspace 0) has answered, long after the client left."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.kind == "slack":
                if ("answered", "chat.postMessage", GOOD_TOKEN) in self.slack.events:
                    return
            elif self.receivers[0].answered:
                return
            time.sleep(0.05)

    def statuses(self) -> list[str]:
        """The states of the rows that carry the alerts to this channel."""
        model: Any = Notification if self.kind == "slack" else WebhookDelivery
        with session_scope(self.engine) as session:
            return list(session.scalars(select(model.status).order_by(model.id)).all())


@pytest.fixture(params=CHANNELS)
def side(
    request: pytest.FixtureRequest,
    fresh_engine: Engine,
    fresh_client: TestClient,
    settings: Settings,
    fake_slack: FakeSlack,
    receiver: Receiver,
    other_receiver: Receiver,
) -> Side:
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    return Side(
        request.param,
        fresh_engine,
        settings,
        fresh_client,
        fake_slack,
        [receiver, other_receiver],
    )


@pytest.mark.parametrize("fault", FAULTS)
def test_an_alert_lands_exactly_once_whatever_the_channel_or_the_process_does(
    side: Side, fault: str
) -> None:
    src = side.connect()
    make_insight(side.engine, src)
    side.play(fault)
    start = datetime.now(UTC)
    results = [side.flush(start + timedelta(minutes=minute)) for minute in range(0, 121)]
    assert side.landed() == 1
    assert side.statuses() == ["sent"]
    assert sum(r.sent + r.reconciled for r in results) == 1  # recorded once, after the fault


def test_a_send_that_failed_is_tried_again_after_its_backoff_not_before(side: Side) -> None:
    src = side.connect()
    make_insight(side.engine, src)
    side.play("error before acting")
    now = datetime.now(UTC)
    first = side.flush(now)
    too_soon = side.flush(now + timedelta(seconds=50))
    after_a_minute = side.flush(now + timedelta(minutes=1))
    assert (first.retrying, too_soon.sent + too_soon.retrying, after_a_minute.sent) == (1, 0, 1)
    assert side.tries() == 2 and side.landed() == 1
    assert side.statuses() == ["sent"]


def test_a_channel_that_hangs_never_holds_up_another_workspace(side: Side) -> None:
    stuck, healthy = side.connect(0), side.connect(1)
    make_insight(side.engine, stuck)
    make_insight(side.engine, healthy)
    side.play("timeout after acting", index=0)
    result = side.flush(datetime.now(UTC))
    assert result.sent == 1 and result.retrying == 1
    assert side.landed(1) == 1
    side.wait_for_the_stuck_answer()
    if side.kind == "slack":
        events = side.slack.events
        healthy_sent = events.index(("received", "chat.postMessage", OTHER_TOKEN))
        stuck_answered = events.index(("answered", "chat.postMessage", GOOD_TOKEN))
        assert healthy_sent < stuck_answered
    else:
        [healthy_sent] = [r["at"] for r in side.receivers[1].received]
        assert healthy_sent < max(side.receivers[0].answered)
