"""Cycle changes: the last 48 hours against the same hours a week before, without the model."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import special

from lantern.detect.detectors.evidence import FULL_SHARE, LOG_OFFSET, Evidence
from lantern.detect.kinds import DetectionKind
from lantern.detect.series import DAY, WEEK
from lantern.detect.verdicts import MAX_SCORE, Candidate

CYCLE_WINDOW = 48  # hours a change of cycle is judged on, against the same hours a week before
CYCLE_ERROR = 0.02  # relative error of an hour against the same hour a week before
CYCLE_HISTORY = 96  # hours before the window whose jitter measures the noise
CYCLE_CAP = 16.0  # most one hour of the day can add to the chi-square
CYCLE_MIN_SCALE = 0.1  # least fraction of the model's noise that the measured noise can be
MIN_SIDE_HOURS = 3  # hours of the day that must be off above, and as many below
SIDE_Z = 2  # a pattern hour's z beyond which it is off above or below
DAYS_AGREE = 2  # the pattern's chi-square must be this many times the two days' disagreement
JITTER_LEAST_HOURS = CYCLE_HISTORY / 2  # usable hours before the jitter is trusted; else 1


@dataclass(frozen=True)
class CycleParams:
    """What a sensitivity asks of a change of the daily cycle week on week."""

    score: float  # least -log10 p of the chi-square
    amplitude: float  # least RMS change of the daily cycle (log scale)


class CycleChangeDetector:
    """Cycle changes: a week-on-week chi-square of the hour-of-day pattern, noise measured.

    Over the last `CYCLE_WINDOW` hours, each hour's log ratio minus that of the same hour a
    week earlier, less a weighted line through them (level and drift are other detectors'
    business), averaged over the two days by hour of day: a chi-square on what is left,
    with its noise measured from the data (the two days' disagreement, and the hour-to-hour
    jitter of the week-on-week ratio over the `CYCLE_HISTORY` hours before) rather than
    taken from the model, in the manner of a quasi-likelihood scale (McCullagh and Nelder
    1989). Comparing data with data, the model's own misfit of the cycle cancels. The two
    days must agree (a one-day oddity is no change of cycle) and the pattern must be large
    enough to matter (`CycleParams.amplitude`, RMS on the log scale). Counts only; a change
    it finds is reported as a seasonality change.
    """

    kinds = (DetectionKind.SEASONALITY_CHANGE,)

    def __init__(self, params: CycleParams) -> None:
        self.params = params

    def scan(self, evidence: Evidence) -> list[Candidate | None]:
        """Changes of the daily cycle seen against the same hours a week before."""
        p, k = self.params, CYCLE_WINDOW
        ev = evidence
        out: list[Candidate | None] = [None] * ev.judged
        if ev.kind != "count":
            return out
        now = _window_hours(ev.first, ev.end, k)
        then = now - WEEK
        both_usable = ev.usable[now] & ev.usable[then]
        n = both_usable.sum(1)
        if not (n >= FULL_SHARE * k).any():
            return out  # no window has the hours to be judged on, this week and the last
        d = ev.log_ratio[now] - ev.log_ratio[then]
        # each hour's Poisson variance of its log ratio
        poisson = 1.0 / (ev.mu + LOG_OFFSET)
        var = poisson[now] + poisson[then]
        w = np.where(both_usable, 1.0 / (var + 2 * ev.noise + CYCLE_ERROR**2), 0.0)
        # less the weighted line through the window
        time = np.arange(k, dtype=float)[None, :]
        sw = w.sum(1, keepdims=True)
        safe = np.maximum(sw, 1e-12)
        tm = (w * time).sum(1, keepdims=True) / safe
        dm = (w * d).sum(1, keepdims=True) / safe
        centred = time - tm
        sxx = np.maximum((w * centred**2).sum(1, keepdims=True), 1e-12)
        slope = (w * centred * (d - dm)).sum(1, keepdims=True) / sxx
        e = d - dm - slope * centred
        half = k // 2
        w1, w2, e1, e2 = w[:, :half], w[:, half:], e[:, :half], e[:, half:]
        ww = w1 + w2
        pattern = (w1 * e1 + w2 * e2) / np.maximum(ww, 1e-12)
        within = (w1 * (e1 - pattern) ** 2 + w2 * (e2 - pattern) ** 2).sum(1)
        # the noise is measured, whatever the model thinks it is: by the two days'
        # disagreement, and by how much the week-on-week ratio jitters from hour to hour
        # over the days before the window. Both may find less noise than the model's
        # dispersion promises (a young model's includes its own misfit of the cycle,
        # which comparing data with data does not suffer), down to `CYCLE_MIN_SCALE`
        pairs = np.maximum(((w1 > 0) & (w2 > 0)).sum(1), 1)
        scale = np.maximum(np.maximum(within / pairs, _jitter(ev, k, poisson)), CYCLE_MIN_SCALE)
        power = ww * pattern**2
        q = np.minimum(power / scale[:, None], CYCLE_CAP).sum(1)
        dof = np.maximum(half - 2, 1)
        score = np.minimum(-np.log10(np.maximum(special.chdtrc(dof, q), 1e-300)), MAX_SCORE)
        amplitude = np.sqrt(power.sum(1) / np.maximum(ww.sum(1), 1e-12))
        zed = pattern * np.sqrt(ww / scale[:, None])
        above, below = (zed > SIDE_Z).sum(1), (zed < -SIDE_Z).sum(1)
        hit = (
            (n >= FULL_SHARE * k)
            & (score >= p.score)
            & (amplitude >= p.amplitude)
            & (q >= DAYS_AGREE * within / scale)
            & (above >= MIN_SIDE_HOURS)
            & (below >= MIN_SIDE_HOURS)
        )
        for j in np.flatnonzero(hit):
            i = ev.first + j
            obs = float(ev.x[i - DAY + 1 : i + 1].mean())
            exp = float(ev.mu[i - DAY + 1 : i + 1].mean())
            direction = "up" if obs >= exp else "down"
            out[j] = Candidate(
                DetectionKind.SEASONALITY_CHANGE.value,
                direction,
                DAY - 1,
                obs,
                exp,
                float(score[j]),
            )
        return out


@functools.cache
def _window_hours(first: int, end: int, k: int) -> np.ndarray:
    """The ``k`` hours of the window ending at each judged hour, one row each, in order
    (shared between calls: read-only)."""
    hours = np.arange(first, end)[:, None] - np.arange(k)[::-1][None, :]
    hours.setflags(write=False)
    return hours


def _jitter(ev: Evidence, k: int, poisson: np.ndarray) -> np.ndarray:
    """Mean squared hour-to-hour change of the week-on-week log ratio, in units of its
    variance, over the `CYCLE_HISTORY` hours before the last k of each judged hour
    (``poisson``: each hour's Poisson variance of its log ratio)."""
    # each hour p from WEEK + 1 on, the hour before it, and both a week before
    end = len(ev.x)
    hour, before = slice(WEEK + 1, end), slice(WEEK, end - 1)
    week, week_before = slice(1, end - WEEK), slice(0, end - WEEK - 1)
    usable = ev.usable
    all_usable = usable[hour] & usable[before] & usable[week] & usable[week_before]
    lr = ev.log_ratio
    step = (lr[hour] - lr[week]) - (lr[before] - lr[week_before])
    var = (
        poisson[hour]
        + poisson[before]
        + poisson[week]
        + poisson[week_before]
        + 4 * ev.noise
        + 2 * CYCLE_ERROR**2
    )
    pad = np.zeros(WEEK + 2)
    ratio = np.concatenate([pad, np.where(all_usable, step**2 / var, 0.0)])
    count = np.concatenate([pad, all_usable.astype(float)])
    stop = np.arange(ev.first, ev.end) + 1 - k
    lo = np.maximum(stop - CYCLE_HISTORY, 0)
    cr, cn = np.cumsum(ratio), np.cumsum(count)
    n = cn[stop] - cn[lo]
    return np.where(n >= JITTER_LEAST_HOURS, (cr[stop] - cr[lo]) / np.maximum(n, 1), 1.0)
