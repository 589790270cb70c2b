"""Trend changes: daily log ratios that bend away from their own line and keep going."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from lantern.detect.detectors.evidence import Evidence
from lantern.detect.kinds import DetectionKind
from lantern.detect.series import DAY
from lantern.detect.verdicts import Candidate, score_from_z

TREND_DAYS = 14  # daily blocks a trend change is judged on
TREND_ERROR = 0.015  # relative error of a day's forecast that no amount of data removes
TREND_REACH = 0.1  # a change of trend must have moved the metric by this much (log) so far
BEND_MARGIN = 4.0  # chi-square by which a bend must beat a step to rename a level shift
NEWEST_BEND = 2  # days back of the most recent hinge: a younger bend is a level's business
OLDEST_BEND = 7  # days back of the oldest hinge tried
MISSING_DAYS = 2  # most blocks that may be missing (not full) from the fourteen
TIE = 1e-9  # relative difference of two hinges' z below which they are the same fit


def _regressors() -> np.ndarray:
    """The third regressor of each fit (`TrendChangeDetector.fit`), one row per hinge and
    step, over the `TREND_DAYS` blocks, the oldest first; each fit also has an intercept
    and the day (`_DAYS`)."""
    hinges = [np.maximum(_DAYS - k, 0.0) for k in _BENDS]
    steps = [(k < _DAYS).astype(float) for k in _STEPS]
    return np.stack(hinges + steps)


_DAYS = np.arange(TREND_DAYS, dtype=float)
# the days of the hinges tried, then of the steps they must beat
_BENDS = np.arange(TREND_DAYS - 1 - OLDEST_BEND, TREND_DAYS - NEWEST_BEND)
_STEPS = np.arange(TREND_DAYS - 1 - OLDEST_BEND, TREND_DAYS - 1)
_REGRESSORS = _regressors()
# hours before each judged one at which the daily blocks end, the oldest first
_BLOCK_BACK = ((TREND_DAYS - 1 - np.arange(TREND_DAYS)) * DAY)[:, None]


@dataclass(frozen=True)
class TrendParams:
    """What a sensitivity asks of a trend change."""

    score: float  # least -log10 p of the hinge's slope
    slope: float  # least |change of log level| per day
    # whether a hinge whose scale is measured from the days' scatter is read on Student's t
    # (`_hinge_score`); the normal law reads it more eagerly
    student: bool = True


@dataclass(frozen=True)
class TrendFit:
    """The hinge fit of each judged hour, and the trend changes it finds."""

    slope: np.ndarray  # the best hinge's slope (log change per day), 0 where none
    bends: np.ndarray  # whether the bend beats a step by `BEND_MARGIN` (a level renamed)
    candidates: list[Candidate | None]


class TrendChangeDetector:
    """Trend changes: the slope of a hinge in the last fourteen daily log ratios.

    The log ratios of the last `TREND_DAYS` 24-hour blocks (`Evidence.block`) are regressed
    by weighted least squares on a line plus a hinge that starts 2 to 7 days back; the
    hinge's slope is the change of trend, judged against the data's own line rather than
    the daily refit (which follows a drift in progress). A block's variance is its count
    noise plus `TREND_ERROR`, scaled up by the fit's own residual scatter when the days
    scatter more than that (quasi-likelihood; McCullagh and Nelder 1989); a slope whose
    standard error was so measured, on a dozen degrees of freedom, is read on Student's t
    (`TrendParams.student`; at `high`, on the normal law, which reads it more eagerly: the
    episodes followed are the most sensitive setting's, so a stricter reading at `medium`
    and `low` changes what is told, never what the state follows). The change must
    be steep, significant, have moved the metric by `TREND_REACH` so far, and fit better
    than a step (a step is a level shift). A level shift found by `LevelShiftDetector` is
    renamed a trend change where the bend beats a step clearly (`rename`).
    """

    kinds = (DetectionKind.TREND_CHANGE,)

    def __init__(self, params: TrendParams) -> None:
        self.params = params

    def scan(self, evidence: Evidence) -> list[Candidate | None]:
        """The trend change found at each judged hour, or None."""
        return self.fit(evidence).candidates

    def fit(self, evidence: Evidence) -> TrendFit:
        """Hinge fits for all judged hours at once, and the trend changes they find."""
        p = self.params
        n_out = evidence.judged
        days = TREND_DAYS
        lr, var, full = evidence.block(DAY, _BLOCK_BACK)
        w = np.where(full, 1.0 / (var + TREND_ERROR**2), 0.0)
        enough = (w > 0).sum(0) >= days - MISSING_DAYS
        if not enough.any():
            # no hour has the days to be judged on (a young metric, a young new normal)
            return TrendFit(np.zeros(n_out), np.zeros(n_out, dtype=bool), [None] * n_out)
        bends = _BENDS
        c, se, rss, dof = _wls_last(_REGRESSORS, lr, w)
        nb = len(bends)
        z = np.where(enough, c[:nb] / se[:nb], 0.0)
        pick = _strongest(z)
        cols = np.arange(n_out)
        best_z = z[pick, cols]
        found = np.abs(best_z) > 0
        best_c = np.where(found, c[pick, cols], 0.0)
        best_k = np.where(found, bends[pick], 0)
        best_rss = np.where(found, rss[pick, cols], np.inf)
        step_rss = rss[nb:].min(0)
        score = _hinge_score(best_z, dof[pick, cols] if p.student else np.zeros(n_out))
        reach = np.abs(best_c) * (days - 1 - best_k)
        bent = enough & (best_rss <= step_rss) & (np.abs(best_c) >= p.slope)
        out: list[Candidate | None] = []
        for j in range(n_out):
            if not (bent[j] and score[j] >= p.score and reach[j] >= TREND_REACH):
                out.append(None)
                continue
            onset = int((days - 1 - best_k[j]) * DAY + DAY // 2)
            i = evidence.first + j
            obs = float(evidence.x[i - DAY + 1 : i + 1].mean())
            exp = float(evidence.mu[i - DAY + 1 : i + 1].mean())
            direction = "up" if best_c[j] > 0 else "down"
            out.append(
                Candidate(
                    DetectionKind.TREND_CHANGE.value,
                    direction,
                    onset,
                    obs,
                    exp,
                    float(score[j]),
                    best_c[j],
                )
            )
        # a level window turns into a trend only where the bend beats a step clearly: a step
        # a few hours old fits the last block's bend about as well as it fits a step
        return TrendFit(best_c, bent & (best_rss + BEND_MARGIN <= step_rss), out)

    def rename(self, found: Candidate, fit: TrendFit, j: int) -> Candidate:
        """A level shift at judged hour j, renamed a trend change if it has been drifting away."""
        if found.kind != DetectionKind.LEVEL_SHIFT or not fit.bends[j]:
            return found
        # a level that has been drifting away for days is a change of trend
        slope = fit.slope[j]
        same_way = np.sign(slope) == (1 if found.direction == "up" else -1)
        if not (same_way and abs(slope) >= self.params.slope):
            return found
        return Candidate(
            DetectionKind.TREND_CHANGE.value,
            found.direction,
            found.start_offset,
            found.observed,
            found.expected,
            found.score,
            float(slope),
        )


def _strongest(z: np.ndarray) -> np.ndarray:
    """The row of each column's largest ``|z|``; of rows tied up to rounding (`TIE`), the
    last. Hinges that missing days leave with the same fit tie (with the two days after a
    hinge missing, it and the one a day older are fitted to the same days); the newest of
    them is taken however the last bits of their floats fall: the bend as late as the
    days seen allow, and its slope the steepest that reaches the level they show.
    """
    size = np.abs(z)[::-1]
    return len(size) - 1 - np.argmax(size >= size.max(0) * (1.0 - TIE), axis=0)


def _hinge_score(z: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """-log10 p of a hinge's z: Student's t where its scale was measured, else normal.

    Where the days scatter more than their count noise promises, the standard error is
    scaled by that scatter as measured on the fourteen blocks themselves: a dozen degrees
    of freedom, so the statistic is Student's t, not normal (a z of 6 is p 1e-9 on the
    normal law and about 1e-4 on t with 11 degrees of freedom). `dof` is 0 where the
    weights' promise held and no scale was measured.
    """
    normal = score_from_z(z)
    t_tail = special.stdtr(np.maximum(dof, 1.0), -np.abs(z))
    t_score = -np.log10(np.maximum(t_tail, 1e-300))
    return np.where(dof > 0, np.minimum(t_score, normal), normal)


def _wls_last(
    regressors: np.ndarray, y: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares of each column of ``y`` (n days x k hours, weights ``w``) on
    an intercept, the day (`_DAYS`) and each row of ``regressors`` (m x n) in turn.

    Returns, per regressor and column (m x k), the regressor's coefficient, its standard
    error (scaled up by the residual scatter when that exceeds the weights' promise), the
    weighted residual sum of squares, and the residual degrees of freedom where that
    scatter set the standard error (0 where the weights' promise held); a fit whose normal
    equations are singular has coefficient 0 and infinite error and residuals.

    By the Frisch-Waugh-Lovell theorem, from weighted sums: the line (intercept and day)
    is shared by every fit, so each regressor's coefficient is its covariance with ``y``
    over its variance, both taken about the weighted line. Its error is the inverse of that
    variance, the last diagonal element of the inverse normal matrix, whose determinant is
    the line's times that variance.
    """
    t = _DAYS
    wy = w * y
    s0, s1, s2 = w.sum(0), t @ w, (t * t) @ w
    sy, sty = wy.sum(0), t @ wy
    sr, srt, srr, sry = regressors @ w, (regressors * t) @ w, (regressors**2) @ w, regressors @ wy
    line_det = s0 * s2 - s1 * s1
    with np.errstate(divide="ignore", invalid="ignore"):
        # the regressor's variance, and its covariance with y, about the weighted line
        var_r = srr - (s2 * sr * sr - 2.0 * s1 * sr * srt + s0 * srt * srt) / line_det
        cov_ry = sry - (s2 * sr * sy - s1 * (sr * sty + srt * sy) + s0 * srt * sty) / line_det
        good = line_det * var_r > 1e-9
        c = np.where(good, cov_ry / var_r, 0.0)
        # the line's intercept and day under each fit, from y less the regressor's part
        ry, rty = sy - c * sr, sty - c * srt
        intercept = (s2 * ry - s1 * rty) / line_det
        slope = (s0 * rty - s1 * ry) / line_det
        se = np.sqrt(1.0 / var_r)
    fitted = intercept[:, None] + slope[:, None] * t[None, :, None]
    resid = y[None] - fitted - c[:, None, :] * regressors[:, :, None]
    rss = np.where(good, (w[None] * resid**2).sum(1), np.inf)
    dof = np.maximum((w > 0).sum(0) - 3, 1)
    scale = np.maximum(rss / dof, 1.0)
    return (
        c,
        np.where(good, se * np.sqrt(scale), np.inf),
        rss,
        np.where(rss > dof, dof, 0).astype(float),
    )
