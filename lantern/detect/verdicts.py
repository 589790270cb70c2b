"""Verdict types and tail scores: what a sensitivity asks, what a detector says.

Scores are ``-log10 p`` of a one-sided tail, capped at `MAX_SCORE`. For counts the tail is
Poisson with a mean pushed two standard deviations up (or down) the gamma mixing
distribution of a negative binomial with ``Var = mu + phi*mu^2``, so that over-dispersion
is never mistaken for an event (Lawless 1987); non-negative values arrive here as
pseudo-counts (see `model`), and only values that can go negative get the Gaussian tail.

References
----------
Lawless, J. F. (1987). Negative binomial and mixed Poisson regression. Canadian Journal
    of Statistics 15, 209-225.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from lantern.detect.series import SeriesKind

KINDS = ("level_shift", "trend_change", "seasonality_change", "spike", "drop", "outage")
PERSISTENT = ("level_shift", "trend_change", "seasonality_change")
MAX_SCORE = 50.0


@dataclass(frozen=True)
class Thresholds:
    """What a sensitivity setting asks of the evidence (scores are -log10 p)."""

    spike_score: float
    spike_ratio: float
    drop_score: float
    drop_ratio: float
    outage_score: float
    level_score: float
    level_change: float  # minimum |log ratio|
    ramp_score: float
    ramp_slope: float  # minimum |log change| per day
    season_score: float
    season_amplitude: float
    min_events: float  # a spike must add at least this many events
    cycle_score: float
    cycle_amplitude: float  # minimum RMS change of the daily cycle (log scale)


SENSITIVITY: dict[str, Thresholds] = {
    "low": Thresholds(9, 3.0, 10, 0.35, 7, 9, 0.40, 9, 0.05, 12, 0.35, 10, 12, 0.1),
    "medium": Thresholds(7, 2.5, 8, 0.45, 5.5, 7, 0.30, 6, 0.035, 11, 0.25, 10, 8, 0.06),
    "high": Thresholds(5.5, 2.0, 6, 0.55, 4.5, 5.5, 0.22, 5.5, 0.025, 7, 0.18, 4, 6, 0.05),
}


@dataclass(frozen=True)
class Detection:
    """A detector's verdict on one hour: what moved, which way, since when and how much."""

    kind: str
    direction: str  # "up" or "down"
    start: object  # pd.Timestamp; object keeps this module free of a pandas import
    detected_at: object
    observed: float  # per hour, over the detector's window
    expected: float
    lower: float
    upper: float
    relative_change: float
    score: float


@dataclass(frozen=True)
class Candidate:
    """A detection before it is given timestamps: offsets are hours before the judged one."""

    kind: str
    direction: str
    start_offset: int
    observed: float
    expected: float
    score: float
    slope: float = 0.0


def score_from_z(z: np.ndarray) -> np.ndarray:
    """-log10 of the one-sided normal tail of |z|."""
    p = special.ndtr(-np.abs(z))
    return np.minimum(-np.log10(np.maximum(p, 1e-300)), MAX_SCORE)


def up_score(x: np.ndarray, mu: np.ndarray, spread: float, kind: SeriesKind) -> np.ndarray:
    """-log10 P(X >= x): Poisson with an inflated mean for counts, Gaussian for values."""
    if kind == "value":
        return np.where(x > mu, score_from_z((x - mu) / spread), 0.0)
    high = mu * np.exp(2 * np.sqrt(spread)) + 1e-9
    p = np.where(x >= 1, special.gammainc(np.maximum(x, 1e-9), high), 1.0)
    return np.minimum(-np.log10(np.maximum(p, 1e-300)), MAX_SCORE)


def down_score(x: np.ndarray, mu: np.ndarray, spread: float, kind: SeriesKind) -> np.ndarray:
    """-log10 P(X <= x) for a sum of counts with mean ``mu`` (or a value)."""
    if kind == "value":
        return np.where(x < mu, score_from_z((x - mu) / spread), 0.0)
    low = mu * np.exp(-2 * np.sqrt(spread))
    p = special.gammaincc(x + 1, low)
    return np.minimum(-np.log10(np.maximum(p, 1e-300)), MAX_SCORE)


def classify_run(x: np.ndarray, mu: np.ndarray, spread: float, kind: SeriesKind) -> str:
    """Whether a run of hours moved as a level (a mean shift) or as a cycle."""
    if kind == "count":
        lr = np.log((x + 0.5) / (mu + 0.5))
        w = 1.0 / (1.0 / (mu + 0.5) + spread)
    else:
        lr = (x - mu) / (np.abs(mu) + spread)
        w = np.ones_like(lr)
    mean = float((w * lr).sum() / w.sum())
    deviation = float(np.sqrt((w * (lr - mean) ** 2).sum() / w.sum()))
    both = (lr > 0.1).sum() >= 3 and (lr < -0.1).sum() >= 3
    return "seasonality_change" if both and deviation > abs(mean) else "level_shift"
