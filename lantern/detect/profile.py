"""The cycle and trend a baseline is built from (`model.fit_baseline`).

The trend is STL(7) on the days' means (`weekly_trend`); the cycle by hour of the week is
taken as robust averages of the detrended hours, shrunk towards a smooth version of
itself as far as its own scatter says it is noise (`weekly_profile`), or, for a value
model with a single week of history, STL(24)'s last daily cycle with a shrunk day-of-week
effect (`young_value_profile`).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
from statsmodels.tsa.seasonal import STL

from lantern.detect import arrays
from lantern.detect.series import DAY, WEEK

# loess jumps: STL evaluates its smoothers every few points and interpolates between them,
# which changes the fit by far less than the noise and makes it ten times faster
_STL_SPEED = {"seasonal_jump": 3, "trend_jump": 5, "low_pass_jump": 5}
MIN_SCATTER_DOF = 6  # weeks' scatter by hour of day that measure a slot's noise
ROBUST_WIDTH = 2.5  # robust scales from its slot's median beyond which a value is pulled in


def weekly_trend(y: np.ndarray) -> np.ndarray:
    """The trend of an hourly series by STL with a weekly period, run on its daily means.

    A day's mean holds every hour of the day once, so the daily cycle cancels from it
    exactly; STL(7) on those means then parts the days of the week from the trend (as the
    weekly stage of MSTL would, at a fraction of its cost: one value a day, not 24). The
    daily trend is drawn back onto the hours as a line through the days' centres, carried
    on at each end. Days are counted back from the last hour, so the last day is whole.
    """
    n_days = len(y) // DAY
    start = len(y) - n_days * DAY
    means = arrays.row_means(y[start:].reshape(n_days, DAY))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        daily = np.asarray(STL(means, period=7).fit().trend)
    centres = start + DAY * np.arange(n_days) + (DAY - 1) / 2
    hours = np.arange(len(y), dtype=float)
    trend = np.interp(hours, centres, daily)
    head, tail = hours < centres[0], hours > centres[-1]
    trend[head] = daily[0] + (daily[1] - daily[0]) / DAY * (hours[head] - centres[0])
    trend[tail] = daily[-1] + (daily[-1] - daily[-2]) / DAY * (hours[tail] - centres[-1])
    return trend


def weekly_profile(
    hours: np.ndarray, detrended: np.ndarray, good: np.ndarray, counts: np.ndarray | None
) -> np.ndarray:
    """The cycle by hour-of-week (168 values, mean zero) as averages, shrunk to their evidence.

    STL's last cycle is an end-point estimate (a local line through each hour's few weekly
    values, extrapolated to the last week): at a few events an hour it copies the noise
    of the last weeks into the forecast. Here the daily cycle is the mean of the
    detrended hours by hour of day (some 28 values each); what is left, by hour of the
    week, is the weekly rhythm (both means winsorized, `_slot_means`, so that a burst is
    no rhythm), smoothed over neighbouring hours and pulled towards that
    smooth version as far as its own scatter says it is noise (empirical Bayes, James &
    Stein): a weekend that is quieter by a factor of three stands, the chance of a slow
    Tuesday at 4 a.m. does not. A slot's noise is the larger of that scatter (once there
    are a few weeks to measure it) and, for counts, the Poisson variance of ``log1p`` at
    the hour's mean count, so that one week of history is shrunk as far as it deserves.
    """
    hod, how = hours % DAY, hours % WEEK
    n_day = np.bincount(hod, weights=good, minlength=DAY)
    daily = _slot_means(hours, detrended, good, DAY)
    rest = np.where(good, detrended - daily[hod], 0.0)
    n = np.bincount(how, weights=good, minlength=WEEK)
    # a slot has one to four weeks' values: each is judged against the median of its own
    # and its neighbouring hours' values, so that a burst is not a weekly rhythm
    raw = _slot_means(hours, rest, good, WEEK, neighbours=2, group=DAY)
    # each slot's noise: the scatter of its weeks around their mean, pooled by hour of day
    sq = np.bincount(how, weights=np.where(good, (rest - raw[how]) ** 2, 0.0), minlength=WEEK)
    slot_hod = np.arange(WEEK) % DAY
    dof = np.bincount(slot_hod, weights=np.maximum(n - 1, 0), minlength=DAY)
    pooled = np.bincount(slot_hod, weights=sq, minlength=DAY) / np.maximum(dof, 1)
    pooled = np.where(dof >= MIN_SCATTER_DOF, pooled, 0.0)
    typical = None
    if counts is not None:
        c = np.where(good, counts, 0.0)  # (good hours have counts: their log is finite)
        typical = np.bincount(hod, weights=c, minlength=DAY) / np.maximum(n_day, 1)
        pooled = np.maximum(pooled, typical / (typical + 1.0) ** 2)
    noise = pooled[slot_hod] / np.maximum(n, 1)
    kernel = np.array([1.0, 2.0, 3.0, 2.0, 1.0])
    wrap = np.concatenate([raw[-2:], raw, raw[:2]])
    smooth = np.convolve(wrap, kernel / kernel.sum(), "valid")
    if (dof < MIN_SCATTER_DOF).all():
        smooth, noise = _one_week(raw, smooth, noise)
        centre = smooth
    else:
        centre = _shrunk_smooth(raw, smooth, noise, typical)
    signal = max(arrays.mean((raw - smooth) ** 2) - arrays.mean(noise), 1e-6)
    weekly = centre + signal / (signal + noise) * (raw - smooth)
    profile = daily[slot_hod] + weekly
    return profile - arrays.mean(profile)


# the share of white noise's variance that the mean square of (x - its 5-hour smooth)
# keeps: 1 - 2 * 3/9 + (1 + 4 + 9 + 4 + 1) / 81
ROUGH_SHARE = 1.0 - 2.0 * 3.0 / 9.0 + 19.0 / 81.0


def _one_week(
    raw: np.ndarray, smooth: np.ndarray, noise: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A young cycle's shrinkage target and noise, which no scatter across weeks gives yet.

    Until the hours of the day have `MIN_SCATTER_DOF` repeats to measure a slot's scatter,
    one week cannot tell a weekly rhythm from one unusual evening: six hours of a
    Wednesday that ran high by chance look like a rhythm, and a smooth over neighbouring
    hours keeps them (in three of six demos the next, ordinary, Wednesday evening was
    told as a level shift down). So the target is each day's own level (a weekend that
    is quieter stands; a weekend whose hours differ in shape keeps its shape as far as
    the hours' spread about their days' levels exceeds the noise), and the noise is read
    from how rough the hours are about their smooth, which holds the overdispersion that
    the Poisson variance leaves out.
    """
    target = _day_levels(raw, None)
    rough = arrays.mean((raw - smooth) ** 2) / ROUGH_SHARE
    return target, np.maximum(noise, rough)


def _shrunk_smooth(
    raw: np.ndarray, smooth: np.ndarray, noise: np.ndarray, typical: np.ndarray | None
) -> np.ndarray:
    """The smooth weekly rhythm pulled towards each day's own level, as far as its own
    noise says (the second stage of a two-stage empirical Bayes).

    The smooth over five neighbouring hours keeps what their noise has in common: with two
    or three weeks of history, an afternoon that ran high on the Tuesdays seen so far is
    a smooth bump that the first stage, which only pulls each slot towards the smooth,
    leaves in the forecast of every Tuesday after (in the demo, six hours of a Tuesday
    were expected 30% above their truth, and their ordinary values read as a level shift
    down). So the smooth is shrunk in turn towards the day's level (`_day_levels`), by
    its signal over its noise, day of the week by day of the week: a smooth of white
    noise of variance ``v`` has variance ``v * 19 / 81`` (the kernel's squared weights),
    and a day's signal is what its smooth's spread about its level holds beyond that. A
    weekly shape the weeks agree on (a weekend without the weekdays' rush hours) stands;
    a bump that one or two weeks made does not.
    """
    target = _day_levels(raw, typical)
    smooth_noise = noise * SMOOTH_SHARE
    by_day = arrays.row_means(((smooth - target) ** 2 - smooth_noise).reshape(WEEK // DAY, DAY))
    signal = np.repeat(np.maximum(by_day, 1e-6), DAY)
    return target + signal / (signal + smooth_noise) * (smooth - target)


def _day_levels(raw: np.ndarray, typical: np.ndarray | None) -> np.ndarray:
    """Each day of the week's level as a weekly offset by hour of the week (168 values).

    On a scale that is linear in the metric, a day's level is its mean offset. A count
    is modelled on ``log1p``, where a day that has a factor ``f`` more events is not a
    constant offset: ``log1p(f c) - log1p(c)`` is ``log f`` at a busy hour but nearer
    zero at an hour of a few events. So with ``typical``, the mean count of each hour of
    the day, a day's level is the factor ``f`` whose offsets have the day's mean offset
    (by Newton's method on ``log f``), spread over its hours as that factor would: a Sunday at
    a third of the weekdays is a third at each hour, not a third at noon and less than
    that at night.
    """
    level = arrays.row_means(raw.reshape(WEEK // DAY, DAY))
    if typical is None or not (typical > 0).any():
        return np.repeat(level, DAY)
    base = np.log1p(typical)
    # Newton's method on the mean offset, which is increasing and convex in log f, kept
    # inside a bracket that every step narrows (a step outside it bisects instead)
    low, high = np.full(level.shape, -LOG_FACTOR_BOUND), np.full(level.shape, LOG_FACTOR_BOUND)
    log_factor = np.clip(level, low, high)
    for _ in range(LEVEL_STEPS):
        scaled = np.exp(log_factor)[:, None] * typical[None, :]
        gap = arrays.row_means(np.log1p(scaled) - base[None, :]) - level
        above = gap > 0
        high, low = np.where(above, log_factor, high), np.where(above, low, log_factor)
        slope = arrays.row_means(scaled / (1.0 + scaled))
        step = log_factor - gap / np.maximum(slope, 1e-12)
        inside = (step > low) & (step < high)
        log_factor = np.where(inside, step, (low + high) / 2)
        if (np.abs(gap) < 1e-12).all():
            break
    factor = np.exp(log_factor)
    return (np.log1p(factor[:, None] * typical[None, :]) - base[None, :]).reshape(-1)


# a day's log factor is sought in [-bound, bound] (`_day_levels`), by at most this many
# Newton steps (from a start at the day's mean offset it takes four to six)
LOG_FACTOR_BOUND = 12.0
LEVEL_STEPS = 12
# the share of white noise's variance that its 5-hour smooth (weights 1, 2, 3, 2, 1) keeps
SMOOTH_SHARE = 19.0 / 81.0


def arranged(hours: np.ndarray, values: np.ndarray, good: np.ndarray, size: int) -> np.ndarray:
    """``values`` as rows of ``size`` slots (by ``hours % size``), NaN where not good."""
    offset = int(hours[0] % size)
    rows = -(-(offset + len(values)) // size)
    out = np.full(rows * size, np.nan)
    out[offset : offset + len(values)] = np.where(good, values, np.nan)
    return out.reshape(rows, size)


def _slot_means(
    hours: np.ndarray,
    values: np.ndarray,
    good: np.ndarray,
    size: int,
    *,
    neighbours: int = 0,
    group: int = 1,
) -> np.ndarray:
    """The mean of the good values by slot (``hours % size``), robust to a burst.

    Each value is first pulled in to within `ROBUST_WIDTH` robust scales of the median of
    its slot's values and those of ``neighbours`` slots either side (the scale: 1.4826
    times the median absolute deviation from those medians, over each ``group`` of
    consecutive slots), as a winsorized mean would: a burst in one week moves its slot's
    mean by little, a rhythm the weeks share stands, and a weekend that scatters more than
    the weekdays is judged by its own scatter. A slot whose median rests on fewer than
    three values is a plain mean.
    """
    grid = arranged(hours, values, good, size)
    count = np.isfinite(grid).sum(axis=0)
    rows = grid.shape[0]
    if neighbours:
        near = grid[:, _neighbour_slots(size, neighbours)].transpose(1, 0, 2).reshape(size, -1)
        median, in_reach = column_medians(near.T)
    else:
        median, in_reach = column_medians(grid)  # each slot's values are its own column
    dev = grid - median
    if group > 1:
        absdev = np.abs(dev).reshape(rows, size // group, group).transpose(1, 0, 2)
        spread = 1.4826 * column_medians(absdev.reshape(size // group, -1).T)[0].repeat(group)
    else:
        spread = 1.4826 * column_medians(np.abs(dev))[0]
    bound = ROBUST_WIDTH * np.where(np.isfinite(spread) & (spread > 0), spread, np.inf)
    pulled = median + np.minimum(np.maximum(dev, -bound), bound)  # (np.clip, unwrapped)
    grid = np.where((in_reach >= 3)[None, :], pulled, grid)
    sums = np.where(np.isfinite(grid), grid, 0.0).sum(axis=0)
    return np.where(count > 0, sums / np.maximum(count, 1), 0.0)


@functools.cache
def _neighbour_slots(size: int, neighbours: int) -> np.ndarray:
    """Each slot's own index and its ``neighbours`` either side, wrapping (size x 2n+1;
    shared between calls: read-only)."""
    slots = (np.arange(size)[:, None] + np.arange(-neighbours, neighbours + 1)) % size
    slots.setflags(write=False)
    return slots


def column_medians(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(median, count) of the finite values of each column of ``grid``; NaN where none.

    By one sort (NaN sorts last), not `np.nanmedian`, which costs ten times as much on the
    small grids a refit has.
    """
    rows, width = grid.shape
    count = np.isfinite(grid).sum(axis=0)
    if rows == 0:
        return np.full(width, np.nan), count
    # the middle two of each column's finite values (one where their count is odd), read
    # from the sorted grid by flat index: row * width + column
    ordered = np.sort(grid, axis=0).ravel()
    cols = np.arange(width)
    lo, hi = np.maximum(count - 1, 0) // 2 * width + cols, count // 2 * width + cols
    median = (ordered[lo] + ordered[hi]) / 2
    return np.where(count > 0, median, np.nan), count


def young_value_profile(
    hours: np.ndarray, filled: np.ndarray, good: np.ndarray, upto: int
) -> np.ndarray:
    """STL(24)'s last daily cycle before hour index ``upto``, plus a day-of-week effect.

    One week of history: the day-of-week effect comes from what STL left, smoothed over
    neighbouring hours and shrunk towards none, since it rests on one sample a slot.
    Returns 168 values by hour of week, mean zero.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stl = STL(filled, period=DAY, **_STL_SPEED).fit(inner_iter=2)
    seasonal = np.asarray(stl.seasonal)[:upto]
    hours, good, rest = hours[:upto], good[:upto], (filled - np.asarray(stl.seasonal))[:upto]
    phase = hours % WEEK
    daily = np.zeros(DAY)
    daily[hours[-DAY:] % DAY] = seasonal[-DAY:]
    profile = daily[np.arange(WEEK) % DAY]
    sums = np.bincount(
        phase[good], weights=(rest - arrays.median(rest[good]))[good], minlength=WEEK
    )
    counts = np.bincount(phase[good], minlength=WEEK)
    kernel = np.ones(5) / 5
    wrap = np.concatenate([sums[-2:], sums, sums[:2]])
    wrapn = np.concatenate([counts[-2:], counts, counts[:2]]).astype(float)
    smooth = np.convolve(wrap, kernel, "valid") / np.maximum(
        np.convolve(wrapn, kernel, "valid"), 1e-9
    )
    profile = profile + smooth * (counts / (counts + 0.25))
    return profile - arrays.mean(profile)
