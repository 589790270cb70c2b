"""What a notification says, independent of how it is sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from lantern.insights.incidents import Incident
from lantern.metrics.keys import Measure


@dataclass(frozen=True)
class FlagChangeCause:
    """A LaunchDarkly flag whose version changed shortly before the episode began."""

    flag_key: str
    old_version: int | None
    new_version: int
    changed_at: datetime


# The buttons of an alert: action_id → what the click does (see `dashboard.slack_actions`).
BUTTONS: dict[str, str] = {
    "lantern_useful": "useful",
    "lantern_not_useful": "not_useful",
    "lantern_mute": "mute",
    "lantern_snooze_day": "snooze_day",
    "lantern_snooze_week": "snooze_week",
}


@dataclass(frozen=True)
class ActionTaken:
    """A button clicked on the alert: what, by which Slack user, when (and until when)."""

    action: str  # a value of BUTTONS
    slack_user_id: str
    at: datetime
    until: datetime | None = None


@dataclass(frozen=True)
class SpanFigures:
    """Observed and expected over one span of hours, with the range that fits that span.

    `observed` and `expected` are per hour, averaged over the `hours` from `start` to the
    detection; `lower` and `upper` bound such an average (narrower than one hour's band).
    `hour_lower` and `hour_upper` are one hour's band, averaged over the same hours.
    """

    start: datetime
    hours: int
    observed: float
    expected: float
    lower: float
    upper: float
    hour_lower: float
    hour_upper: float


@dataclass(frozen=True)
class InsightMessage:
    """The facts of one insight, as a message needs them."""

    insight_id: int
    metric_name: str
    metric_kind: str  # human label, e.g. "track event", "identify volume"
    source_name: str
    kind: str  # a `DetectionKind` value: level_shift, outage, tracking_break...
    direction: str  # up | down
    relative_change: float
    observed: float
    expected: float
    lower: float
    upper: float
    start: datetime
    detected_at: datetime
    status: str  # open | updated | resolved | accepted
    severity: str  # low | medium | high
    score: float  # the detector's -log10 p: how sure (see lantern.insights.words)
    causes: tuple[FlagChangeCause, ...]
    dashboard_url: str
    ended_at: datetime | None = None
    related: tuple[str, ...] = ()  # other metrics of its story (its source's, or its incident's)
    # the same lines by source name, in the order each source first comes
    related_by_source: tuple[tuple[str, tuple[str, ...]], ...] = ()
    measure: Measure = "count"  # what an hour holds: events, or the sum or average of values
    interactive: bool = False  # Slack can deliver its button clicks (a signing secret is set)
    actions: tuple[ActionTaken, ...] = ()  # buttons clicked so far, oldest first
    chart_file: str | None = None  # Slack's id of the uploaded chart, shown in the alert
    owner: str | None = None  # a Slack user (U…/W…) or user group (S…) the alert mentions
    note: str | None = None  # the metric's "what to check first"
    span: SpanFigures | None = None  # the alert's figures, from the data its chart shows
    # the breakdown values that explain the change, or that it is broad (one line)
    root_cause: str | None = None
    # the story it leads is a source- or workspace-wide incident (`insights.incidents`)
    incident: Incident | None = None
    tracking_break: str | None = None  # why a tracking break is one, in one line


@dataclass(frozen=True)
class ChartData:
    """The last days of a metric for the alert's chart."""

    index: pd.DatetimeIndex
    observed: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    anomaly_start: pd.Timestamp
    anomaly_end: pd.Timestamp  # the end of the last anomalous hour (start + 1 h at least)
    unit: str = "events per hour"  # the y axis
