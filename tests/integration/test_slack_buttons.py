"""The buttons of an alert: clicked in Slack, checked, applied as in the dashboard, shown done.

Slack is the local Slack-compatible server (tests/fakeslack.py): it holds the posted
alert, builds the signed request Slack sends when a button is pressed, and takes the
chat.update that rewrites the alert.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from lantern.api.app import create_app
from lantern.config import Settings
from lantern.dashboard.status import set_owner
from lantern.db import session_scope
from lantern.insights.models import Insight, MetricWatch
from lantern.notify.connection import connect_with_token, finish_oauth, start_oauth
from lantern.notify.models import SlackAction
from lantern.notify.outbox import flush_outbox
from tests.factories import MadeSource, make_insight, make_source
from tests.fakeslack import (
    CLIENT_ID,
    CLIENT_SECRET,
    GOOD_CODE,
    OTHER_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    sign,
)

OTHER_SECRET = "0123456789abcdef0123456789abcdef"  # another team's own app


@pytest.fixture
def slack_settings(settings: Settings, fake_slack: FakeSlack) -> Settings:
    return settings.model_copy(
        update={"slack_base_url": fake_slack.api_url, "public_url": "https://lantern.example"}
    )


@pytest.fixture
def client(engine: Engine, slack_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(slack_settings, engine)) as test_client:
        yield test_client


def pasted(
    engine: Engine, settings: Settings, *, secret: str | None = SIGNING_SECRET, token: str = ""
) -> MadeSource:
    """A workspace connected with a pasted bot token (and its app's signing secret)."""
    src = make_source(engine)
    with session_scope(engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=token or "xoxb-1111-2222-good",
            channel="alerts",
            settings=settings,
            signing_secret=secret,
        )
    return src


def posted_alert(
    engine: Engine, settings: Settings, fake: FakeSlack, src: MadeSource, owner: str | None = None
) -> Any:
    """An insight whose alert is in the channel: (insight id, the message as Slack holds it)."""
    insight = make_insight(engine, src)
    if owner is not None:
        with session_scope(engine) as session:
            found = session.get(Insight, insight)
            assert found is not None
            set_owner(
                session,
                workspace_id=src.workspace_id,
                metric_id=found.metric_id,
                owner=owner,
                note="Check the <payment> provider first",
                now=datetime.now(UTC),
            )
    flush_outbox(engine, settings, now=datetime.now(UTC))
    [alert] = [m for m in fake.top_level() if m["metadata"] and "insight" not in m]
    alert["insight"] = insight
    return insight, alert


def state(engine: Engine, insight_id: int) -> tuple[bool | None, bool, datetime | None, int]:
    """What the dashboard shows: useful, muted, snoozed until, and clicks kept."""
    with session_scope(engine) as session:
        insight = session.get(Insight, insight_id)
        assert insight is not None
        watch = session.get(MetricWatch, insight.metric_id)
        clicks = session.scalars(
            select(SlackAction.id).where(SlackAction.insight_id == insight_id)
        ).all()
        return (
            insight.useful,
            bool(watch and watch.muted),
            watch.snoozed_until if watch else None,
            len(clicks),
        )


def said(fake: FakeSlack, ts: str) -> str:
    """Everything the alert says now, blocks included."""
    message = fake.message(ts)
    return str(message["text"]) + str(message["blocks"])


def test_each_button_does_what_the_dashboard_does_and_the_alert_says_who_did_it(
    engine: Engine, slack_settings: Settings, fake_slack: FakeSlack, client: TestClient
) -> None:
    src = pasted(engine, slack_settings)
    insight, alert = posted_alert(engine, slack_settings, fake_slack, src, owner="S0GROWTH")
    assert "*Owner* <!subteam^S0GROWTH>" in str(alert["blocks"])
    assert "Check the &lt;payment&gt; provider first" in str(alert["blocks"])
    buttons = [
        e["text"]["text"] for b in alert["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert buttons == [
        "Useful",
        "Not useful",
        "Mute metric",
        "Snooze 1 day",
        "Snooze 1 week",
        "Open in Lantern",
    ]
    link = alert["blocks"][-2]["elements"][-1]["url"]
    assert link == f"https://lantern.example/insights/{insight}"

    def press(button: str, **who: Any) -> int:
        body, headers = fake_slack.click(fake_slack.message(alert["ts"]), button, **who)
        return client.post("/slack/interactivity", content=body, headers=headers).status_code

    assert press("Open in Lantern") == 200  # a link: Slack tells the app, nothing to do
    assert state(engine, insight) == (None, False, None, 0)
    assert not fake_slack.calls("chat.update")

    assert press("Useful") == 200
    assert state(engine, insight)[0] is True
    assert "Marked useful by <@U0ANA>" in said(fake_slack, alert["ts"])
    assert press("Not useful", user="U0BEN", username="ben") == 200
    assert state(engine, insight)[0] is False
    assert "Marked not useful by <@U0BEN>" in said(fake_slack, alert["ts"])

    before = datetime.now(UTC)
    assert press("Snooze 1 day") == 200
    snoozed = state(engine, insight)[2]
    assert snoozed is not None
    assert before + timedelta(days=1) <= snoozed <= datetime.now(UTC) + timedelta(days=1)
    assert "Snoozed for 1 day by <@U0ANA> until <!date^" in said(fake_slack, alert["ts"])
    assert press("Snooze 1 week") == 200
    snoozed = state(engine, insight)[2]
    assert snoozed is not None and snoozed - before > timedelta(days=6)

    assert press("Mute metric") == 200
    useful, muted, _, clicks = state(engine, insight)
    assert (useful, muted, clicks) == (False, True, 5)
    now = said(fake_slack, alert["ts"])
    assert "Muted by <@U0ANA>" in now and fake_slack.message(alert["ts"])["edited"]
    # the dashboard's own view of the same insight says the same
    shown = client.get(
        f"/api/v1/insights/{insight}", headers={"Authorization": f"Bearer {src.token}"}
    )
    assert shown.status_code == 200
    assert (shown.json()["useful"], shown.json()["metric"]["muted"]) == (False, True)
    # the rewritten alert is still the alert: its text, its buttons, its id for reconciling
    message = fake_slack.message(alert["ts"])
    assert "Signed Up" in message["text"] and "Mute metric" in str(message["blocks"])
    assert len(fake_slack.images(alert["ts"])) == 1  # its chart still in it
    assert message["metadata"] == alert_metadata(fake_slack, alert)


def alert_metadata(fake: FakeSlack, alert: dict[str, Any]) -> Any:
    [posted] = [c for c in fake.calls("chat.postMessage") if c.params.get("thread_ts") is None]
    return posted.params["metadata"]


def test_a_request_without_slacks_valid_signature_gets_401_and_changes_nothing(
    engine: Engine, slack_settings: Settings, fake_slack: FakeSlack, client: TestClient
) -> None:
    src = pasted(engine, slack_settings)
    insight, alert = posted_alert(engine, slack_settings, fake_slack, src)
    body, good = fake_slack.click(alert, "Mute metric")
    stale, _ = fake_slack.click(alert, "Mute metric", at=time.time() - 6 * 60)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    attempts = [
        (body, form),  # unsigned
        (body, {**good, "X-Slack-Signature": "v0=" + "0" * 64}),
        fake_slack.click(alert, "Mute metric", secret=OTHER_SECRET),  # another app's secret
        (stale, sign(stale, SIGNING_SECRET, int(time.time()) - 6 * 60)),  # replayed later
        (body + b"&x=1", good),  # the body changed after signing
        (body, {**good, "X-Slack-Request-Timestamp": "soon"}),
        (body, {**good, "X-Slack-Signature": "v0=\xe9".encode("latin-1")}),
        (b"\xff\xfe", sign(b"\xff\xfe", "wrong-secret-123456", int(time.time()))),
    ]
    for content, headers in attempts:
        answer = client.post("/slack/interactivity", content=content, headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "bad_signature"
    assert state(engine, insight) == (None, False, None, 0)
    assert not fake_slack.calls("chat.update")


def test_a_click_from_another_team_or_app_changes_nothing(
    engine: Engine, slack_settings: Settings, fake_slack: FakeSlack, client: TestClient
) -> None:
    src = pasted(engine, slack_settings)
    insight, alert = posted_alert(engine, slack_settings, fake_slack, src)
    pasted(engine, slack_settings, secret=OTHER_SECRET, token=OTHER_TOKEN)  # another workspace
    refused = [
        fake_slack.click(alert, "Mute metric", team="T0OTHER"),  # a shared channel's guest
        fake_slack.click(alert, "Mute metric", secret=OTHER_SECRET),  # signed by its app
    ]
    for body, headers in refused:
        answer = client.post("/slack/interactivity", content=body, headers=headers)
        assert answer.status_code == 403, answer.text
        assert "nothing was changed" in answer.json()["detail"]
    # a button of one insight pasted into another message
    body, headers = fake_slack.click({**alert, "ts": "1.000001"}, "Useful")
    assert client.post("/slack/interactivity", content=body, headers=headers).status_code == 403
    # signed, but not what Slack sends: refused with the reason, never a 5xx
    for content in [b"payload=not-json", b"nothing=here", b'payload={"type":"block_actions"}']:
        headers = sign(content, SIGNING_SECRET, int(time.time()))
        answer = client.post("/slack/interactivity", content=content, headers=headers)
        assert answer.status_code == 400 and answer.json()["detail"], answer.text
    assert state(engine, insight) == (None, False, None, 0)
    assert not fake_slack.calls("chat.update")


def test_a_click_claiming_the_summary_of_the_quiet_hours_changes_nothing(
    engine: Engine, slack_settings: Settings, fake_slack: FakeSlack, client: TestClient
) -> None:
    src = pasted(engine, slack_settings)
    other = posted_alert(engine, slack_settings, fake_slack, src)[1]
    body = {"delivery": {"quiet_start": 22, "quiet_end": 7, "quiet_hours_delivery": "summary"}}
    auth = {"Authorization": f"Bearer {src.token}"}
    assert client.put("/api/v1/settings", json=body, headers=auth).status_code == 200
    insight = make_insight(engine, src, name="Checkout")
    night = (datetime.now(UTC) + timedelta(days=1)).replace(hour=23, minute=5)
    flush_outbox(engine, slack_settings, now=night)
    flush_outbox(engine, slack_settings, now=night + timedelta(hours=8))
    [summary] = [m for m in fake_slack.top_level() if "quiet" in m["text"]]
    assert "Checkout" in str(summary["blocks"])
    # its alert's row holds the summary's ts, but the summary has no buttons to press: a
    # button for that insight, claimed to be on the summary, is refused
    buttons = json.dumps(other["blocks"]).replace(
        f'"value": "{other["insight"]}"', f'"value": "{insight}"'
    )
    assert str(insight) in buttons
    forged, headers = fake_slack.click(
        {**other, "ts": summary["ts"], "blocks": json.loads(buttons)}, "Mute metric"
    )
    answer = client.post("/slack/interactivity", content=forged, headers=headers)
    assert answer.status_code == 403 and "nothing was changed" in answer.json()["detail"]
    assert state(engine, insight) == (None, False, None, 0)
    assert not fake_slack.calls("chat.update")


def test_an_add_to_slack_install_takes_clicks_signed_with_lanterns_app_secret(
    engine: Engine, slack_settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = slack_settings.model_copy(
        update={
            "slack_client_id": CLIENT_ID,
            "slack_client_secret": CLIENT_SECRET,
            "slack_signing_secret": SIGNING_SECRET,
        }
    )
    src = make_source(engine)
    with session_scope(engine) as session:
        url = start_oauth(
            session,
            workspace_id=src.workspace_id,
            settings=settings,
            redirect_uri="https://lantern.example/slack/oauth/callback",
            browser_session="browser",
        )
        finish_oauth(
            session,
            state=parse_qs(urlparse(url).query)["state"][0],
            code=GOOD_CODE,
            settings=settings,
            redirect_uri="https://lantern.example/slack/oauth/callback",
            browser_session="browser",
        )
    insight, alert = posted_alert(engine, settings, fake_slack, src)
    with TestClient(create_app(settings, engine)) as client:
        body, headers = fake_slack.click(alert, "Snooze 1 week")
        assert client.post("/slack/interactivity", content=body, headers=headers).status_code == 200
        status = client.get("/api/v1/slack", headers={"Authorization": f"Bearer {src.token}"})
    assert state(engine, insight)[2] is not None
    assert "Snoozed for 1 week by <@U0ANA>" in said(fake_slack, alert["ts"])
    assert status.json()["buttons"] is True
    assert status.json()["interactivity_url"] == "https://lantern.example/slack/interactivity"


def test_without_a_public_url_the_server_warns_at_start_up_and_settings_say_so(
    engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    src = make_source(engine)
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings, engine)) as client:
        status = client.get("/api/v1/slack", headers={"Authorization": f"Bearer {src.token}"})
    assert "LANTERN_PUBLIC_URL is not set" in caplog.text
    assert "LANTERN_PUBLIC_URL is not set" in status.json()["public_url_warning"]
    assert status.json()["buttons"] is False
