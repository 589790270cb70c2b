"""The outbox: each notification reaches Slack once, failures are visible and never loop."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from lantern.config import Settings
from lantern.db import session_scope
from lantern.notify.connection import connect_with_token, connection_status
from lantern.notify.models import Notification
from lantern.notify.outbox import flush_outbox
from tests.factories import MadeSource, make_insight, make_source, resolve_insight
from tests.fakeslack import GOOD_TOKEN, Answer, FakeSlack


def slack_settings(settings: Settings, fake: FakeSlack) -> Settings:
    return settings.model_copy(update={"slack_base_url": fake.api_url})


def connected(engine: Engine, settings: Settings, channel: str = "alerts") -> MadeSource:
    src = make_source(engine)
    with session_scope(engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel=channel,
            settings=settings,
        )
    return src


def statuses(engine: Engine, insight_id: int) -> list[tuple[str, str]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(Notification.purpose, Notification.status)
            .where(Notification.insight_id == insight_id)
            .order_by(Notification.id)
        ).all()
    return [tuple(r) for r in rows]


def test_an_alert_and_its_resolution_reach_slack_once_in_one_thread(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    insight = make_insight(fresh_engine, src)
    now = datetime.now(UTC)
    first = flush_outbox(fresh_engine, settings, now=now)
    resolve_insight(fresh_engine, insight)
    second = flush_outbox(fresh_engine, settings, now=now + timedelta(minutes=1))
    third = flush_outbox(fresh_engine, settings, now=now + timedelta(minutes=2))
    assert (first.sent, second.sent, third.sent) == (1, 1, 0)
    [alert] = fake_slack.top_level()
    assert "Signed Up" in alert["text"] and "66%" in alert["text"]
    assert len(fake_slack.uploads) == 1
    [reply] = fake_slack.replies(alert["ts"])
    assert reply["text"].startswith("Signed Up is back to normal")
    assert statuses(fresh_engine, insight) == [("alert", "sent"), ("resolution", "sent")]


def test_a_crash_between_sending_and_recording_does_not_send_twice(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    insight = make_insight(fresh_engine, src)
    url = fresh_engine.url.render_as_string(hide_password=False)
    crash = textwrap.dedent(
        f"""
        import os
        from datetime import UTC, datetime
        from lantern.config import Settings
        from lantern.db.session import make_engine
        from lantern.notify.outbox import flush_outbox
        settings = Settings(database_url={url!r}, slack_base_url={fake_slack.api_url!r})
        flush_outbox(make_engine({url!r}), settings, now=datetime.now(UTC),
                     after_send=lambda row: os._exit(9))
        """
    )
    died = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True)
    assert died.returncode == 9, died.stderr
    assert statuses(fresh_engine, insight) == [("alert", "sending")]
    assert len(fake_slack.top_level()) == 1
    result = flush_outbox(fresh_engine, settings, now=datetime.now(UTC))
    assert (result.reconciled, result.sent) == (1, 0)
    assert len(fake_slack.calls("chat.postMessage")) == 1
    with session_scope(fresh_engine) as session:
        row = session.scalars(select(Notification).where(Notification.insight_id == insight)).one()
        assert (row.status, row.ts) == ("sent", fake_slack.top_level()[0]["ts"])


def test_a_revoked_token_fails_the_notification_with_a_reason_and_nothing_loops(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    insight = make_insight(fresh_engine, src)
    fake_slack.revoked.add(GOOD_TOKEN)
    now = datetime.now(UTC)
    first = flush_outbox(fresh_engine, settings, now=now)
    again = flush_outbox(fresh_engine, settings, now=now + timedelta(hours=2))
    assert (first.failed, again.sent, again.failed) == (1, 0, 0)
    assert len(fake_slack.calls("chat.postMessage")) == 1
    assert statuses(fresh_engine, insight) == [("alert", "failed")]
    with session_scope(fresh_engine) as session:
        status = connection_status(session, workspace_id=src.workspace_id, settings=settings)
    assert "revoked" in (status["last_failure"] or "")
    assert "reconnect Slack" in (status["error"] or "")


def test_a_missing_channel_fails_with_words_the_dashboard_can_show(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings, channel="deleted-channel")
    make_insight(fresh_engine, src)
    flush_outbox(fresh_engine, settings, now=datetime.now(UTC))
    with session_scope(fresh_engine) as session:
        status = connection_status(session, workspace_id=src.workspace_id, settings=settings)
    assert status["failed_notifications"] == 1
    assert "channel was not found" in status["last_failure"]


def test_server_errors_back_off_and_are_sent_later(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    insight = make_insight(fresh_engine, src)
    fake_slack.script("chat.postMessage", *[Answer(503, {"ok": False})] * 3)
    now = datetime.now(UTC)
    first = flush_outbox(fresh_engine, settings, now=now)
    too_soon = flush_outbox(fresh_engine, settings, now=now + timedelta(seconds=10))
    later = flush_outbox(fresh_engine, settings, now=now + timedelta(minutes=5))
    assert (first.retrying, too_soon.sent, later.sent) == (1, 0, 1)
    assert statuses(fresh_engine, insight) == [("alert", "sent")]
    assert len(fake_slack.top_level()) == 1


def test_without_slack_a_notification_is_skipped_not_kept_forever(
    fresh_engine: Engine, settings: Settings
) -> None:
    src = make_source(fresh_engine)
    insight = make_insight(fresh_engine, src)
    result = flush_outbox(fresh_engine, settings, now=datetime.now(UTC))
    assert result.skipped == 1
    assert statuses(fresh_engine, insight) == [("alert", "skipped")]
