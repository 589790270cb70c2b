"""Seasonality changes: the last 24 hours off both ways around an unmoved level."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from lantern.detect.detectors.evidence import FULL_SHARE, TAIL_GAP, TAIL_HOURS, Evidence
from lantern.detect.kinds import DetectionKind
from lantern.detect.tails import rarity
from lantern.detect.verdicts import MAX_SCORE, Candidate

SEASON_WINDOW = 24  # hours: one daily cycle
MIN_SIDE_HOURS = 3  # hours that must be off above, and as many below, expectation
OFF_SHARE = 3  # at least 1/this of the window's hours must be off one way or the other


@dataclass(frozen=True)
class SeasonalityParams:
    """What a sensitivity asks of a change of the daily cycle against the model."""

    score: float  # least -log10 p of the chi-square
    amplitude: float  # least RMS of the hourly log ratios around their mean
    rarity: float  # least -log10 p of the statistic against the metric's own recent weeks


class SeasonalityChangeDetector:
    """Seasonality changes: the 24-hour dispersion of hourly log ratios around their mean.

    Over the last `SEASON_WINDOW` hours, the weighted sum of squares of each hour's log
    ratio around the window's mean is a chi-square with n - 2 degrees of freedom under the
    model (Pearson's dispersion statistic; McCullagh and Nelder 1989). It must be
    significant, large enough (RMS `amplitude`), have hours both above and below
    expectation, and leave the mean within a level shift's least change (``level_change``,
    the level preset's): the shape, amplitude or phase of the cycle moved, not the level.
    Real hours scatter more than any model says, so the statistic must also be rare
    against its own value over the metric's last four weeks (`tails.rarity`).
    """

    kinds = (DetectionKind.SEASONALITY_CHANGE,)

    def __init__(self, params: SeasonalityParams, *, level_change: float) -> None:
        self.params = params
        self.level_change = level_change

    def scan(self, evidence: Evidence) -> list[Candidate | None]:
        """Seasonality changes: hours off in both directions, the level unmoved."""
        p, k = self.params, SEASON_WINDOW
        q, sw, swl, n = _dispersion(evidence, 0)
        above, below = (evidence.window(name, k) for name in ("above", "below"))
        dof = np.maximum(n - 2, 1)
        score = np.minimum(-np.log10(np.maximum(special.chdtrc(dof, q), 1e-300)), MAX_SCORE)
        amplitude = np.sqrt(np.maximum(q, 0) / np.maximum(sw, 1e-12))
        mean = swl / np.maximum(sw, 1e-12)
        hit = (
            (n >= FULL_SHARE * k)
            & (score >= p.score)
            & (amplitude >= p.amplitude)
            & (above >= MIN_SIDE_HOURS)
            & (below >= MIN_SIDE_HOURS)
            & (above + below >= k / OFF_SHARE)
            & (np.abs(mean) < self.level_change)
        )
        if hit.any():
            # rarely this scattered for this metric: asked only where the rest holds
            cols = np.flatnonzero(hit)
            past = self._past(evidence)[:, cols].T
            hit[cols] = rarity(past, q[cols] / dof[cols], unknown=0.0) >= p.rarity
        out: list[Candidate | None] = []
        for j in range(len(q)):
            if not hit[j]:
                out.append(None)
                continue
            i = evidence.first + j
            obs, exp = (
                float(evidence.x[i - k + 1 : i + 1].mean()),
                float(evidence.mu[i - k + 1 : i + 1].mean()),
            )
            direction = "up" if obs >= exp else "down"
            out.append(
                Candidate(
                    DetectionKind.SEASONALITY_CHANGE.value,
                    direction,
                    k - 1,
                    obs,
                    exp,
                    float(score[j]),
                )
            )
        return out

    def _past(self, evidence: Evidence) -> np.ndarray:
        """The statistic (chi-square per degree of freedom) of the `TAIL_HOURS` windows
        before each judged hour's (less `TAIL_GAP`), one column per judged hour (NaN where
        not full)."""
        k = SEASON_WINDOW
        q, _, _, n = _dispersion(evidence, (k + TAIL_GAP + np.arange(TAIL_HOURS))[:, None])
        return np.where(n >= FULL_SHARE * k, q / np.maximum(n - 2, 1), np.nan)


def _dispersion(
    evidence: Evidence, back: int | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(chi-square, sum of weights, weighted sum of log ratios, usable hours) of the
    `SEASON_WINDOW` hours ending ``back`` hours before each judged hour."""
    k = SEASON_WINDOW
    sw, swl, swl2, n = (
        evidence.window(name, k, back)
        for name in ("weight", "weighted_log_ratio", "weighted_log_ratio2", "usable")
    )
    return swl2 - swl**2 / np.maximum(sw, 1e-12), sw, swl, n
