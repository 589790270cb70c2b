"""Slack delivery through slack-sdk against a local Slack-compatible server."""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lantern.notify.base import (
    RateLimited,
    TransientNotifyError,
    UnknownOutcome,
    WorkspaceNotifyError,
)
from lantern.notify.blocks import alert_blocks, headline, resolution_blocks, update_blocks
from lantern.notify.chart import render_chart
from lantern.notify.oauth import authorize_url, exchange_code
from lantern.notify.slack import SlackNotifier
from lantern.notify.types import ChartData, FlagChangeCause, InsightMessage
from tests.fakeslack import CLIENT_ID, CLIENT_SECRET, GOOD_CODE, GOOD_TOKEN, Answer, FakeSlack

START = datetime(2026, 3, 2, 14, tzinfo=UTC)
MESSAGE = InsightMessage(
    insight_id=7,
    metric_name="Signed Up",
    metric_kind="track event",
    source_name="web",
    kind="level_shift",
    direction="down",
    relative_change=-0.42,
    observed=58.0,
    expected=100.0,
    lower=80.0,
    upper=120.0,
    start=START,
    detected_at=START + timedelta(hours=2),
    status="open",
    severity="medium",
    score=7.3,
    causes=(FlagChangeCause("new-checkout", 3, 4, START - timedelta(minutes=30)),),
    dashboard_url="http://127.0.0.1:8000/insights/7",
)


def chart_png() -> bytes:
    index = pd.date_range(START - timedelta(days=7), periods=7 * 24, freq="h", tz="UTC")
    expected = 100 + 20 * np.sin(np.arange(len(index)) / 24 * 2 * np.pi)
    data = ChartData(
        index=index,
        observed=expected * 0.9,
        expected=expected,
        lower=expected * 0.8,
        upper=expected * 1.2,
        anomaly_start=pd.Timestamp(START),
        anomaly_end=pd.Timestamp(START + timedelta(hours=2)),
    )
    return render_chart(data, "Signed Up (track event, web)")


def notifier(fake: FakeSlack, token: str = GOOD_TOKEN, timeout: int = 15) -> SlackNotifier:
    return SlackNotifier(token, base_url=fake.api_url, timeout=timeout)


def test_the_alert_says_what_moved_how_much_against_what_and_since_when() -> None:
    text, blocks = alert_blocks(MESSAGE)
    body = str(blocks)
    assert "Signed Up" in text and "42%" in text
    assert "source *web*" in body
    assert "58.0" in body and "100" in body and "80.0 to 120" in body
    assert "Mon 02 Mar 14:00 UTC" in body
    assert "new-checkout" in body and "version 3 to 4" in body
    assert MESSAGE.dashboard_url in body


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("level_shift", "changed level, down 42%"),
        ("trend_change", "changed trend, down 42%"),
        ("seasonality_change", "changed its daily or weekly rhythm, down 42%"),
        ("spike", "spiked 42%"),
        ("drop", "dropped 42%"),
        ("outage", "went silent"),
        ("tracking_break", "stopped being tracked by one app version, down 42%"),
        ("wobble", "wobble (down 42%)"),
    ],
)
def test_each_kind_of_alert_says_in_words_what_the_metric_did(kind: str, said: str) -> None:
    message = InsightMessage(**{**MESSAGE.__dict__, "kind": kind})
    assert headline(message) == f"Signed Up (track event, web) {said}"


def test_the_resolution_says_how_long_the_episode_lasted() -> None:
    over = InsightMessage(
        **{**MESSAGE.__dict__, "status": "resolved", "ended_at": START + timedelta(hours=5)}
    )
    text, _ = resolution_blocks(over)
    assert text == "Signed Up is back to normal after 5 h."


def test_the_chart_is_a_png_of_readable_size() -> None:
    png = chart_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (800, 320)


def test_an_alert_is_one_message_and_its_chart_is_shared_into_its_thread(
    fake_slack: FakeSlack,
) -> None:
    slack = notifier(fake_slack)
    sent = slack.post_alert(MESSAGE, channel="C0ALERTS", notification_id=11)
    chart = slack.upload_chart(
        chart_png(), channel=sent.channel, thread_ts=sent.ts, notification_id=12, title="t"
    )
    assert [m["ts"] for m in fake_slack.top_level()] == [sent.ts]
    assert sent.channel == "C0ALERTS"
    assert fake_slack.top_level()[0]["metadata"]["event_payload"] == {"notification_id": 11}
    assert len(fake_slack.uploads) == 1
    assert next(iter(fake_slack.uploads.values()))[:4] == b"\x89PNG"
    [shared] = fake_slack.charts(sent.ts)
    assert (shared["id"], shared["name"]) == (chart.ts, "lantern-chart-12.png")


def test_a_reply_goes_into_the_alerts_thread(fake_slack: FakeSlack) -> None:
    slack = notifier(fake_slack)
    sent = slack.post_alert(MESSAGE, channel="C0ALERTS", notification_id=1)
    reply = slack.post_reply(MESSAGE, channel=sent.channel, thread_ts=sent.ts, notification_id=2)
    assert [m["ts"] for m in fake_slack.replies(sent.ts)] == [reply.ts]


def test_a_rate_limit_is_reported_with_its_retry_after_and_never_slept_through(
    fake_slack: FakeSlack,
) -> None:
    fake_slack.script(
        "chat.postMessage",
        Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "12"}),
    )
    with pytest.raises(RateLimited, match="wait 12 s") as raised:
        notifier(fake_slack).send_test("C0ALERTS")
    assert raised.value.retry_after == 12
    assert len(fake_slack.calls("chat.postMessage")) == 1
    assert fake_slack.top_level() == []


def test_a_server_error_on_a_post_is_an_unknown_outcome_and_is_not_retried_blindly(
    fake_slack: FakeSlack,
) -> None:
    fake_slack.script("chat.postMessage", Answer(500, {"ok": False}, store=True))
    with pytest.raises(UnknownOutcome, match="500"):
        notifier(fake_slack).post_alert(MESSAGE, channel="C0ALERTS", notification_id=3)
    assert len(fake_slack.calls("chat.postMessage")) == 1
    assert len(fake_slack.top_level()) == 1


def test_a_server_error_on_a_read_is_only_transient(fake_slack: FakeSlack) -> None:
    fake_slack.script("conversations.history", Answer(503, {"ok": False}))
    since = datetime.now(UTC) - timedelta(minutes=5)
    with pytest.raises(TransientNotifyError) as raised:
        notifier(fake_slack).find_sent(channel="C0ALERTS", notification_id=1, since=since)
    assert not isinstance(raised.value, UnknownOutcome)


@pytest.mark.parametrize(
    ("setup", "words"),
    [("channel", "channel was not found"), ("revoked", "token was revoked")],
)
def test_refusals_that_need_a_person_are_not_retried_and_say_what_to_do(
    fake_slack: FakeSlack, setup: str, words: str
) -> None:
    if setup == "revoked":
        fake_slack.revoked.add(GOOD_TOKEN)
    channel = "nowhere" if setup == "channel" else "alerts"
    with pytest.raises(WorkspaceNotifyError, match=words):
        notifier(fake_slack).send_test(channel)
    assert len(fake_slack.calls("chat.postMessage")) == 1


def test_a_message_and_a_reply_sent_before_a_crash_are_found_again_by_their_ids(
    fake_slack: FakeSlack,
) -> None:
    slack = notifier(fake_slack)
    sent = slack.post_alert(MESSAGE, channel="C0ALERTS", notification_id=41)
    reply = slack.post_reply(MESSAGE, channel="C0ALERTS", thread_ts=sent.ts, notification_id=43)
    since = datetime.now(UTC) - timedelta(minutes=5)
    assert slack.find_sent(channel="C0ALERTS", notification_id=41, since=since) == sent.ts
    assert slack.find_sent(channel="C0ALERTS", notification_id=42, since=since) is None
    # conversations.history holds no thread replies: a reply is found in its thread.
    assert slack.find_sent(channel="C0ALERTS", notification_id=43, since=since) is None
    found = slack.find_sent(channel="C0ALERTS", notification_id=43, since=since, thread_ts=sent.ts)
    assert found == reply.ts


def test_a_channel_name_is_resolved_to_its_id_across_pages_and_an_unknown_one_is_explained(
    fake_slack: FakeSlack,
) -> None:
    slack = notifier(fake_slack)
    assert slack.resolve_channel("#general") == ("C0GENERAL", "general")
    assert slack.resolve_channel("C0ALERTS") == ("C0ALERTS", "alerts")
    with pytest.raises(WorkspaceNotifyError, match="no channel #nowhere"):
        slack.resolve_channel("nowhere")


def test_a_token_that_cannot_read_private_channels_still_finds_a_public_one_by_name(
    fake_slack: FakeSlack,
) -> None:
    fake_slack.without_groups_read.add(GOOD_TOKEN)
    assert notifier(fake_slack).resolve_channel("alerts") == ("C0ALERTS", "alerts")


def test_add_to_slack_exchanges_the_code_with_basic_auth_and_learns_the_bot(
    fake_slack: FakeSlack,
) -> None:
    url = authorize_url(CLIENT_ID, "http://127.0.0.1:8000/slack/oauth/callback", "state-123")
    assert "state=state-123" in url and f"client_id={CLIENT_ID}" in url
    assert "chat:write" in url and "files:write" in url
    installation = exchange_code(
        CLIENT_ID,
        CLIENT_SECRET,
        GOOD_CODE,
        "http://127.0.0.1:8000/slack/oauth/callback",
        fake_slack.api_url,
    )
    sent_auth = fake_slack.calls("oauth.v2.access")[0].headers["authorization"]
    assert (
        sent_auth == "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    )
    assert (installation.bot_token, installation.bot_id, installation.team_name) == (
        GOOD_TOKEN,
        "B0BOT",
        "Acme",
    )
    assert installation.incoming_webhook_channel_id == "C0ALERTS"


def test_a_slack_that_does_not_answer_in_time_is_an_unknown_outcome_for_a_post(
    fake_slack: FakeSlack,
) -> None:
    fake_slack.script("chat.postMessage", Answer(delay=2.5, store=True))
    with pytest.raises(UnknownOutcome, match="did not answer in time"):
        notifier(fake_slack, timeout=1).send_test("C0ALERTS")
    fake_slack.settle()
    assert len(fake_slack.calls("chat.postMessage")) == 1


HOSTILE = "<!channel> *bold* <https://evil.example|click here> & _it_ ~gone~ `code`"
SNAPSHOTS = Path(__file__).parent / "snapshots"


def hostile_message() -> InsightMessage:
    return InsightMessage(
        **{
            **MESSAGE.__dict__,
            "metric_name": HOSTILE,
            "source_name": "<@U0BOSS> *src*",
            "causes": (FlagChangeCause("`x` <!here>", 1, 2, START),),
            "related": (f"{HOSTILE} (track event) up 20%",),
            "status": "resolved",
            "ended_at": START + timedelta(hours=3),
            # a property's value is the events' own text
            "root_cause": f"plan {HOSTILE}: \u221292% (explains 88% of the drop)",
        }
    )


def mrkdwn_texts(text: str, blocks: list[dict[str, Any]]) -> list[str]:
    """The fallback text and every mrkdwn text object of a message."""
    found = [text]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return found


OWN_DATE = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[A-Za-z0-9: ]+>")


@pytest.mark.parametrize("builder", [alert_blocks, update_blocks, resolution_blocks])
def test_names_people_chose_can_neither_ping_link_nor_format_in_slack(
    builder: Callable[[InsightMessage], tuple[str, list[dict[str, Any]]]],
) -> None:
    texts = mrkdwn_texts(*builder(hostile_message()))
    # Lantern's own dates are the one `<!…>` allowed: a fixed form around a number
    joined = OWN_DATE.sub("", "\n".join(texts))
    assert "<!" not in joined and "<@" not in joined and "<http" not in joined
    assert "&lt;!channel&gt;" in joined
    assert "*bold*" not in joined and "_it_" not in joined and "~gone~" not in joined
    assert "`code`" not in joined
    assert all(t.count("&") == t.count("&amp;") + t.count("&lt;") + t.count("&gt;") for t in texts)


def test_a_tracking_break_says_the_event_stopped_being_tracked_and_why() -> None:
    message = InsightMessage(
        **{
            **MESSAGE.__dict__,
            "kind": "tracking_break",
            "relative_change": -1.0,
            "tracking_break": f"renamed to '{HOSTILE}'? That name started as it stopped",
        }
    )
    assert headline(message) == "Signed Up (track event, web) stopped being tracked"
    text, blocks = alert_blocks(message)
    [line] = [t for t in mrkdwn_texts(text, blocks) if t.startswith("*Tracking break:*")]
    assert line.startswith("*Tracking break:* renamed to '")
    # a name chosen by whoever sends events can neither ping nor format
    assert "<!" not in line and "*bold*" not in line and "&lt;!channel&gt;" in line


def test_a_name_with_underscores_inside_reads_as_written() -> None:
    message = InsightMessage(**{**MESSAGE.__dict__, "metric_name": "order_completed"})
    text, _ = alert_blocks(message)
    assert "order_completed" in text


@pytest.mark.parametrize("builder", [alert_blocks, update_blocks, resolution_blocks])
def test_messages_with_hostile_names_match_their_snapshot(
    builder: Callable[[InsightMessage], tuple[str, list[dict[str, Any]]]],
) -> None:
    text, blocks = builder(hostile_message())
    snapshot = SNAPSHOTS / f"{builder.__name__}_hostile.json"
    built = json.dumps({"text": text, "blocks": blocks}, indent=2, ensure_ascii=False) + "\n"
    assert built == snapshot.read_text(encoding="utf-8")


def test_a_spike_or_outage_detected_in_its_first_hour_is_shaded_an_hour_wide() -> None:
    from lantern.notify.message import anomaly_span

    assert anomaly_span(START, START) == (
        pd.Timestamp(START),
        pd.Timestamp(START + timedelta(hours=1)),
    )
    shaded = anomaly_span(START, START + timedelta(hours=3))
    assert shaded[1] - shaded[0] == pd.Timedelta(hours=4)


def test_the_alert_shows_its_chart_and_its_metrics_owner_and_note() -> None:
    message = InsightMessage(
        **{
            **MESSAGE.__dict__,
            "chart_file": "F0CHART",
            "owner": "S0GROWTH",
            "note": "<check> *ads*",
        }
    )
    _, blocks = alert_blocks(message)
    [image] = [b for b in blocks if b["type"] == "image"]
    assert image["slack_file"] == {"id": "F0CHART"} and "Signed Up" in image["alt_text"]
    body = str(blocks)
    assert "*Owner* <!subteam^S0GROWTH>" in body
    assert "&lt;check&gt; \u2217ads\u2217" in body  # the note is shown, never acted on
    user = InsightMessage(**{**MESSAGE.__dict__, "owner": "U0ANA"})
    assert "*Owner* <@U0ANA>" in str(alert_blocks(user)[1])


def test_without_a_signing_secret_an_alert_carries_only_its_link() -> None:
    def buttons(message: InsightMessage) -> list[str]:
        [actions] = [b for b in alert_blocks(message)[1] if b["type"] == "actions"]
        return [e["text"]["text"] for e in actions["elements"]]

    assert buttons(MESSAGE) == ["Open in Lantern"]
    assert buttons(InsightMessage(**{**MESSAGE.__dict__, "interactive": True}))[:2] == [
        "Useful",
        "Not useful",
    ]


def drop_from_two() -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A day at about 56.6 an hour (band 33 to 80.2) whose drop to 25 began at 02:00."""
    index = pd.date_range("2026-03-02", periods=6, freq="h", tz="UTC")
    observed = np.array([58.0, 55.0, 25.0, 25.0, 25.0, 25.0])
    return index, observed, np.full(6, 56.6), np.full(6, 33.0), np.full(6, 80.2)


def test_the_alert_dates_a_drop_from_the_first_hour_that_moved_and_its_figures_agree() -> None:
    from lantern.notify.message import span_figures

    span = span_figures(
        *drop_from_two(),
        start=datetime(2026, 3, 2, 1, tzinfo=UTC),  # the detector dated it an hour early
        detected_at=datetime(2026, 3, 2, 5, tzinfo=UTC),
        direction="down",
    )
    assert span is not None
    assert (span.start, span.hours) == (datetime(2026, 3, 2, 2, tzinfo=UTC), 4)
    assert (span.observed, span.expected) == (25.0, 56.6)
    # the range is the one of a 4-hour average, and the observation is outside it
    assert span.observed < span.lower < span.expected < span.upper < 80.2
    text = str(alert_blocks(InsightMessage(**{**MESSAGE.__dict__, "span": span}))[1])
    assert "25.0 events/h vs *expected* 56.6 events/h, per hour over the 4 hours since" in text
    assert "normally 44.8 to 68.4 for 4 hours like these" in text


def test_no_possible_cause_listed_comes_after_the_first_hour_that_moved() -> None:
    from lantern.notify.message import possible_causes

    at = lambda h, m: datetime(2026, 3, 2, h, m, tzinfo=UTC)  # noqa: E731
    causes = [("a", 1, 2, at(0, 10)), ("b", 1, 2, at(1, 29)), ("c", 3, 4, at(2, 40))]
    causes.append(("late", 1, 2, at(3, 10)))
    start = datetime(2026, 3, 2, 2, tzinfo=UTC)
    listed = possible_causes(causes, start=start)
    assert [c[0] for c in listed] == ["a", "b", "c"]  # c: inside the 02:00 hour itself
    assert all(c[3] < start + timedelta(hours=1) for c in listed)
