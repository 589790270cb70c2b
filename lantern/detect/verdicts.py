"""Verdict types and tail scores: what a detector says, and how surprising it is.

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

from lantern.detect.kinds import KINDS, PERSISTENT, DetectionKind
from lantern.detect.series import SeriesKind

MAX_SCORE = 50.0  # scores are capped: past 1e-50 a p-value says nothing more
RUN_SIDE_CHANGE = 0.1  # |log ratio| beyond which an hour of a run is off above or below
RUN_SIDE_HOURS = 3  # hours of a run off above, and as many below, for it to be a cycle


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

    kind: str  # a `DetectionKind` value
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


def up_score(
    x: np.ndarray, mu: np.ndarray, spread: float | np.ndarray, kind: SeriesKind
) -> np.ndarray:
    """-log10 P(X >= x): Poisson with an inflated mean for counts, Gaussian for values."""
    if kind == "value":
        return np.where(x > mu, score_from_z((x - mu) / spread), 0.0)
    high = mu * np.exp(2 * np.sqrt(spread)) + 1e-9
    p = np.where(x >= 1, special.gammainc(np.maximum(x, 1e-9), high), 1.0)
    return np.minimum(-np.log10(np.maximum(p, 1e-300)), MAX_SCORE)


def down_score(
    x: np.ndarray, mu: np.ndarray, spread: float | np.ndarray, kind: SeriesKind
) -> np.ndarray:
    """-log10 P(X <= x) for a sum of counts with mean ``mu`` (or a value)."""
    if kind == "value":
        return np.where(x < mu, score_from_z((x - mu) / spread), 0.0)
    low = mu * np.exp(-2 * np.sqrt(spread))
    p = special.gammaincc(x + 1, low)
    return np.minimum(-np.log10(np.maximum(p, 1e-300)), MAX_SCORE)


def far_tail_score(x: np.ndarray, mu: np.ndarray, spread: float, *, up: bool) -> np.ndarray:
    """`up_score`/`down_score` of counts without their cap, to tell extremes apart.

    Where the exact tail is within reach it is used; beyond `MAX_SCORE` the tail of a
    Poisson law is its first term times a geometric sum (``P(X >= x) ~ f(x) / (1 - m/(x+1))``
    above the mean, ``P(X <= x) ~ f(x) / (1 - x/m)`` below it), computed on the log scale.
    """
    exact = (up_score if up else down_score)(x, mu, spread, "count")
    m = mu * np.exp((2 if up else -2) * np.sqrt(spread)) + 1e-9
    xs = np.maximum(x, 0.0)
    log_pmf = xs * np.log(m) - m - special.gammaln(xs + 1)
    ratio = m / (xs + 1) if up else xs / m
    far = -(log_pmf - np.log(np.maximum(1 - ratio, 1e-12))) / np.log(10)
    beyond = (exact >= MAX_SCORE) & ((xs > m) if up else (xs < m))
    return np.where(beyond, np.maximum(far, MAX_SCORE), exact)


def far_z_score(z: np.ndarray) -> np.ndarray:
    """`score_from_z` without its cap, to tell extremes of a measured value apart.

    Beyond `MAX_SCORE` the normal tail is its first term, ``P(Z >= z) ~ phi(z) / z``,
    computed on the log scale: a price 25 times its usual spread off is told from one 16
    times off, where both would score the cap.
    """
    exact = score_from_z(z)
    a = np.maximum(np.abs(z), 1.0)
    far = (0.5 * a**2 + np.log(a * np.sqrt(2 * np.pi))) / np.log(10)
    return np.where(exact >= MAX_SCORE, np.maximum(far, MAX_SCORE), exact)


def classify_run(
    x: np.ndarray,
    mu: np.ndarray,
    spread: float,
    kind: SeriesKind,
    weights: np.ndarray | None = None,
) -> str:
    """Whether a run of hours moved as a level (a mean shift) or as a cycle.

    A value's hours count alike, or by ``weights`` (a mean's hours by their precision).
    """
    if kind == "count":
        lr = np.log((x + 0.5) / (mu + 0.5))
        w = 1.0 / (1.0 / (mu + 0.5) + spread)
    else:
        lr = (x - mu) / (np.abs(mu) + spread)
        w = np.ones_like(lr) if weights is None else weights
    mean = float((w * lr).sum() / w.sum())
    deviation = float(np.sqrt((w * (lr - mean) ** 2).sum() / w.sum()))
    above = (lr > RUN_SIDE_CHANGE).sum() >= RUN_SIDE_HOURS
    below = (lr < -RUN_SIDE_CHANGE).sum() >= RUN_SIDE_HOURS
    cycle = above and below and deviation > abs(mean)
    return (DetectionKind.SEASONALITY_CHANGE if cycle else DetectionKind.LEVEL_SHIFT).value


__all__ = [
    "KINDS",
    "MAX_SCORE",
    "PERSISTENT",
    "Candidate",
    "Detection",
    "classify_run",
    "down_score",
    "score_from_z",
    "up_score",
]
