"""Block Kit messages for insights: pure functions from facts to (fallback text, blocks).

Every string a user chose (event, page and screen names, source names, flag keys) goes
into mrkdwn through `literal`: Slack's own escapes for `&`, `<` and `>` (so `<!channel>`
or `<https://…|click>` is shown, never acted on) and look-alikes for the characters that
would start bold, italics, strikethrough or code. Header blocks are plain_text, which
Slack shows as written.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from lantern.detect.kinds import PERSISTENT, DetectionKind, phrase
from lantern.insights.incidents import QUESTION, Incident
from lantern.insights.words import SEVERITY_MEANINGS, in_words
from lantern.notify.types import BUTTONS, ActionTaken, InsightMessage

ICONS = {"high": ":red_circle:", "medium": ":large_orange_circle:", "low": ":large_yellow_circle:"}

Blocks = list[dict[str, Any]]

# Characters that open formatting in mrkdwn, and look-alikes Slack does not parse.
FORMATTING = str.maketrans({"*": "\u2217", "~": "\u223c", "`": "\u02cb"})
# An underscore opens or closes italics only at a word's edge: inside a name it stays.
EDGE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def literal(text: str) -> str:
    """A user-supplied string for mrkdwn: shown as itself, never a mention, link or format."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return EDGE_UNDERSCORE.sub("\u02cd", escaped.translate(FORMATTING))


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack does not turn bare URLs or #names in the text into links.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def _when(moment: datetime) -> str:
    """A moment each reader sees in their own time zone; the UTC text where Slack cannot."""
    fallback = moment.strftime("%a %d %b %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


# A tracking break this close to -100% is the event's stop; short of it, one app version's.
STOPPED = -0.95


def stopped(relative_change: float) -> bool:
    """Whether a tracking break's change is the whole event's stop (else one app version's)."""
    return relative_change <= STOPPED


def _tracking_break(relative_change: float) -> str:
    verb = DetectionKind.TRACKING_BREAK.phrase
    if stopped(relative_change):
        return verb
    return f"{verb} by one app version, down {abs(relative_change):.0%}"


def _change(message: InsightMessage) -> str:
    if message.kind == DetectionKind.OUTAGE:
        return DetectionKind.OUTAGE.phrase
    if message.kind == DetectionKind.TRACKING_BREAK:
        return _tracking_break(message.relative_change)
    word = "up" if message.direction == "up" else "down"
    verb = phrase(message.kind)
    if message.kind in PERSISTENT:
        return f"{verb}, {word} {abs(message.relative_change):.0%}"
    if message.kind in (DetectionKind.SPIKE, DetectionKind.DROP):
        return f"{verb} {abs(message.relative_change):.0%}"
    return f"{verb} ({word} {abs(message.relative_change):.0%})"


def headline(message: InsightMessage) -> str:
    """One line of mrkdwn: what moved and how."""
    return (
        f"{literal(message.metric_name)} ({literal(message.metric_kind)}, "
        f"{literal(message.source_name)}) {_change(message)}"
    )


def _facts(message: InsightMessage) -> str:
    # counts are events an hour; a sum or an average of values is in the values' own unit
    unit = " events/h" if message.measure == "count" else ""
    what = " average" if message.measure == "average" else ""
    span = message.span
    if span is not None and span.hours > 1:
        # observed and expected over the same hours, and the range of such an average
        low = max(span.lower, 0.0) if message.measure == "count" else span.lower
        return (
            f"*Observed{what}* {_number(span.observed)}{unit} vs *expected* "
            f"{_number(span.expected)}{unit}, per hour over the {span.hours} hours since "
            f"{_when(span.start)} (normally {_number(low)} to {_number(span.upper)} for "
            f"{span.hours} hours like these)"
        )
    if span is not None:
        low = max(span.lower, 0.0) if message.measure == "count" else span.lower
        return (
            f"*Observed{what}* {_number(span.observed)}{unit} vs *expected* "
            f"{_number(span.expected)}{unit} (normal range {_number(low)} to "
            f"{_number(span.upper)})\n*Since* {_when(span.start)}"
        )
    return (
        f"*Observed{what}* {_number(message.observed)}{unit} vs *expected* "
        f"{_number(message.expected)}{unit} "
        f"(normal range {_number(message.lower)} to {_number(message.upper)})\n"
        f"*Since* {_when(message.start)}"
    )


def _chart(message: InsightMessage) -> Blocks:
    if not message.chart_file:
        return []
    return [
        {
            "type": "image",
            "block_id": "lantern_chart",
            "slack_file": {"id": message.chart_file},
            "alt_text": f"{message.metric_name} over the last 7 days: observed against the "
            "expected range, the anomaly shaded"[:2000],
        }
    ]


def mention(owner: str) -> str:
    """A Slack user (U…, W…) or user group (S…) as a mention; `owner` is validated on input."""
    return f"<!subteam^{owner}>" if owner.startswith("S") else f"<@{owner}>"


def _root_cause(message: InsightMessage) -> Blocks:
    """The breakdown values that explain the change (values are the events' own: literal)."""
    if not message.root_cause:
        return []
    text = f"*Root cause:* {literal(message.root_cause)}"
    return [{"type": "section", "block_id": "lantern_root_cause", "text": _mrkdwn(text)}]


def _owner(message: InsightMessage) -> Blocks:
    lines = []
    if message.owner:
        lines.append(f"*Owner* {mention(message.owner)}")
    if message.note:
        lines.append(f"*Check first:* {literal(message.note)}")
    if not lines:
        return []
    return [{"type": "section", "text": _mrkdwn("\n".join(lines))}]


def _in_words(message: InsightMessage) -> Blocks:
    """How sure Lantern is, the normal range as a range, and what to do next."""
    span = message.span
    words = in_words(
        kind=message.kind,
        direction=message.direction,
        status=message.status,
        severity=message.severity,
        score=message.score,
        observed=span.observed if span is not None else message.observed,
        lower=span.hour_lower if span is not None else message.lower,
        upper=span.hour_upper if span is not None else message.upper,
        measure=message.measure,
        start=span.start if span is not None else message.start,
        detected_at=message.detected_at,
        has_causes=bool(message.causes),
        hours=span.hours if span is not None else None,
    )
    text = f"*How sure:* {words.how_sure}\n{words.normal_range}\n*What to do:* {words.next_step}"
    return [{"type": "section", "text": _mrkdwn(text)}]


def _causes(message: InsightMessage) -> Blocks:
    if not message.causes:
        return []
    lines = [
        f"• flag `{literal(c.flag_key)}` changed from version {c.old_version} to {c.new_version} "
        f"at {_when(c.changed_at)}"
        for c in message.causes
    ]
    text = "*Possible causes*\n" + "\n".join(lines)
    return [{"type": "section", "text": _mrkdwn(text)}]


# An incident's alert lists this many of each source's metrics, then "and N more".
INCIDENT_LISTED = 10


def _incident_lines(message: InsightMessage) -> list[str]:
    """The incident's metrics, the leader first, each with its change: a bounded list."""
    lead = f"{message.metric_name} ({message.metric_kind}) {_change(message)}"
    return _bounded([lead, *message.related])


def _bounded(lines: list[str]) -> list[str]:
    shown = [f"• {literal(line)}" for line in lines[:INCIDENT_LISTED]]
    if len(lines) > INCIDENT_LISTED:
        shown.append(f"and {len(lines) - INCIDENT_LISTED} more")
    return shown


def _workspace_incident(message: InsightMessage, incident: Incident) -> Blocks:
    """A workspace-wide incident's metrics, a section per source (the leader's first): its
    count of its active metrics, then its metrics, each list bounded."""
    lines = dict(message.related_by_source)
    lead = f"{message.metric_name} ({message.metric_kind}) {_change(message)}"
    blocks: Blocks = []
    for i, part in enumerate(incident.parts):
        own = list(lines.get(part.source_name, ()))
        listed = _bounded([lead, *own] if i == 0 else own)
        text = "\n".join(
            [
                *(["*The metrics*"] if i == 0 else []),
                f"*{literal(part.source_name)}*: {part.metrics} of {part.of}",
                *listed,
            ]
        )
        block_id = "lantern_incident" if i == 0 else f"lantern_incident_{i + 1}"
        blocks.append({"type": "section", "block_id": block_id, "text": _mrkdwn(text[:3000])})
    return blocks


def _tracking(message: InsightMessage) -> Blocks:
    if not message.tracking_break:
        return []
    text = f"*Tracking break:* {literal(message.tracking_break)}"
    return [{"type": "section", "block_id": "lantern_tracking_break", "text": _mrkdwn(text)}]


def _related(message: InsightMessage) -> Blocks:
    if message.incident is not None and message.incident.scope == "workspace":
        return _workspace_incident(message, message.incident)
    if message.incident is not None:
        text = "*The metrics*\n" + "\n".join(_incident_lines(message))
        return [{"type": "section", "block_id": "lantern_incident", "text": _mrkdwn(text[:3000])}]
    if not message.related:
        return []
    text = "*Moved with it*\n" + "\n".join(f"• {literal(line)}" for line in message.related)
    return [{"type": "section", "text": _mrkdwn(text)}]


BUTTON_TEXTS = {
    "useful": "Useful",
    "not_useful": "Not useful",
    "mute": "Mute metric",
    "snooze_day": "Snooze 1 day",
    "snooze_week": "Snooze 1 week",
}


def _buttons(message: InsightMessage) -> dict[str, Any]:
    """Useful, Not useful, Mute, Snooze (when Slack can deliver the clicks), Open in Lantern."""
    elements: Blocks = []
    if message.interactive:
        for action_id, action in BUTTONS.items():
            button: dict[str, Any] = {
                "type": "button",
                "text": {"type": "plain_text", "text": BUTTON_TEXTS[action]},
                "action_id": action_id,
                "value": str(message.insight_id),
            }
            if action == "useful":
                button["style"] = "primary"
            elements.append(button)
    elements.append(
        {
            "type": "button",
            "text": {"type": "plain_text", "text": "Open in Lantern"},
            "url": message.dashboard_url,
            "action_id": "open_insight",
        }
    )
    return {"type": "actions", "block_id": "lantern_actions", "elements": elements}


def _did(taken: ActionTaken) -> str:
    who = f"<@{taken.slack_user_id}>"  # Slack shows each reader the clicker's name
    if taken.action == "useful":
        return f":white_check_mark: Marked useful by {who}"
    if taken.action == "not_useful":
        return f":x: Marked not useful by {who}"
    if taken.action == "mute":
        return f":no_bell: Muted by {who}"
    until = f" until {_when(taken.until)}" if taken.until else ""
    length = "1 day" if taken.action == "snooze_day" else "1 week"
    return f":zzz: Snoozed for {length} by {who}{until}"


def _actions_taken(message: InsightMessage) -> Blocks:
    if not message.actions:
        return []
    lines = " · ".join(_did(taken) for taken in message.actions[-5:])
    return [{"type": "context", "block_id": "lantern_done", "elements": [_mrkdwn(lines)]}]


def alert_blocks(message: InsightMessage) -> tuple[str, Blocks]:
    """The first message of an episode."""
    icon = ICONS.get(message.severity, "")
    text = f"{icon} {headline(message)}".strip()
    title = f"{message.metric_name} {_change(message)}"
    opening = (
        f"{icon} *{literal(message.metric_name)}* ({literal(message.metric_kind)}, "
        f"source *{literal(message.source_name)}*) {_change(message)}.\n"
    )
    incident = message.incident
    if incident is not None:
        # one alert for the source (or the workspace): what it is first, then its largest
        # change in full
        text = f"{icon} {literal(incident.text)}".strip()
        title = incident.headline
        opening = (
            f"{icon} *{literal(incident.who)}*: {incident.metrics} of {incident.of} "
            f"metrics went down or quiet together since {_when(incident.since)} — "
            f"{QUESTION}\n*Largest:* *{literal(message.metric_name)}* "
            f"({literal(message.metric_kind)}) {_change(message)}.\n"
        )
    blocks: Blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": _mrkdwn(f"{opening}{_facts(message)}")},
        *_root_cause(message),
        *_chart(message),
        *_tracking(message),
        *_owner(message),
        *_in_words(message),
        *_causes(message),
        *_related(message),
        _buttons(message),
        *_actions_taken(message),
        {
            "type": "context",
            "elements": [
                _mrkdwn(
                    f"Detected {_when(message.detected_at)} · "
                    f"severity {SEVERITY_MEANINGS.get(message.severity, message.severity)} · "
                    f"{message.kind.replace('_', ' ')}"
                )
            ],
        },
    ]
    return text, blocks


def update_blocks(message: InsightMessage) -> tuple[str, Blocks]:
    """A thread reply: the episode got louder."""
    text = f"Still going and larger: {headline(message)}"
    return text, [
        {"type": "section", "text": _mrkdwn(f":arrow_up_small: {text}\n{_facts(message)}")}
    ]


def incident_blocks(message: InsightMessage) -> tuple[str, Blocks]:
    """The thread reply when a story told first as smaller (a source's busiest metric,
    alone) has become an incident: what it is now, then its metrics as its alert lists them."""
    incident = message.incident
    assert incident is not None
    icon = ICONS.get(message.severity, "")
    text = f"Now a {incident.scope}-wide incident: {literal(incident.text)}"
    opening = (
        f"{icon} *Now a {incident.scope}-wide incident:* *{literal(incident.who)}*: "
        f"{incident.metrics} of {incident.of} metrics went down or quiet together since "
        f"{_when(incident.since)} — {QUESTION}"
    ).strip()
    return text, [
        {"type": "section", "block_id": "lantern_now_incident", "text": _mrkdwn(opening)},
        *_related(message),
    ]


def resolution_blocks(message: InsightMessage) -> tuple[str, Blocks]:
    """The thread reply when the episode is over."""
    incident = message.incident
    if incident is not None and incident.ended_at is not None:
        return _incident_end(incident)
    end = message.ended_at or message.detected_at
    hours = max(1, round((end - message.start).total_seconds() / 3600))
    if message.status == "accepted":
        text = (
            f"{literal(message.metric_name)} has settled at its new level: Lantern now "
            f"treats it as normal (after {hours} h)."
        )
        icon = ":white_check_mark:"
    else:
        text = f"{literal(message.metric_name)} is back to normal after {hours} h."
        icon = ":large_green_circle:"
    return text, [
        {"type": "section", "text": _mrkdwn(f"{icon} {text}")},
        {"type": "context", "elements": [_mrkdwn(f"Ended {_when(end)}")]},
    ]


def _incident_end(incident: Incident) -> tuple[str, Blocks]:
    """The one reply that tells an incident is over: all its metrics, of every source, are."""
    assert incident.ended_at is not None
    hours = max(1, round((incident.ended_at - incident.since).total_seconds() / 3600))
    which = f"{literal(incident.who)}: the {incident.metrics} metrics that went down or quiet"
    if incident.accepted:
        back = incident.metrics - incident.accepted
        text = (
            f"{which} together are over after {hours} h: {back} back to normal, "
            f"{incident.accepted} settled at a new level that Lantern now treats as normal."
        )
    else:
        text = f"{which} together are back to normal after {hours} h."
    return text, [
        {"type": "section", "text": _mrkdwn(f":large_green_circle: {text}")},
        {"type": "context", "elements": [_mrkdwn(f"Ended {_when(incident.ended_at)}")]},
    ]


def test_blocks() -> tuple[str, Blocks]:
    """The message sent by "Send a test message"."""
    text = "Lantern is connected: insights will be posted in this channel."
    return text, [{"type": "section", "text": _mrkdwn(f":wave: {text}")}]


def listing_blocks(
    by_source: dict[str, list[tuple[str, float, str, str, str]]], *, headline: str, footnote: str
) -> Blocks:
    """A message that lists insights: each one's change and link, grouped by source.

    `by_source` maps a source's name to (metric label, relative change, kind, direction,
    link) of each insight, in the order they were found.
    """
    blocks: Blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": headline[:150]}},
    ]
    for source, items in by_source.items():
        lines = []
        for name, change, kind, direction, url in items:
            if kind == DetectionKind.OUTAGE:
                moved = DetectionKind.OUTAGE.phrase
            elif kind == DetectionKind.TRACKING_BREAK:
                moved = _tracking_break(change)
            else:
                moved = f"{phrase(kind)}, {'up' if direction == 'up' else 'down'} {abs(change):.0%}"
            lines.append(f"• {literal(name)} {moved} · <{url}|Open in Lantern>")
        body = f"*{literal(source)}*\n" + "\n".join(lines)
        blocks.append({"type": "section", "text": _mrkdwn(body[:3000])})
    blocks.append({"type": "context", "elements": [_mrkdwn(footnote)]})
    return blocks


def digest_blocks(
    by_source: dict[str, list[tuple[str, float, str, str, str]]], *, day: date, time_zone: str
) -> tuple[str, Blocks]:
    """The daily digest: each low-severity insight's change and link, grouped by source."""
    count = sum(len(items) for items in by_source.values())
    text = f"Lantern's daily digest for {day:%a %d %b}: {count} smaller change(s)"
    footnote = f"Low-severity insights, held for this digest ({time_zone})"
    return text, listing_blocks(by_source, headline=text, footnote=footnote)


def summary_blocks(
    by_source: dict[str, list[tuple[str, float, str, str, str]]],
    *,
    start: int | None,
    end: int | None,
    time_zone: str,
) -> tuple[str, Blocks]:
    """The summary of the quiet hours: each alert they held, its change and link, by source.

    `start` and `end` are the quiet hours (local hours of `time_zone`) as the workspace
    now has them; None if it no longer has any.
    """
    count = sum(len(items) for items in by_source.values())
    hours = f" ({start:02d}:00 to {end:02d}:00 {time_zone})" if start is not None else ""
    text = f"While it was quiet{hours}: {count} new insight(s)"
    footnote = (
        "Held for the workspace's quiet hours and told together; what follows of each "
        "insight (louder, over) is in this thread"
    )
    return text, listing_blocks(by_source, headline=text, footnote=footnote)
