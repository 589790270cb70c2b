"""The outbox: each notification reaches Slack exactly once, per workspace, under every fault.

The faults are played by the local Slack-compatible server (tests/fakeslack.py): it posts
a message and then answers 500 or stalls past the client's timeout, rate-limits with a
long Retry-After, and the process dies between the post and its record.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from lantern.config import Settings
from lantern.db import session_scope
from lantern.notify.connection import connect_with_token, connection_status
from lantern.notify.models import Notification, SlackConnection
from lantern.notify.outbox import FlushResult, flush_outbox
from lantern.notify.slack import SlackNotifier
from tests.factories import MadeSource, make_insight, make_source, resolve_insight
from tests.fakeslack import GOOD_TOKEN, OTHER_TOKEN, Answer, FakeSlack

FAULTS = ["5xx after posting", "timeout after posting", "429 Retry-After 12", "crash after posting"]


def slack_settings(settings: Settings, fake: FakeSlack) -> Settings:
    return settings.model_copy(update={"slack_base_url": fake.api_url})


def quick(token: str, settings: Settings) -> SlackNotifier:
    """A notifier that gives up waiting after one second, for the timeout faults."""
    return SlackNotifier(token, base_url=settings.slack_base_url, timeout=1)


def connected(
    engine: Engine, settings: Settings, channel: str = "alerts", token: str = GOOD_TOKEN
) -> MadeSource:
    src = make_source(engine)
    with session_scope(engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=token,
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


def status_of(engine: Engine, settings: Settings, src: MadeSource) -> dict[str, Any]:
    with session_scope(engine) as session:
        return connection_status(session, workspace_id=src.workspace_id, settings=settings)


def replies_said(fake: FakeSlack, ts: str) -> list[str]:
    """The text replies in a thread (the chart is a file reply of its own)."""
    return [m["text"] for m in fake.replies(ts) if not m.get("files")]


def flush_in_a_process_that_dies_after_posting(engine: Engine, fake: FakeSlack) -> None:
    url = engine.url.render_as_string(hide_password=False)
    crash = textwrap.dedent(
        f"""
        import os
        from datetime import UTC, datetime
        from lantern.config import Settings
        from lantern.db.session import make_engine
        from lantern.notify.outbox import flush_outbox
        settings = Settings(database_url={url!r}, slack_base_url={fake.api_url!r})
        flush_outbox(make_engine({url!r}), settings, now=datetime.now(UTC),
                     after_send=lambda row: os._exit(9))
        """
    )
    died = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True)
    assert died.returncode == 9, died.stderr


def play(fake: FakeSlack, fault: str, engine: Engine) -> None:
    """The next chat.postMessage meets `fault`."""
    if fault == "5xx after posting":
        fake.script("chat.postMessage", Answer(500, {"ok": False}, store=True))
    elif fault == "timeout after posting":
        fake.script("chat.postMessage", Answer(delay=2.5, store=True))
    elif fault == "429 Retry-After 12":
        fake.script(
            "chat.postMessage",
            *[Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "12"})] * 3,
        )
    else:
        flush_in_a_process_that_dies_after_posting(engine, fake)


def keep_flushing(engine: Engine, settings: Settings, start: datetime) -> list[FlushResult]:
    """Flushes every minute for two hours, as the scheduler would."""
    return [
        flush_outbox(
            engine, settings, now=start + timedelta(minutes=minute), notifier_factory=quick
        )
        for minute in range(0, 121)
    ]


def test_an_alert_with_its_chart_and_its_resolution_reach_slack_once_in_one_thread(
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
    # the chart is in the alert itself, seen in the channel, not a file in its thread
    [png] = fake_slack.images(alert["ts"])
    assert png[:4] == b"\x89PNG" and fake_slack.charts(alert["ts"]) == []
    assert fake_slack.completed[0]["files"][0]["title"] == "Signed Up: last 7 days"
    [reply] = replies_said(fake_slack, alert["ts"])
    assert reply.startswith("Signed Up is back to normal")
    assert statuses(fresh_engine, insight) == [("alert", "sent"), ("resolution", "sent")]


@pytest.mark.parametrize("fault", FAULTS)
def test_an_alert_is_in_slack_exactly_once_whatever_slack_or_the_process_does(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack, fault: str
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    insight = make_insight(fresh_engine, src)
    play(fake_slack, fault, fresh_engine)
    keep_flushing(fresh_engine, settings, datetime.now(UTC))
    [alert] = fake_slack.top_level()
    assert len(fake_slack.images(alert["ts"])) == 1 and not fake_slack.charts(alert["ts"])
    assert statuses(fresh_engine, insight) == [("alert", "sent")]
    with session_scope(fresh_engine) as session:
        row = session.scalars(
            select(Notification).where(
                Notification.insight_id == insight, Notification.purpose == "alert"
            )
        ).one()
        assert (row.ts, row.error) == (alert["ts"], None)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_thread_reply_is_in_slack_exactly_once_whatever_slack_or_the_process_does(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack, fault: str
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    insight = make_insight(fresh_engine, src)
    flush_outbox(fresh_engine, settings, now=datetime.now(UTC))
    resolve_insight(fresh_engine, insight)
    play(fake_slack, fault, fresh_engine)
    keep_flushing(fresh_engine, settings, datetime.now(UTC))
    [alert] = fake_slack.top_level()
    [reply] = replies_said(fake_slack, alert["ts"])
    assert reply.startswith("Signed Up is back to normal")
    assert statuses(fresh_engine, insight)[-1] == ("resolution", "sent")


def test_an_unknown_outcome_is_looked_up_before_anything_is_posted_again(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    make_insight(fresh_engine, src)
    fake_slack.script("chat.postMessage", Answer(500, {"ok": False}, store=True))
    now = datetime.now(UTC)
    first = flush_outbox(fresh_engine, settings, now=now)
    waiting = status_of(fresh_engine, settings, src)
    later = flush_outbox(fresh_engine, settings, now=now + timedelta(minutes=5))
    assert (first.sent, first.retrying, later.reconciled) == (0, 1, 1)
    assert len(fake_slack.calls("chat.postMessage")) == 1
    [lookup] = fake_slack.calls("conversations.history")
    assert lookup.params["channel"] == "C0ALERTS"
    assert "checking whether it was posted" in waiting["error"]
    assert status_of(fresh_engine, settings, src)["error"] is None


def test_a_server_error_before_posting_is_sent_once_after_looking(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    insight = make_insight(fresh_engine, src)
    fake_slack.script("chat.postMessage", Answer(503, {"ok": False}))
    now = datetime.now(UTC)
    first = flush_outbox(fresh_engine, settings, now=now)
    too_soon = flush_outbox(fresh_engine, settings, now=now + timedelta(seconds=10))
    later = flush_outbox(fresh_engine, settings, now=now + timedelta(minutes=5))
    assert (first.retrying, too_soon.sent, later.sent) == (1, 0, 1)
    assert statuses(fresh_engine, insight) == [("alert", "sent")]
    assert len(fake_slack.top_level()) == 1


def test_a_chart_that_fails_to_upload_is_uploaded_again_and_the_alert_shows_it_once(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    insight = make_insight(fresh_engine, src)
    fake_slack.script("files.getUploadURLExternal", Answer(500, {"ok": False}))
    fake_slack.script("files.completeUploadExternal", Answer(500, {"ok": False}, store=True))
    keep_flushing(fresh_engine, settings, datetime.now(UTC))
    [alert] = fake_slack.top_level()
    assert len(fake_slack.images(alert["ts"])) == 1 and not fake_slack.charts(alert["ts"])
    assert statuses(fresh_engine, insight) == [("alert", "sent")]


def test_an_alert_slack_refuses_with_its_image_goes_without_it_and_its_chart_follows_in_thread(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    insight = make_insight(fresh_engine, src)
    # as Slack does while an uploaded file is still being processed
    fake_slack.script("chat.postMessage", Answer(200, {"ok": False, "error": "invalid_blocks"}))
    first = flush_outbox(fresh_engine, settings, now=datetime.now(UTC))
    [alert] = fake_slack.top_level()
    assert first.sent == 2 and fake_slack.images(alert["ts"]) == []
    assert len(fake_slack.charts(alert["ts"])) == 1
    assert statuses(fresh_engine, insight) == [("alert", "sent"), ("chart", "sent")]


def test_one_workspaces_failing_reconcile_never_stops_another_and_shows_why(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    troubled = connected(fresh_engine, settings, token=GOOD_TOKEN)
    healthy = connected(fresh_engine, settings, channel="general", token=OTHER_TOKEN)
    make_insight(fresh_engine, troubled)
    fake_slack.script("chat.postMessage", Answer(500, {"ok": False}, store=True), token=GOOD_TOKEN)
    now = datetime.now(UTC)
    flush_outbox(fresh_engine, settings, now=now)
    fake_slack.script("conversations.history", *[Answer(500, {"ok": False})] * 50, token=GOOD_TOKEN)
    make_insight(fresh_engine, healthy)
    during = flush_outbox(fresh_engine, settings, now=now + timedelta(minutes=5))
    seen = status_of(fresh_engine, settings, troubled)
    fake_slack.scripts.clear()
    after = keep_flushing(fresh_engine, settings, now + timedelta(minutes=10))
    assert during.sent == 1  # the healthy workspace's alert, its chart in it
    assert len(fake_slack.posted_by(OTHER_TOKEN)) == 1
    assert seen["waiting_notifications"] == 1
    assert "Slack answered 500" in seen["error"]
    assert sum(r.reconciled for r in after) == 1
    assert len(fake_slack.posted_by(GOOD_TOKEN)) == 1
    assert status_of(fresh_engine, settings, troubled)["error"] is None


def test_a_rate_limited_workspace_waits_as_told_while_others_are_delivered(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    limited = connected(fresh_engine, settings, token=GOOD_TOKEN)
    other = connected(fresh_engine, settings, channel="general", token=OTHER_TOKEN)
    make_insight(fresh_engine, limited)
    make_insight(fresh_engine, limited, name="Checkout")
    make_insight(fresh_engine, other)
    fake_slack.script(
        "chat.postMessage",
        *[Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "12"})] * 3,
        token=GOOD_TOKEN,
    )
    now = datetime.now(UTC)
    first = flush_outbox(fresh_engine, settings, now=now)
    posts_first = len(fake_slack.calls("chat.postMessage"))
    paused = status_of(fresh_engine, settings, limited)
    early = flush_outbox(fresh_engine, settings, now=now + timedelta(seconds=11))
    on_time = flush_outbox(fresh_engine, settings, now=now + timedelta(seconds=12))
    # One call each: nobody slept through Retry-After inside the flush.
    assert posts_first == 2
    assert len(fake_slack.posted_by(OTHER_TOKEN)) == 1 and first.sent == 1
    assert paused["paused_until"] is not None and "wait 12 s" in paused["error"]
    assert early.sent == 0
    assert on_time.sent == 0 and on_time.retrying == 1  # the 2nd 429: 12 s more
    keep_flushing(fresh_engine, settings, now + timedelta(seconds=25))
    assert len(fake_slack.posted_by(GOOD_TOKEN)) == 2


def test_a_workspace_whose_slack_answers_slowly_does_not_hold_up_another(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    slow = connected(fresh_engine, settings, token=GOOD_TOKEN)
    fast = connected(fresh_engine, settings, channel="general", token=OTHER_TOKEN)
    make_insight(fresh_engine, slow)
    make_insight(fresh_engine, fast)
    fake_slack.script("chat.postMessage", Answer(delay=2.5, store=True), token=GOOD_TOKEN)
    flush_outbox(fresh_engine, settings, now=datetime.now(UTC))
    events = fake_slack.events
    fast_posted = events.index(("received", "chat.postMessage", OTHER_TOKEN))
    slow_answered = events.index(("answered", "chat.postMessage", GOOD_TOKEN))
    assert fast_posted < slow_answered


def test_a_revoked_token_holds_alerts_with_the_reason_and_reconnecting_sends_them_once(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    insight = make_insight(fresh_engine, src)
    fake_slack.revoked.add(GOOD_TOKEN)
    now = datetime.now(UTC)
    first = flush_outbox(fresh_engine, settings, now=now)
    again = flush_outbox(fresh_engine, settings, now=now + timedelta(seconds=30))
    held = status_of(fresh_engine, settings, src)
    fake_slack.revoked.clear()
    with session_scope(fresh_engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="alerts",
            settings=settings,
        )
    after = flush_outbox(fresh_engine, settings, now=now + timedelta(minutes=1))
    assert (first.sent, again.sent) == (0, 0)
    # the chart's upload, the alert's first step, was refused; then all went once
    assert len(fake_slack.calls("files.getUploadURLExternal")) == 2
    assert len(fake_slack.calls("chat.postMessage")) == 1
    assert "reconnect Slack" in held["error"] and held["waiting_notifications"] == 1
    assert after.sent == 1
    assert len(fake_slack.top_level()) == 1
    assert statuses(fresh_engine, insight) == [("alert", "sent")]
    assert status_of(fresh_engine, settings, src)["error"] is None


def test_alerts_given_up_are_sent_once_slack_is_reconnected(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    insight = make_insight(fresh_engine, src)
    refused = Answer(400, {"ok": False, "error": "invalid_blocks"})
    fake_slack.script("chat.postMessage", refused, refused)  # with its image, and without
    now = datetime.now(UTC)
    flush_outbox(fresh_engine, settings, now=now)
    given_up = status_of(fresh_engine, settings, src)
    with session_scope(fresh_engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="#alerts",
            settings=settings,
        )
    flush_outbox(fresh_engine, settings, now=now + timedelta(minutes=1))
    assert given_up["failed_notifications"] == 1
    assert "layout" in given_up["last_failure"]
    assert len(fake_slack.top_level()) == 1
    assert statuses(fresh_engine, insight) == [("alert", "sent")]


def test_without_slack_an_alert_waits_and_goes_out_once_slack_is_connected(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = make_source(fresh_engine)
    insight = make_insight(fresh_engine, src)
    now = datetime.now(UTC)
    before = flush_outbox(fresh_engine, settings, now=now)
    waiting = status_of(fresh_engine, settings, src)
    with session_scope(fresh_engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="alerts",
            settings=settings,
        )
    after = flush_outbox(fresh_engine, settings, now=now + timedelta(minutes=1))
    assert before.sent == 0 and "not connected" in waiting["last_failure"]
    assert after.sent == 1
    assert statuses(fresh_engine, insight) == [("alert", "sent")]


def test_without_slack_for_a_week_an_alert_is_dropped_not_kept_forever(
    fresh_engine: Engine, settings: Settings
) -> None:
    src = make_source(fresh_engine)
    insight = make_insight(fresh_engine, src)
    result = flush_outbox(fresh_engine, settings, now=datetime.now(UTC) + timedelta(days=8))
    assert result.skipped == 1
    assert statuses(fresh_engine, insight) == [("alert", "skipped")]


def test_the_bot_token_form_stores_the_channel_id_so_reconcile_finds_the_message(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    from lantern.api.app import create_app

    settings = slack_settings(settings, fake_slack)
    src = make_source(fresh_engine)
    auth = {"Authorization": f"Bearer {src.token}"}
    with TestClient(create_app(settings, fresh_engine)) as client:
        put = client.put(
            "/api/v1/slack/token",
            headers=auth,
            json={"bot_token": GOOD_TOKEN, "channel": "#alerts"},
        )
        make_insight(fresh_engine, src)
        fake_slack.script("chat.postMessage", Answer(500, {"ok": False}, store=True))
        now = datetime.now(UTC)
        flush_outbox(fresh_engine, settings, now=now)
        during = client.get("/api/v1/slack", headers=auth).json()
        later = flush_outbox(fresh_engine, settings, now=now + timedelta(minutes=5))
        after = client.get("/api/v1/slack", headers=auth).json()
    assert put.status_code == 200
    assert (put.json()["channel"], put.json()["channel_name"]) == ("C0ALERTS", "alerts")
    assert during["waiting_notifications"] == 1 and "500" in during["error"]
    assert later.reconciled == 1 and len(fake_slack.top_level()) == 1
    assert (after["error"], after["waiting_notifications"], after["failed_notifications"]) == (
        None,
        0,
        0,
    )


def test_a_channel_stored_by_name_by_an_older_version_is_resolved_to_its_id(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    make_insight(fresh_engine, src)
    with session_scope(fresh_engine) as session:
        row = session.get(SlackConnection, src.workspace_id)
        assert row is not None
        row.channel, row.channel_name = "alerts", None
    fake_slack.script("chat.postMessage", Answer(500, {"ok": False}, store=True))
    now = datetime.now(UTC)
    flush_outbox(fresh_engine, settings, now=now)
    later = flush_outbox(fresh_engine, settings, now=now + timedelta(minutes=5))
    assert later.reconciled == 1 and len(fake_slack.top_level()) == 1
    with session_scope(fresh_engine) as session:
        row = session.get(SlackConnection, src.workspace_id)
        assert row is not None
        assert (row.channel, row.channel_name) == ("C0ALERTS", "alerts")


def test_an_alert_left_unconfirmed_by_an_older_version_is_reconciled_after_saving_the_channel(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    insight = make_insight(fresh_engine, src)
    fake_slack.script("chat.postMessage", Answer(500, {"ok": False}, store=True))
    now = datetime.now(UTC)
    flush_outbox(fresh_engine, settings, now=now)
    with session_scope(fresh_engine) as session:
        row = session.scalars(select(Notification).where(Notification.insight_id == insight)).one()
        row.channel = "alerts"  # older versions recorded the name they were given
    with session_scope(fresh_engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="C0ALERTS",
            settings=settings,
        )
    later = flush_outbox(fresh_engine, settings, now=now + timedelta(minutes=1))
    assert later.reconciled == 1
    assert len(fake_slack.top_level()) == 1
    assert status_of(fresh_engine, settings, src)["error"] is None


def test_a_channel_deleted_after_connecting_holds_alerts_and_says_so(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(settings, fake_slack)
    src = connected(fresh_engine, settings)
    make_insight(fresh_engine, src)
    del fake_slack.channels["alerts"]
    flush_outbox(fresh_engine, settings, now=datetime.now(UTC))
    status = status_of(fresh_engine, settings, src)
    assert status["waiting_notifications"] == 1
    assert "channel was not found" in status["error"]
