"""Which hours a fit learns from, and what stands in for the others.

A burst or a dip that stands alone is left out (`isolated`); hours left out or missing
are filled from the same hour a week or a day away (`fill`); and once a new normal has a
week of its own, the hours before it are stood in for by its weeks carried back along its
slope (`stand_in`).
"""

from __future__ import annotations

import numpy as np

from lantern.detect.profile import MIN_SCATTER_DOF, arranged, column_medians
from lantern.detect.series import DAY, WEEK

ISOLATED_Z = 3.0  # day-to-day scatters beyond which an hour departs from a neighbour
ISOLATED_FLOOR = 0.05  # least scatter (log) of an hour from day to day, for `isolated`


def fill(hours: np.ndarray, y: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Unusable hours take the same hour a week (else a day) away, else interpolation.

    Filling from the data rather than from the previous model keeps a model's mistake at
    one hour from being taught back to it.
    """
    filled = y.copy()
    if good.all():
        return filled
    missing = ~good
    for lag in (WEEK, -WEEK, DAY, -DAY, 2 * WEEK, -2 * WEEK, -3 * WEEK, -4 * WEEK):
        src = np.arange(len(y)) - lag
        ok = missing & (src >= 0) & (src < len(y))
        ok[ok] &= good[src[ok]]
        filled[ok] = y[src[ok]]
        missing &= ~ok
        if not missing.any():
            return filled
    done = ~missing
    filled[missing] = np.interp(hours[missing], hours[done], filled[done])
    return filled


def isolated(hours: np.ndarray, y: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Hours far above (or below) every neighbour at the same phase: a burst, not the cycle.

    An hour is isolated when it departs, in the same direction, from each of the same hour
    a day and a week before and after it that was seen, by more than `ISOLATED_Z` times the
    day-to-day scatter of its hour of the day (a robust scale: the median absolute
    difference), and it has a neighbour after it. A weekly rhythm agrees with the same
    hour a week away, a level shift with the hours after it, and the newest day, which
    may be the first of a new level, has no neighbour after it: only what stands alone is
    left out. Tweet volumes that
    jump twentyfold for an hour, or a CPU that spikes during a deploy, would otherwise be
    copied into the next week's expectation and read there as an outage.
    """
    n = len(y)
    # each hour's difference from the same hour the day before, for the scale
    day_diff = np.full(n, np.nan)
    both = seen[DAY:] & seen[:-DAY]
    day_diff[DAY:][both] = (y[DAY:] - y[:-DAY])[both]
    hod = hours % DAY
    grid = arranged(hours, day_diff, np.isfinite(day_diff), DAY)
    centre, count = column_medians(grid)
    spread, _ = column_medians(np.abs(grid - centre))
    scale = np.where(count >= MIN_SCATTER_DOF, 1.4826 * spread / np.sqrt(2.0), np.inf)
    bar = ISOLATED_Z * np.maximum(scale[hod], ISOLATED_FLOOR)
    above = np.ones(n, dtype=bool)
    below = np.ones(n, dtype=bool)
    after = np.zeros(n, dtype=bool)
    for lag in (-WEEK, -DAY, DAY, WEEK):
        # each hour against the same hour ``lag`` away, where that one exists and was seen
        here, there = (
            (slice(0, max(n - lag, 0)), slice(lag, n))
            if lag > 0
            else (slice(-lag, n), slice(0, max(n + lag, 0)))
        )
        unseen, diff, limit = ~seen[there], y[here] - y[there], bar[here]
        above[here] &= unseen | (diff > limit)
        below[here] &= unseen | (diff < -limit)
        if lag > 0:
            after[here] |= seen[there]
    return seen & after & (above | below)


def stand_in(
    hours: np.ndarray,
    y: np.ndarray,
    good: np.ndarray,
    filled: np.ndarray,
    anchor: int,
    slope: float,
) -> np.ndarray:
    """Hours before the current normal, when none of them is used, stood in for by the new
    normal's own weeks carried back along its slope.

    Once the new normal has a week of its own, the old one no longer teaches the model
    anything (`episodes`), and `fill` copies the new weeks back over it. Copied as they are,
    the weeks of a metric that keeps growing repeat as a sawtooth that the decomposition
    reads as a weekly cycle, and the growth vanishes from the trend; carried back along
    the slope the model has learned of the new normal (``slope``, per hour), they
    continue it.
    """
    before = hours < anchor
    if good[before].any() or not (good & ~before).any():
        return filled
    out = filled.copy()
    # each hour before the anchor from the first good hour at its phase after the anchor,
    # all of them a week further at a time
    at = np.flatnonzero(before)
    src = at + -(-(anchor - hours[at]) // WEEK) * WEEK
    searching = src < len(y)
    searching[searching] = ~good[src[searching]]
    while searching.any():
        src[searching] += WEEK
        searching &= src < len(y)
        searching[searching] = ~good[src[searching]]
    found = src < len(y)
    at, src = at[found], src[found]
    out[at] = y[src] - slope * (hours[src] - hours[at])
    return out
