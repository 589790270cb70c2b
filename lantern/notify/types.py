"""What a notification says, independent of how it is sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from lantern.metrics.keys import Measure


@dataclass(frozen=True)
class FlagChangeCause:
    """A LaunchDarkly flag whose version changed shortly before the episode began."""

    flag_key: str
    old_version: int | None
    new_version: int
    changed_at: datetime


@dataclass(frozen=True)
class InsightMessage:
    """The facts of one insight, as a message needs them."""

    insight_id: int
    metric_name: str
    metric_kind: str  # human label, e.g. "track event", "identify volume"
    source_name: str
    kind: str  # level_shift | trend_change | seasonality_change | spike | drop | outage
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
    related: tuple[str, ...] = ()  # other metrics of the source that moved with it
    measure: Measure = "count"  # what an hour holds: events, or the sum or average of values


@dataclass(frozen=True)
class ChartData:
    """The last days of a metric for the alert's chart."""

    index: pd.DatetimeIndex
    observed: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    anomaly_start: pd.Timestamp
    anomaly_end: pd.Timestamp
