"""Block Kit messages for insights: pure functions from facts to (fallback text, blocks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lantern.detect.kinds import PERSISTENT, DetectionKind, phrase
from lantern.notify.types import InsightMessage

ICONS = {"high": ":red_circle:", "medium": ":large_orange_circle:", "low": ":large_yellow_circle:"}

Blocks = list[dict[str, Any]]


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def _when(moment: datetime) -> str:
    return moment.strftime("%a %d %b %H:%M UTC")


def _change(message: InsightMessage) -> str:
    if message.kind == DetectionKind.OUTAGE:
        return DetectionKind.OUTAGE.phrase
    word = "up" if message.direction == "up" else "down"
    verb = phrase(message.kind)
    if message.kind in PERSISTENT:
        return f"{verb}, {word} {abs(message.relative_change):.0%}"
    if message.kind in (DetectionKind.SPIKE, DetectionKind.DROP):
        return f"{verb} {abs(message.relative_change):.0%}"
    return f"{verb} ({word} {abs(message.relative_change):.0%})"


def headline(message: InsightMessage) -> str:
    """One line: what moved and how."""
    return (
        f"{message.metric_name} ({message.metric_kind}, {message.source_name}) {_change(message)}"
    )


def _facts(message: InsightMessage) -> str:
    unit = "" if message.metric_kind == "value" else " events/h"
    return (
        f"*Observed* {_number(message.observed)}{unit} vs *expected* "
        f"{_number(message.expected)}{unit} "
        f"(normal range {_number(message.lower)} to {_number(message.upper)})\n"
        f"*Since* {_when(message.start)}"
    )


def _causes(message: InsightMessage) -> Blocks:
    if not message.causes:
        return []
    lines = [
        f"• flag `{c.flag_key}` changed from version {c.old_version} to {c.new_version} "
        f"at {_when(c.changed_at)}"
        for c in message.causes
    ]
    text = "*Possible causes*\n" + "\n".join(lines)
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def _related(message: InsightMessage) -> Blocks:
    if not message.related:
        return []
    text = "*Moved with it*\n" + "\n".join(f"• {line}" for line in message.related)
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def _link(message: InsightMessage) -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Open in Lantern"},
                "url": message.dashboard_url,
                "action_id": "open_insight",
            }
        ],
    }


def alert_blocks(message: InsightMessage) -> tuple[str, Blocks]:
    """The first message of an episode."""
    icon = ICONS.get(message.severity, "")
    text = f"{icon} {headline(message)}".strip()
    blocks: Blocks = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": f"{message.metric_name} {_change(message)}"[:150],
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{icon} *{message.metric_name}* ({message.metric_kind}, source "
                f"*{message.source_name}*) {_change(message)}.\n{_facts(message)}",
            },
        },
        *_causes(message),
        *_related(message),
        _link(message),
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Detected {_when(message.detected_at)} · "
                    f"severity {message.severity} · {message.kind.replace('_', ' ')}",
                }
            ],
        },
    ]
    return text, blocks


def update_blocks(message: InsightMessage) -> tuple[str, Blocks]:
    """A thread reply: the episode got louder."""
    text = f"Still going and larger: {headline(message)}"
    return text, [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f":arrow_up_small: {text}\n{_facts(message)}"},
        }
    ]


def resolution_blocks(message: InsightMessage) -> tuple[str, Blocks]:
    """The thread reply when the episode is over."""
    end = message.ended_at or message.detected_at
    hours = max(1, round((end - message.start).total_seconds() / 3600))
    if message.status == "accepted":
        text = (
            f"{message.metric_name} has settled at its new level: Lantern now treats it as "
            f"normal (after {hours} h)."
        )
        icon = ":white_check_mark:"
    else:
        text = f"{message.metric_name} is back to normal after {hours} h."
        icon = ":large_green_circle:"
    return text, [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {text}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Ended {_when(end)}"}]},
    ]


def test_blocks() -> tuple[str, Blocks]:
    """The message sent by "Send a test message"."""
    text = "Lantern is connected: insights will be posted in this channel."
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": f":wave: {text}"}}]
