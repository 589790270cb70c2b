"""An insight in words a product manager reads: how sure, how loud, where it stands, what next.

Pure functions of what an insight already stores; the API, the web pages and Slack all
use them, so every place says the same thing.

How sure: an insight's `score` is the detector's ``-log10 p``, the chance under the
metric's own model (its daily and weekly rhythm, trend and noise) of a departure at least
this large in one hour's judgement. A score of 6 is a one-in-a-million hour: about once
in 114 years of the metric's hours. The detectors also check the departure against the
metric's own recent history (`lantern.detect.tails`), so a metric that often bursts does
not get a confident alert for its usual bursts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from lantern.metrics.keys import Measure

Sureness = Literal["very_sure", "sure", "unsure"]

# Scores (-log10 p) from which an insight is told as very unlikely, or unlikely, to be
# chance: one hour in a million (over a century of hours), and one in a thousand (six
# weeks of hours, so a metric would show one such hour every month or two by chance).
VERY_SURE_SCORE = 6.0
SURE_SCORE = 3.0
HOURS_PER_YEAR = 24 * 365.25
DASH = "\u2013"  # an en dash, between the ends of a range

SURENESS_LABELS: dict[Sureness, str] = {
    "very_sure": "Very unlikely to be chance",
    "sure": "Unlikely to be chance",
    "unsure": "Could be chance",
}

SEVERITY_MEANINGS = {
    "high": "high: the metric stopped, or moved by half or more",
    "medium": "medium: the metric moved by a fifth to a half",
    "low": "low: the metric moved by less than a fifth",
}

STATUS_MEANINGS = {
    "open": "open: going on now; Lantern tells you if it grows and when it ends",
    "updated": "updated: still going on, and larger than when first told",
    "resolved": "resolved: over; the metric is back in its normal range",
    "accepted": (
        "accepted: the change lasted, so Lantern now takes it as the new normal "
        "(and tells you if the metric comes back to the old one within two weeks)"
    ),
}


@dataclass(frozen=True, slots=True)
class InWords:
    """What an insight means, sentence by sentence."""

    sureness: Sureness
    sureness_label: str
    how_sure: str
    severity: str
    status: str
    normal_range: str
    next_step: str


def once_in(hours: float) -> str:
    """A span of hours as a person says it: "6 hours", "3 days", "40 years"."""
    if hours < 48:
        return f"{max(1, round(hours))} hours"
    days = hours / 24
    if days < 60:
        return f"{round(days)} days"
    if days < 730:
        return f"{round(days / 30.4)} months"
    years = hours / HOURS_PER_YEAR
    if years >= 1_000_000:
        return "a million years"
    return f"{_round_big(years):,} years"


def _round_big(value: float) -> int:
    """Two significant figures: 1,234 years reads as 1,200."""
    if value < 100:
        return round(value)
    digits = len(str(int(value))) - 2
    return int(round(value, -digits))


def sureness(score: float) -> Sureness:
    """How sure Lantern is that the change is real, from the detector's score."""
    if score >= VERY_SURE_SCORE:
        return "very_sure"
    if score >= SURE_SCORE:
        return "sure"
    return "unsure"


def how_sure(score: float) -> str:
    """The sureness as a sentence, with how often chance alone would do it."""
    label = SURENESS_LABELS[sureness(score)]
    hours = 10 ** min(score, 50.0)
    rarer = "less often than " if hours / HOURS_PER_YEAR >= 1_000_000 else "about "
    return (
        f"{label}: by chance, a change this large comes {rarer}once in {once_in(hours)} "
        "of this metric's hours."
    )


def number(value: float) -> str:
    """A figure as the pages show it: whole above 10, two decimals below."""
    if abs(value) >= 10:
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") or "0"


def normal_range(
    *, observed: float, lower: float, upper: float, measure: Measure, hours: int = 1
) -> str:
    """The normal range as a range, and what was observed ("Normally 4 to 17 ..., 0 ...").

    `observed` is per hour over the episode's `hours`; when each hour alone is within the
    range, the sentence says the length of the run is what is unusual.
    """
    if measure == "count":
        low, unit, per = max(lower, 0.0), " events an hour", " an hour"
    elif measure == "average":
        low, unit, per = lower, " on average", " on average"
    else:
        low, unit, per = lower, " an hour (sum of values)", " an hour"
    seen = (
        f"{number(observed)} observed"
        if hours <= 1
        else (f"{number(observed)}{per} observed over {hours} hours")
    )
    text = (
        f"Normally {number(low)}{DASH}{number(upper)}{unit} at this time of day and week; {seen}."
    )
    if hours > 1 and low <= observed <= upper:
        text += f" Each hour alone is within that range: {hours} hours in a row is what is not."
    return text


def next_step(*, kind: str, direction: str, status: str, has_causes: bool) -> str:
    """What to do now, in one sentence."""
    if status == "resolved":
        return "Nothing to do now: it is over. Mark it useful or not, so your team knows."
    if status == "accepted":
        return (
            "Nothing to do if the change was intended (a launch, a price change); otherwise "
            "find what changed on the day it started."
        )
    if has_causes:
        return "A feature flag changed just before: check that change first (see below)."
    if kind == "tracking_break":
        return (
            "The event stopped while its source kept sending: check the tracking of the "
            "release it stopped with (a renamed or removed call), then the feature itself."
        )
    if kind == "outage":
        return (
            "Open the source's debug view: if no events arrive, check the app's latest "
            "release and its Segment set-up; if they do, the feature itself may be down."
        )
    if kind == "spike":
        return (
            "Look for what sent the extra events: a campaign, a newsletter, a bot, or a "
            "client sending each event twice."
        )
    if kind == "seasonality_change":
        return (
            "The daily or weekly rhythm changed: check for a new time zone, a schedule or "
            "a change of audience."
        )
    if direction == "down":
        return (
            "Look for a release, a flag change or a broken step around the start; if the "
            "drop was intended, nothing to do: it becomes the new normal once it lasts."
        )
    return (
        "If it was expected (a launch, a campaign), nothing to do: Lantern takes it as the "
        "new normal once it lasts; if not, look for what changed around the start."
    )


def in_words(
    *,
    kind: str,
    direction: str,
    status: str,
    severity: str,
    score: float,
    observed: float,
    lower: float,
    upper: float,
    measure: Measure,
    start: datetime,
    detected_at: datetime,
    has_causes: bool = False,
    hours: int | None = None,
) -> InWords:
    """Every sentence about one insight; `hours` when the figures' span is known."""
    # when opened, the figures are per hour over the hours from its start to its detection;
    # an update or the end replaces them with the latest verdict's
    if hours is None and status == "open":
        hours = max(1, int((detected_at - start).total_seconds() // 3600) + 1)
    hours = hours or 1
    return InWords(
        sureness=sureness(score),
        sureness_label=SURENESS_LABELS[sureness(score)],
        how_sure=how_sure(score),
        severity=SEVERITY_MEANINGS.get(severity, severity),
        status=STATUS_MEANINGS.get(status, status),
        normal_range=normal_range(
            observed=observed,
            lower=lower,
            upper=upper,
            measure=measure,
            hours=hours,
        ),
        next_step=next_step(kind=kind, direction=direction, status=status, has_causes=has_causes),
    )
