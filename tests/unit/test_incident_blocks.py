"""A source-wide incident in Slack: one alert that says so and lists its metrics, one end."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from lantern.insights.incidents import Incident, SourcePart, is_incident
from lantern.notify.blocks import alert_blocks, incident_blocks, resolution_blocks
from lantern.notify.types import InsightMessage

SINCE = datetime(2026, 3, 2, 10, tzinfo=UTC)
NAMES = tuple(f"Event {i}" for i in range(14))
INCIDENT = Incident(
    source_name="web",
    metrics=14,
    of=16,
    since=SINCE,
    names=NAMES,
    ended_at=None,
    accepted=0,
    parts=(SourcePart(source_id=1, source_name="web", metrics=14, of=16, names=NAMES),),
    workspace_name="demo",
    workspace_sources=3,
)
MESSAGE = InsightMessage(
    insight_id=7,
    metric_name="Checkout",
    metric_kind="track event",
    source_name="web",
    kind="outage",
    direction="down",
    relative_change=-1.0,
    observed=0.0,
    expected=100.0,
    lower=80.0,
    upper=120.0,
    start=SINCE,
    detected_at=SINCE + timedelta(hours=1),
    status="open",
    severity="high",
    score=9.0,
    causes=(),
    dashboard_url="http://127.0.0.1:8000/insights/7",
    related=tuple(f"Event {i} (track event) went silent" for i in range(13)),
    incident=INCIDENT,
)


def test_most_metrics_of_a_source_and_at_least_three_are_an_incident() -> None:
    assert is_incident(14, 16) and is_incident(3, 6) and is_incident(3, 3)
    assert not is_incident(2, 2)  # too few to tell from a pair that moved together
    assert not is_incident(2, 20) and not is_incident(9, 20)


def test_the_incidents_alert_names_the_source_and_lists_a_bounded_number_of_metrics() -> None:
    text, blocks = alert_blocks(MESSAGE)
    assert text == (
        ":red_circle: web: 14 of 16 metrics went down or quiet together since 10:00 UTC — "
        "a broken pipeline, an expired key or a holiday?"
    )
    assert blocks[0]["text"]["text"] == "web: 14 of 16 metrics went down or quiet together"
    assert "*Largest:* *Checkout* (track event) went silent" in blocks[1]["text"]["text"]
    [listed] = [b for b in blocks if b.get("block_id") == "lantern_incident"]
    lines = listed["text"]["text"].splitlines()
    assert lines[0] == "*The metrics*"
    assert lines[1] == "• Checkout (track event) went silent"
    assert len([line for line in lines if line.startswith("• ")]) == 10
    assert lines[-1] == "and 4 more"
    assert "Moved with it" not in str(blocks)


def test_a_metric_that_is_no_incident_keeps_its_own_alert() -> None:
    text, blocks = alert_blocks(replace(MESSAGE, incident=None))
    assert "together" not in text and blocks[0]["text"]["text"] == "Checkout went silent"
    assert "Moved with it" in str(blocks)


def test_the_incidents_end_tells_all_its_metrics_once() -> None:
    over = replace(INCIDENT, ended_at=SINCE + timedelta(hours=6))
    text, _ = resolution_blocks(replace(MESSAGE, status="resolved", incident=over))
    assert text == (
        "web: the 14 metrics that went down or quiet together are back to normal after 6 h."
    )
    settled = replace(over, accepted=2)
    text, _ = resolution_blocks(replace(MESSAGE, status="resolved", incident=settled))
    assert text == (
        "web: the 14 metrics that went down or quiet together are over after 6 h: 12 back to "
        "normal, 2 settled at a new level that Lantern now treats as normal."
    )


def workspace_incident(*, sending: int) -> InsightMessage:
    """MESSAGE as the leader of web's, ios's and android's incident, of a workspace that had
    `sending` sources sending when it began."""
    parts = (
        SourcePart(source_id=1, source_name="web", metrics=14, of=16, names=NAMES),
        SourcePart(source_id=2, source_name="ios", metrics=12, of=12, names=NAMES[:12]),
        SourcePart(source_id=3, source_name="<!channel>", metrics=4, of=6, names=NAMES[:4]),
    )
    incident = replace(
        INCIDENT,
        metrics=30,
        of=34,
        parts=parts,
        workspace_name="demo",
        workspace_sources=sending,
    )
    lines = {
        part.source_name: tuple(f"{part.source_name} {i} (track event) went silent" for i in n)
        for part, n in zip(parts, (range(13), range(12), range(4)), strict=True)
    }
    return replace(
        MESSAGE,
        incident=incident,
        related=tuple(line for group in lines.values() for line in group),
        related_by_source=tuple(lines.items()),
    )


def test_a_workspace_incidents_alert_names_its_sources_and_lists_each_ones_metrics() -> None:
    text, blocks = alert_blocks(workspace_incident(sending=3))
    assert text == (
        ":red_circle: All 3 sources of workspace demo: 30 of 34 metrics went down or quiet "
        "together since 10:00 UTC — a broken pipeline, an expired key or a holiday?"
    )
    assert blocks[0]["text"]["text"] == (
        "All 3 sources of workspace demo: 30 of 34 metrics went down or quiet together"
    )
    listed = [b for b in blocks if str(b.get("block_id", "")).startswith("lantern_incident")]
    assert [b["block_id"] for b in listed] == [
        "lantern_incident",
        "lantern_incident_2",
        "lantern_incident_3",
    ]
    web, ios, other = (b["text"]["text"].splitlines() for b in listed)
    assert web[:3] == ["*The metrics*", "*web*: 14 of 16", "• Checkout (track event) went silent"]
    assert len([line for line in web if line.startswith("• ")]) == 10
    assert web[-1] == "and 4 more"  # the leader and web's 13 others, ten of them listed
    assert ios[0] == "*ios*: 12 of 12" and ios[-1] == "and 2 more"
    # a source's name is told as written, never as a mention
    assert other[0] == "*&lt;!channel&gt;*: 4 of 6" and len(other) == 5


def test_a_workspace_incident_of_some_of_its_sources_names_them() -> None:
    text, _ = alert_blocks(workspace_incident(sending=4))
    assert text.startswith(":red_circle: web, ios, &lt;!channel&gt;: 30 of 34 metrics went")


def test_a_workspace_incidents_end_is_one_reply_for_all_its_sources() -> None:
    message = workspace_incident(sending=3)
    assert message.incident is not None
    over = replace(message.incident, ended_at=SINCE + timedelta(hours=26))
    text, _ = resolution_blocks(replace(message, status="resolved", incident=over))
    assert text == (
        "All 3 sources of workspace demo: the 30 metrics that went down or quiet together are "
        "back to normal after 26 h."
    )


def test_a_story_told_smaller_is_told_once_in_its_thread_that_it_is_now_an_incident() -> None:
    text, blocks = incident_blocks(workspace_incident(sending=3))
    assert text == (
        "Now a workspace-wide incident: All 3 sources of workspace demo: 30 of 34 metrics "
        "went down or quiet together since 10:00 UTC — a broken pipeline, an expired key or "
        "a holiday?"
    )
    assert blocks[0]["text"]["text"].startswith(
        ":red_circle: *Now a workspace-wide incident:* *All 3 sources of workspace demo*: "
        "30 of 34 metrics went down or quiet together since <!date^"
    )
    # then its metrics as the incident's alert lists them, source by source
    assert [b.get("block_id") for b in blocks[1:]] == [
        "lantern_incident",
        "lantern_incident_2",
        "lantern_incident_3",
    ]
    assert blocks[1:] == [
        b
        for b in alert_blocks(workspace_incident(sending=3))[1]
        if b.get("block_id", "").startswith("lantern_incident")
    ]
    source_text, _ = incident_blocks(MESSAGE)
    assert source_text.startswith("Now a source-wide incident: web: 14 of 16 metrics went down")
