"""Delivery policy: quiet hours (Slack messages due at night wait for the morning, urgent
outages do not; the alerts held go one by one or in one summary) and the daily digest of
low-severity alerts.

The clock is the `now` each flush is given; Slack is the local Slack-compatible server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from lantern.config import Settings
from lantern.db import session_scope
from lantern.insights.models import Insight
from lantern.notify.connection import connect_with_token, connection_status
from lantern.notify.models import Notification
from lantern.notify.outbox import flush_outbox
from lantern.notify.policy import quiet_until
from tests.factories import MadeSource, make_insight, make_source, resolve_insight
from tests.fakeslack import GOOD_TOKEN, Answer, FakeSlack

PARIS = "Europe/Paris"


def test_quiet_hours_end_at_the_local_hour_across_midnight_and_daylight_saving() -> None:
    winter = datetime(2026, 1, 14, 22, 30, tzinfo=UTC)  # 23:30 in Paris
    assert quiet_until(winter, time_zone=PARIS, start=22, end=7) == datetime(
        2026, 1, 15, 6, tzinfo=UTC
    )
    assert quiet_until(winter.replace(hour=5), time_zone=PARIS, start=22, end=7) == datetime(
        2026, 1, 14, 6, tzinfo=UTC
    )
    assert quiet_until(winter.replace(hour=12), time_zone=PARIS, start=22, end=7) is None
    # the night the clocks go forward, 07:00 in Paris is 05:00 UTC
    spring = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert quiet_until(spring, time_zone=PARIS, start=22, end=7) == datetime(
        2026, 3, 29, 5, tzinfo=UTC
    )
    assert quiet_until(winter, time_zone="UTC", start=1, end=5) is None
    assert quiet_until(winter, time_zone="UTC", start=None, end=5) is None


def tomorrow_at(hour: int) -> datetime:
    """Five past `hour` tomorrow (UTC): after everything queued now is due."""
    return (datetime.now(UTC) + timedelta(days=1)).replace(
        hour=hour, minute=5, second=0, microsecond=0
    )


def bearer(src: MadeSource) -> dict[str, str]:
    return {"Authorization": f"Bearer {src.token}"}


def night_workspace(
    engine: Engine, client: TestClient, settings: Settings, **delivery: object
) -> MadeSource:
    src = make_source(engine)
    with session_scope(engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="alerts",
            settings=settings,
        )
    body = {"delivery": {"time_zone": "UTC", "quiet_start": 22, "quiet_end": 7, **delivery}}
    answer = client.put("/api/v1/settings", json=body, headers=bearer(src))
    assert answer.status_code == 200, answer.text
    return src


def test_an_alert_due_at_night_waits_for_the_end_of_the_quiet_hours_saying_so(
    fresh_engine: Engine, fresh_client: TestClient, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    src = night_workspace(fresh_engine, fresh_client, settings)
    make_insight(fresh_engine, src)
    night = tomorrow_at(23)
    first = flush_outbox(fresh_engine, settings, now=night)
    with session_scope(fresh_engine) as session:
        waiting = connection_status(session, workspace_id=src.workspace_id, settings=settings)
    dawn = flush_outbox(fresh_engine, settings, now=night + timedelta(hours=7, minutes=54))
    morning = flush_outbox(fresh_engine, settings, now=night + timedelta(hours=7, minutes=55))
    assert (first.held, first.sent, dawn.sent, morning.sent) == (1, 0, 0, 1)
    assert "quiet hours, until 07:00 UTC" in waiting["error"]
    [alert] = fake_slack.top_level()
    assert "Signed Up" in alert["text"]


def test_an_urgent_outage_goes_at_once_unless_the_workspace_holds_outages_too(
    fresh_engine: Engine, fresh_client: TestClient, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    urgent = night_workspace(fresh_engine, fresh_client, settings)
    patient = night_workspace(fresh_engine, fresh_client, settings, quiet_holds_outages=True)
    for src in (urgent, patient):
        insight = make_insight(fresh_engine, src)
        with session_scope(fresh_engine) as session:
            row = session.get(Insight, insight)
            assert row is not None
            row.kind, row.severity = "outage", "high"
    night = tomorrow_at(2)
    result = flush_outbox(fresh_engine, settings, now=night)
    assert (result.sent, result.held) == (1, 1)
    assert [m["token"] for m in fake_slack.top_level()] == [GOOD_TOKEN]
    assert "went silent" in fake_slack.top_level()[0]["text"]


def test_delivery_settings_are_shown_kept_and_bad_ones_refused_with_the_reason(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    shown = client.get("/api/v1/settings", headers=bearer(src)).json()
    assert shown["delivery"] == {
        "time_zone": "UTC",
        "quiet_start": None,
        "quiet_end": None,
        "quiet_holds_outages": False,
        "quiet_hours_delivery": "each",
        "digest_hour": None,
    }
    night = {
        "time_zone": PARIS,
        "quiet_start": 22,
        "quiet_end": 7,
        "digest_hour": 9,
        "quiet_hours_delivery": "summary",
    }
    kept = client.put("/api/v1/settings", json={"delivery": night}, headers=bearer(src))
    assert kept.json()["delivery"]["time_zone"] == PARIS and kept.json()["sensitivity"] == "medium"
    for bad, reason in [
        ({"time_zone": "Mars/Olympus"}, "IANA time zone"),
        ({"time_zone": "../../etc/passwd"}, "IANA time zone"),
        ({"quiet_start": 22}, "both quiet_start and quiet_end"),
        ({"quiet_start": 7, "quiet_end": 7}, "must differ"),
        ({"quiet_start": 24, "quiet_end": 7}, "quiet_start"),
        ({"digest_hour": -1}, "digest_hour"),
        ({"quiet_hours_delivery": "digest"}, "`each` (one message per insight"),
        ({"quiet_hours_delivery": ["summary"]}, "quiet_hours_delivery"),
        ({"quiet_hours_delivery": None}, "quiet_hours_delivery"),
    ]:
        refused = client.put("/api/v1/settings", json={"delivery": bad}, headers=bearer(src))
        assert refused.status_code == 422 and reason in refused.json()["detail"], refused.text
    again = client.get("/api/v1/settings", headers=bearer(src)).json()
    assert again["delivery"] == {**night, "quiet_holds_outages": False}


def test_low_severity_alerts_wait_for_one_daily_digest_grouped_by_source_sent_once(
    fresh_engine: Engine, fresh_client: TestClient, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = settings.model_copy(
        update={"slack_base_url": fake_slack.api_url, "public_url": "https://lantern.example"}
    )
    src = night_workspace(fresh_engine, fresh_client, settings, quiet_start=None, quiet_end=None)
    body = {"delivery": {"time_zone": "UTC", "digest_hour": 9}}
    assert fresh_client.put("/api/v1/settings", json=body, headers=bearer(src)).status_code == 200
    small = make_insight(fresh_engine, src, name="Invite Sent")
    large = make_insight(fresh_engine, src, name="Signed Up")
    with session_scope(fresh_engine) as session:
        row = session.get(Insight, small)
        assert row is not None
        row.severity = "low"
    morning = tomorrow_at(8)
    early = flush_outbox(fresh_engine, settings, now=morning)
    assert (early.sent, early.held) == (1, 1)  # the large one at once, the small one held
    [alert] = fake_slack.top_level()
    assert "Signed Up" in alert["text"]
    # the digest's post is stored, but Slack's answer is a 500: it is found, never re-sent
    fake_slack.script("chat.postMessage", Answer(500, {"ok": False}, store=True))
    at_nine = flush_outbox(fresh_engine, settings, now=morning + timedelta(hours=1))
    later = [
        flush_outbox(fresh_engine, settings, now=morning + timedelta(hours=1, minutes=m))
        for m in (5, 10)
    ]
    assert at_nine.retrying == 1 and later[0].reconciled == 1 and later[1].sent == 0
    [_, digest] = fake_slack.top_level()
    said = digest["text"] + str(digest["blocks"])
    assert "daily digest" in said and "1 smaller change" in said
    assert "*web*" in said and "Invite Sent" in said and "Signed Up" not in said
    assert f"<https://lantern.example/insights/{small}|Open in Lantern>" in said
    tomorrow = flush_outbox(fresh_engine, settings, now=morning + timedelta(days=1, hours=1))
    assert tomorrow.sent == 0 and len(fake_slack.top_level()) == 2
    assert large != small


def test_with_a_summary_the_alerts_held_at_night_go_as_one_message_whose_thread_they_share(
    fresh_engine: Engine, fresh_client: TestClient, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = settings.model_copy(
        update={"slack_base_url": fake_slack.api_url, "public_url": "https://lantern.example"}
    )
    web = night_workspace(fresh_engine, fresh_client, settings, quiet_hours_delivery="summary")
    app = make_source(fresh_engine, name="app", workspace=web.workspace)
    signups = make_insight(fresh_engine, web)
    checkouts = make_insight(fresh_engine, app, name="Checkout")
    outage = make_insight(fresh_engine, web, name="Page Viewed")
    with session_scope(fresh_engine) as session:
        row = session.get(Insight, outage)
        assert row is not None
        row.kind, row.severity = "outage", "high"
    night = tomorrow_at(23)
    first = flush_outbox(fresh_engine, settings, now=night)
    resolve_insight(fresh_engine, signups)  # over before the morning: its end is held too
    dawn = flush_outbox(fresh_engine, settings, now=night + timedelta(hours=7, minutes=50))
    with session_scope(fresh_engine) as session:
        waiting = session.scalars(
            select(Notification.error).where(
                Notification.insight_id == checkouts, Notification.purpose == "alert"
            )
        ).one()
    # the summary's post is stored, but Slack answers 500: it is found, never posted again
    fake_slack.script("chat.postMessage", Answer(500, {"ok": False}, store=True))
    morning = night + timedelta(hours=8)
    at_seven = flush_outbox(fresh_engine, settings, now=morning)
    later = [
        flush_outbox(fresh_engine, settings, now=morning + timedelta(minutes=m)) for m in (5, 6, 7)
    ]
    assert (first.sent, first.held) == (1, 2)  # the urgent outage at once, with its chart in it
    assert dawn.sent == 0 and "told in one summary at 07:00 UTC" in str(waiting)
    assert at_seven.retrying == 1 and later[0].reconciled == 1
    assert later[1].sent == 1 and later[2].sent == 0  # the end of Signed Up, in its thread
    [urgent, summary] = fake_slack.top_level()
    assert "Page Viewed" in urgent["text"]
    said = summary["text"] + str(summary["blocks"])
    assert "While it was quiet (22:00 to 07:00 UTC): 2 new insight(s)" in said
    assert said.index("*app*") < said.index("Checkout") < said.index("*web*")
    assert said.index("*web*") < said.index("Signed Up")
    for insight in (signups, checkouts):
        assert f"<https://lantern.example/insights/{insight}|Open in Lantern>" in said
    assert "Page Viewed" not in said
    [reply] = fake_slack.replies(summary["ts"])
    assert reply["text"].startswith("Signed Up is back to normal")
    assert len(fake_slack.calls("chat.postMessage")) == 3  # outage, summary (once), reply
    with session_scope(fresh_engine) as session:
        told = session.scalars(
            select(Notification).where(
                Notification.insight_id.in_((signups, checkouts)),
                Notification.purpose == "alert",
            )
        ).all()
        assert {(n.status, n.ts) for n in told} == {("sent", summary["ts"])}


def test_a_summary_waits_for_the_end_of_the_quiet_hours_and_the_next_night_has_its_own(
    fresh_engine: Engine, fresh_client: TestClient, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    src = night_workspace(fresh_engine, fresh_client, settings, quiet_hours_delivery="summary")
    make_insight(fresh_engine, src)
    night = tomorrow_at(23)
    flush_outbox(fresh_engine, settings, now=night)
    still_night = flush_outbox(fresh_engine, settings, now=night + timedelta(hours=7))
    morning = flush_outbox(fresh_engine, settings, now=night + timedelta(hours=8))
    make_insight(fresh_engine, src, name="Checkout")
    next_night = night + timedelta(days=1)
    held = flush_outbox(fresh_engine, settings, now=next_night)
    next_morning = flush_outbox(fresh_engine, settings, now=next_night + timedelta(hours=8))
    assert (still_night.sent, morning.sent, held.held, next_morning.sent) == (0, 1, 1, 1)
    first, second = fake_slack.top_level()
    assert "1 new insight(s)" in first["text"] and "Signed Up" in str(first["blocks"])
    assert "1 new insight(s)" in second["text"] and "Checkout" in str(second["blocks"])
    assert "Signed Up" not in str(second["blocks"])
