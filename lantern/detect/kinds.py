"""The kinds of detection: their stored names, how people are told of them, how long they live.

A kind's value (``"level_shift"``...) is what the database, the API and replay files hold;
its `label` names it on the dashboard and in the API, its `phrase` says what the metric
did in a Slack message. Adding a kind starts here (see docs/detection.md).
"""

from __future__ import annotations

from enum import StrEnum


class DetectionKind(StrEnum):
    """A kind of detection, with its label, its phrase and its episode rules."""

    # one line each: value, label, Slack phrase, persistent, short-episode limit (hours)
    LEVEL_SHIFT = "level_shift", "Level shift", "changed level", True, None
    TREND_CHANGE = "trend_change", "Trend change", "changed trend", True, None
    SEASONALITY_CHANGE = (
        "seasonality_change",
        "Rhythm change",
        "changed its daily or weekly rhythm",
        True,
        None,
    )
    SPIKE = "spike", "Spike", "spiked", False, 8
    DROP = "drop", "Drop", "dropped", False, 8
    # an outage may last longer than a drop before it is taken for a new level: no model
    # mistake makes a metric go silent
    OUTAGE = "outage", "Outage", "went silent", False, 30
    # not a detector's: an outage or a drop of one event that its source, or the other app
    # versions, kept sending is told as a tracking break (`lantern.insights.tracking`)
    TRACKING_BREAK = (
        "tracking_break",
        "Tracking break",
        "stopped being tracked",
        False,
        None,
    )

    label: str
    phrase: str
    persistent: bool
    short_limit: int | None

    def __new__(
        cls, value: str, label: str, phrase: str, persistent: bool, short_limit: int | None
    ) -> DetectionKind:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        member.phrase = phrase
        member.persistent = persistent
        member.short_limit = short_limit
        return member


KINDS: tuple[str, ...] = tuple(kind.value for kind in DetectionKind)
# the kinds an insight may be told as, though no detector finds them: judged across metrics
ACROSS_METRICS: tuple[str, ...] = (DetectionKind.TRACKING_BREAK.value,)
# the kinds a detector finds, and a team's feedback can raise the bar of
DETECTED: tuple[str, ...] = tuple(kind for kind in KINDS if kind not in ACROSS_METRICS)
PERSISTENT: tuple[str, ...] = tuple(kind.value for kind in DetectionKind if kind.persistent)
# hours an episode of a short kind may last before it is reclassified as a lasting change
SHORT_LIMIT: dict[str, int] = {
    kind.value: kind.short_limit for kind in DetectionKind if kind.short_limit is not None
}
LABELS: dict[str, str] = {kind.value: kind.label for kind in DetectionKind}
PHRASES: dict[str, str] = {kind.value: kind.phrase for kind in DetectionKind}


def label(kind: str) -> str:
    """The label of a stored kind (``"Level shift"``); an unknown one is shown as stored."""
    return LABELS.get(kind, kind)


def phrase(kind: str) -> str:
    """What a metric did, for a message (``"changed level"``); an unknown kind, spaced."""
    return PHRASES.get(kind, kind.replace("_", " "))
