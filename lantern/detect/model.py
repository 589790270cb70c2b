"""The baseline: a seasonal-trend decomposition, a robust log-linear level and a count noise model.

A `Baseline` is fitted on the hours before its ``fit_hour`` and forecasts the expected
value of any hour near it. It is frozen, small and JSON-serialisable, so a metric's state
can carry it between hourly passes.

Value metrics (the hourly sum of an event property, e.g. revenue) that are never negative
are modelled as *pseudo-counts*. A sum of a Poisson number of amounts X is compound
Poisson, ``Var(S) = lambda * E[X^2] = u * E[S]`` with the unit ``u = E[X^2] / E[X]``: its
variance grows with its mean as a count's does, only ``u`` times larger. So the values
are divided by ``u`` (estimated from the fit window by `value_unit`, again at every refit)
and the count model, its negative-binomial noise and every count detector run on
``values / u``; `Baseline.expected` and `Baseline.band` multiply back, so whoever reads a
baseline sees currency, not pseudo-counts. An hour without a value is an hour without
events (a zero) where that is plausible, at most `EMPTY_MEAN` pseudo-events expected;
elsewhere it is a gap in the data that says nothing (an outage of the event is then its
count metric's to report). Series with negative values keep a Gaussian model on the raw
values.

Means (hourly averages of a measurement: a load time, a price) are fitted on the Gaussian
path too, and when the number of events behind each hour is known their noise is that of
a mean (`mean_noise`): an hour's average of ``n`` values departs from its expectation with
variance ``tau^2 + sigma_w^2 / n``, where ``sigma_w^2`` is the variance of one value about
its hour's mean (pooled from the hours' sums of squares where the service kept them, else
read from how the residuals' variance falls with ``1/n``) and ``tau^2`` what no number of
events removes (the hour's mean itself wandering, and the forecast's error). An average of
two checkouts at night is then judged by its own wide spread, one of 300 at noon by its
narrow one (`Baseline.spread`).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from statsmodels.tsa.seasonal import STL

from lantern.detect import arrays
from lantern.detect.series import SeriesKind

DAY = 24
WEEK = 168
FIT_DAYS = 28
LEVEL_DAYS = 14
# loess jumps: STL evaluates its smoothers every few points and interpolates between them,
# which changes the fit by far less than the noise and makes it ten times faster
_STL_SPEED = {"seasonal_jump": 3, "trend_jump": 5, "low_pass_jump": 5}
MAX_SLOPE = 0.15 / DAY  # log change per hour; growth beyond 15%/day is not extrapolated
MODEL_ERROR = 0.04  # relative error of an hour's forecast that no amount of data removes
MIN_SCATTER_DOF = 6  # weeks' scatter by hour of day that measure a slot's noise
ISOLATED_Z = 3.0  # day-to-day scatters beyond which an hour departs from a neighbour
MASS_CAP, MASS_SLACK = 3.0, 10.0  # an hour's count above 3x its expectation + 10 is a burst
ROBUST_WIDTH = 2.5  # robust scales from its slot's median beyond which a value is pulled in
ISOLATED_FLOOR = 0.05  # least scatter (log) of an hour from day to day, for `_isolated`
DISPERSION_BOUND = 4.0  # standard deviations at which an hour's deviation is winsorized
DISPERSION_STEPS = 20  # at most, to the fixed point of `_dispersion`'s winsorized estimate
DISPERSION_INFLATE = 1.3  # a forecast's error over the fit's in-sample error, in variance
EMPTY_MEAN = 9.0  # pseudo-events expected above which an hour without a value is a gap (e^-9)
# the median of a chi-square with one degree of freedom: a robust variance is the median
# square over it (the square of 1.4826 times the median absolute deviation)
MEDIAN_CHI2_1 = 0.454936423119572
# a mean's noise is weighed by its events once this many fitted hours have a known count,
# and its values' own spread is pooled from their sums of squares once those give this
# many degrees of freedom (else it is read from day-over-day differences,
# `_within_from_differences`, refined this many times)
MIN_COUNTED_HOURS = DAY
MIN_WITHIN_DOF = 2 * DAY
VARIANCE_ITERATIONS = 8


@dataclass(frozen=True)
class Baseline:
    """A fitted model of one metric: expected(h) = level + slope*(h - fit_hour) + profile.

    ``kind`` is the noise model: "count" for counts and for non-negative values judged as
    pseudo-counts (``unit`` > 0 is then the value of one pseudo-event), "value" for the
    Gaussian model of series that can go negative and of means. A mean fitted with the
    number of events behind each hour carries ``between`` (``tau^2``) and ``within``
    (``sigma_w^2``): its hour of ``n`` events has the standard deviation
    ``sqrt(tau^2 + sigma_w^2 / n)`` (`spread`); without them every hour has ``dispersion``.
    """

    kind: SeriesKind
    fit_hour: int  # hours since the epoch; the model saw only hours before it
    level: float
    slope: float
    profile: tuple[float, ...]  # 168 seasonal offsets, indexed by hour-of-week
    scale: float  # counts: mass correction; values: 1
    dispersion: float  # counts: negative-binomial phi; values: residual standard deviation
    weekly: bool
    unit: float = 1.0  # the value of one pseudo-event; 1 for counts and Gaussian values
    between: float | None = None  # a mean's variance that no number of events removes
    within: float | None = None  # a mean's variance of one event's value about its hour's

    @property
    def weighted(self) -> bool:
        """Whether each hour's noise depends on the events behind it (a mean's)."""
        return self.between is not None and self.within is not None

    def spread(self, counts: np.ndarray) -> np.ndarray:
        """Each hour's standard deviation about expectation on the Gaussian path, from the
        events behind it: ``sqrt(between + within / n)``; ``dispersion`` where ``n`` is
        unknown (NaN or not positive) or the model is not `weighted`."""
        n = np.asarray(counts, dtype=float)
        if self.between is None or self.within is None:
            return np.full(n.shape, self.dispersion)
        known = np.isfinite(n) & (n > 0)
        per_hour = np.sqrt(self.between + self.within / np.where(known, n, 1.0))
        return np.where(known, per_hour, self.dispersion)

    def log_expected(self, hours: np.ndarray) -> np.ndarray:
        """Expected value of each hour on the model's transformed scale."""
        profile = np.asarray(self.profile)
        return self.level + self.slope * (hours - self.fit_hour) + profile[hours % WEEK]

    def expected(self, hours: np.ndarray) -> np.ndarray:
        """Expected value of each hour (a count or a value)."""
        raw = self.log_expected(hours)
        if self.kind == "count":
            return self.unit * np.maximum(self.scale * np.expm1(raw), 0.0)
        return raw

    def band(
        self, expected: np.ndarray, width: float = 3.0, counts: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The (lower, upper) range around ``expected`` that insights report: three sigmas.

        ``counts`` (aligned to ``expected``) are the events behind each hour of a mean: a
        `weighted` model's band is then each hour's own (`spread`).
        """
        if self.kind == "count":
            mean = expected / self.unit
            spread = self.unit * width * np.sqrt(mean + self.dispersion * mean**2)
            return np.maximum(expected - spread, 0.0), expected + spread
        if counts is not None and self.weighted:
            spread = width * self.spread(counts)
        else:
            spread = np.full(np.shape(expected), width * self.dispersion)
        return expected - spread, expected + spread

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (a mean's noise by its events only where it has one, so that
        every other model is stored as it always was)."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "fit_hour": self.fit_hour,
            "level": self.level,
            "slope": self.slope,
            "profile": list(self.profile),
            "scale": self.scale,
            "dispersion": self.dispersion,
            "weekly": self.weekly,
            "unit": self.unit,
        }
        if self.weighted:
            data["between"], data["within"] = self.between, self.within
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        """Inverse of `to_dict`; a model stored before a field existed takes its default."""
        return cls(**{**data, "profile": tuple(data["profile"])})


def transform(values: np.ndarray, kind: SeriesKind) -> np.ndarray:
    """The scale the model works on: log1p for counts, the values themselves otherwise."""
    return np.log1p(values) if kind == "count" else values.astype(float)


def fit_baseline(
    hours: np.ndarray,
    values: np.ndarray,
    usable: np.ndarray,
    *,
    kind: SeriesKind,
    fit_hour: int,
    anchor: int | None = None,
    reshaped: bool = False,
    prior: Baseline | None = None,
    prior_slope: float | None = None,
    carried_slope: float | None = None,
    counts: np.ndarray | None = None,
    within: np.ndarray | None = None,
) -> Baseline:
    """Fit a baseline on ``values`` at ``hours`` (all before ``fit_hour``).

    ``usable`` marks the hours to learn from; the others (anomalous episodes, gaps) are
    filled from ``prior`` or by interpolation before the decomposition. ``anchor`` is the
    start of the current normal: the level and slope are learned from hours after it only,
    and when ``reshaped`` (the cycle itself changed there) the daily profile is corrected by
    the hours after it too. Non-negative values are fitted as pseudo-counts (see the module
    docstring), which decides which of their missing hours are zeros: ``usable`` should not
    exclude missing values. ``carried_slope`` is the slope along which the hours before
    ``anchor`` are stood in for once none of them is used (`_stand_in`): the slope the
    last model learned of the new normal. ``counts`` (a mean's events behind each hour, NaN
    where unknown) and ``within`` (the variance of those events' values within each hour,
    NaN where unknown) give a mean its noise by events (`mean_noise`); other kinds
    ignore them.
    """
    unit = 1.0
    # a mean's events by hour, and their spread (``counts`` is a name the fit reuses below)
    events, events_spread = (counts, within) if kind == "mean" else (None, None)
    if kind == "mean":
        # an hourly average (a load time, a price, a CPU %): its noise is its own, measured
        # from the fit's residuals on the Gaussian path; it is never a sum of events
        kind = "value"
    elif kind == "value" and is_pseudo_count(values[usable]):
        unit = value_unit(hours, values, usable)
        pseudo = values / unit
        typical = np.zeros(DAY)
        for h in range(DAY):
            seen = pseudo[(hours % DAY == h) & usable & np.isfinite(pseudo)]
            typical[h] = arrays.median(seen) if seen.size else 0.0
        values = empty_as_zero(pseudo, typical[hours % DAY])
        kind = "count"
    y = transform(values, kind)
    seen = usable & np.isfinite(y)
    if seen.sum() < DAY:
        raise ValueError("fewer than 24 usable hours to fit on")
    # a burst or a dip of an hour teaches the model nothing: it is left out of the fit (how
    # often a metric bursts is the tails' business, `tails`)
    good = seen & ~_isolated(hours, y, seen)
    filled = _fill(hours, y, good)
    if anchor is not None and hours[0] < anchor and abs(carried_slope or 0.0) * WEEK > MODEL_ERROR:
        # (a slope that moves the level by less than a forecast's error in a week is none)
        filled = _stand_in(hours, y, good, filled, anchor, float(carried_slope or 0.0))
    weekly = len(y) >= 2 * WEEK + DAY
    # one week cannot tell a trend from the days of the week (STL(24)'s trend follows them,
    # a line through a week ending on a quiet weekend falls): a young model's cycle is
    # taken from the hours as they are, its trend from the deseasonalised days
    trend = _weekly_trend(filled) if weekly else arrays.median(filled[good])
    detrended = filled - trend

    start = max(fit_hour - LEVEL_DAYS * DAY, anchor if anchor is not None else -(2**62))
    window = good & (hours >= start)
    if window.sum() < 6:
        window = good & (hours >= fit_hour - 6 * DAY)
    if window.sum() < 6:
        # every recent hour is an episode's (an adopted change ended back at the old normal
        # and a new one opened at once): the level is read from what the fit may learn from
        window = good
    # after a change of cycle less than a week old, STL's last cycle mixes old and new
    # hours; take the cycle as it was before the change and correct it below
    fresh = reshaped and anchor is not None and hours[-1] - anchor < WEEK
    upto = int(np.searchsorted(hours, anchor)) if fresh and anchor is not None else len(hours)
    if upto < WEEK:
        upto = len(hours)
    if weekly or kind == "count":
        counts = values[:upto] if kind == "count" else None
        profile = _weekly_profile(hours[:upto], detrended[:upto], good[:upto], counts)
    else:
        # a young value model that can go negative: STL(24)'s cycle, a shrunk day-of-week
        profile = _young_value_profile(hours, filled, good, upto)
    deseason = y - profile[hours % WEEK]
    slope = _slope(hours[window], deseason[window], fit_hour)
    if slope is None:
        slope = prior_slope if prior_slope is not None else (prior.slope if prior else 0.0)
    slope = float(np.clip(slope, -MAX_SLOPE, MAX_SLOPE))
    level = _level(hours[window], deseason[window], slope, fit_hour)
    if reshaped and anchor is not None and anchor > hours[0] and (window & (hours >= anchor)).any():
        # the cycle learned before the current normal may no longer hold: correct it by
        # what the hours since then say, hour of day by hour of day, shrunk towards none
        after = window & (hours >= anchor)
        resid = (deseason - level - slope * (hours - fit_hour))[after]
        hod = hours[after] % DAY
        sums = np.bincount(hod, weights=resid, minlength=DAY)
        counts = np.bincount(hod, minlength=DAY)
        # shrink as a normal prior of sd 0.3 would: little at high volume, much at low
        noise = arrays.mean(1.0 / (values[after] + 1.0)) if kind == "count" else 0.0
        correction = sums / (counts + (noise + 0.005) / 0.09)
        profile = profile + correction[np.arange(WEEK) % DAY]
        profile -= arrays.mean(profile)
        deseason = y - profile[hours % WEEK]
        level = _level(hours[window], deseason[window], slope, fit_hour)
    fitted = level + slope * (hours - fit_hour) + profile[hours % WEEK]
    if kind == "count":
        mean = np.expm1(fitted[window])
        # the mass the log scale loses, from hours as the model sees them: a burst's
        # twentyfold hour counts as a threefold one, or a bursty metric's every hour is
        # expected higher than it ever is between bursts
        seen_mass = np.minimum(values[window], MASS_CAP * mean + MASS_SLACK).sum()
        scale = float(np.clip((seen_mass + 1) / (mean.sum() + 1), 0.5, 2.0))
        dispersion = _dispersion(values[window], scale * mean)
    else:
        scale = 1.0
        resid = y[window] - fitted[window]
        dispersion = float(1.4826 * arrays.median(np.abs(resid - arrays.median(resid))) + 1e-9)
    by_events = None
    if events is not None:
        by_events = mean_noise(hours, y, fitted, good, window, events, events_spread)
    return Baseline(
        kind=kind,
        fit_hour=int(fit_hour),
        level=float(level),
        slope=slope,
        profile=tuple(profile.tolist()),
        scale=scale,
        dispersion=dispersion,
        weekly=weekly,
        unit=unit,
        between=by_events[0] if by_events else None,
        within=by_events[1] if by_events else None,
    )


def mean_noise(
    hours: np.ndarray,
    y: np.ndarray,
    fitted: np.ndarray,
    good: np.ndarray,
    window: np.ndarray,
    counts: np.ndarray,
    within: np.ndarray | None,
) -> tuple[float, float] | None:
    """``(tau^2, sigma_w^2)`` of a mean whose hour of ``n`` events has the residual variance
    ``tau^2 + sigma_w^2 / n``; None where the events cannot tell (too few hours with a
    known count, or no sign that fewer events scatter more).

    ``y`` are the fit's hourly means, ``fitted`` the model's, ``good`` the hours it learned
    from and ``window`` those its spread is measured on (`fit_baseline`'s). ``sigma_w^2``,
    the variance of one event's value about its hour's mean, is the pooled within-hour
    variance ``sum((n_h - 1) s_h^2) / sum(n_h - 1)`` of the window's hours whose
    ``within`` (``s_h^2``, from the buckets' sums of squares) is known, once those give
    `MIN_WITHIN_DOF` degrees of freedom; otherwise it is read from how the hours'
    day-over-day differences widen as their events fall (`_within_from_differences`).
    ``tau^2`` then solves the robust moment equation
    ``median(r_h^2 / (tau^2 + sigma_w^2 / n_h)) = median(chi^2_1)`` over the window's
    residuals ``r_h``: the weighted form of the plain model's 1.4826 MAD (with every ``n``
    equal, the two agree), floored at zero, since a metric whose hourly averages scatter
    as their events alone say has no other noise.
    """
    resid, n = (y - fitted)[window], counts[window]
    known = np.isfinite(resid) & np.isfinite(n) & (n > 0)
    if np.count_nonzero(known) < MIN_COUNTED_HOURS:
        return None
    r = resid[known] - arrays.median(resid[known])
    n, squares = n[known], r**2
    pooled = _pooled_within(n, within[window][known]) if within is not None else None
    if pooled is None:
        pooled = _within_from_differences(hours, y, good, counts)
    if not pooled > 0:
        return None
    return _between(squares, n, pooled), pooled


def _pooled_within(counts: np.ndarray, within: np.ndarray) -> float | None:
    """The pooled within-hour variance of the hours whose own is known; None with fewer
    than `MIN_WITHIN_DOF` degrees of freedom."""
    dof = np.where(np.isfinite(within) & (counts >= 2), counts - 1.0, 0.0)
    if dof.sum() < MIN_WITHIN_DOF:
        return None
    return float(np.sum(dof * np.where(dof > 0, within, 0.0)) / dof.sum())


def _within_from_differences(
    hours: np.ndarray, y: np.ndarray, good: np.ndarray, counts: np.ndarray
) -> float:
    """``sigma_w^2`` from how an hour's difference from the same hour a day before widens
    with the events behind the two.

    ``Var(y_h - y_{h-24}) = 2 tau^2 + sigma_w^2 (1/n_h + 1/n_{h-24})``: the hour's own
    expectation and its cycle cancel from the difference, and so does the fit, whose
    residuals understate the noise of the hours it was fitted on. The squared differences
    of the pairs of good hours are regressed on ``(1, 1/n_h + 1/n_{h-24})`` by iteratively
    reweighted least squares, each weighed by the inverse square of its fitted variance
    (the variance-function estimate of Davidian and Carroll 1987), through the origin
    where the intercept comes out negative; the slope is ``sigma_w^2``. Zero where the
    counts do not vary or the differences do not widen as they fall.
    """
    ok = good & np.isfinite(counts) & (counts > 0)
    pair = ok[DAY:] & ok[:-DAY] & (hours[DAY:] - hours[:-DAY] == DAY)
    if np.count_nonzero(pair) < MIN_COUNTED_HOURS:
        return 0.0
    squares = ((y[DAY:] - y[:-DAY])[pair]) ** 2
    x = (1.0 / counts[DAY:][pair]) + (1.0 / counts[:-DAY][pair])
    if np.ptp(x) <= 0:
        return 0.0
    intercept, slope = arrays.mean(squares), 0.0
    for _ in range(VARIANCE_ITERATIONS):
        w = 1.0 / np.maximum(intercept + slope * x, 1e-300) ** 2
        sw, sx, sxx = w.sum(), (w * x).sum(), (w * x * x).sum()
        sy, sxy = (w * squares).sum(), (w * x * squares).sum()
        slope = float((sw * sxy - sx * sy) / (sw * sxx - sx**2))
        intercept = float((sy - slope * sx) / sw)
        if slope <= 0:
            return 0.0
        if intercept < 0:
            intercept, slope = 0.0, float(sxy / sxx)
    return slope


def _between(squares: np.ndarray, counts: np.ndarray, sigma2: float) -> float:
    """``tau^2 >= 0`` with ``median(squares / (tau^2 + sigma2 / counts)) = MEDIAN_CHI2_1``,
    by bisection (the median falls as ``tau^2`` grows)."""
    own = sigma2 / counts
    if arrays.median(squares / own) <= MEDIAN_CHI2_1:
        return 0.0
    # at this bound every ratio is below squares / bound, whose median is MEDIAN_CHI2_1
    low, high = 0.0, arrays.median(squares) / MEDIAN_CHI2_1
    for _ in range(48):
        middle = (low + high) / 2
        if arrays.median(squares / (middle + own)) > MEDIAN_CHI2_1:
            low = middle
        else:
            high = middle
    return high


def is_pseudo_count(values: np.ndarray) -> bool:
    """Whether a value series is judged as pseudo-counts: some positive value, none negative."""
    finite = values[np.isfinite(values)]
    return bool(finite.size and (finite >= 0).all() and (finite > 0).any())


def empty_as_zero(pseudo: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Pseudo-counts with missing hours as zeros where an empty hour is plausible."""
    return np.where(np.isnan(pseudo) & (expected <= EMPTY_MEAN), 0.0, pseudo)


def value_unit(hours: np.ndarray, values: np.ndarray, usable: np.ndarray) -> float:
    """The compound-Poisson unit ``E[X^2]/E[X]`` of hourly sums: their variance per unit of mean.

    Measured on day-over-day differences at each hour of the day (half their mean square
    over the mean), so that the daily cycle and a trend do not count as noise, and the
    median over hours of the day, so that a bad day or a weekly rhythm weighs little.
    Missing hours are left out. With too little data, the mean square over the mean of the
    non-zero hours, as if each held one event.
    """
    y = np.where(usable, values, np.nan)
    if len(y) > DAY:
        diff = y[DAY:] - y[:-DAY]
        mean = (y[DAY:] + y[:-DAY]) / 2
        hod = hours[DAY:] % DAY
        ratios = []
        for h in range(DAY):
            pick = (hod == h) & np.isfinite(diff)
            if pick.sum() >= 3 and mean[pick].mean() > 0:
                ratios.append(float(np.mean(diff[pick] ** 2) / 2 / mean[pick].mean()))
        if len(ratios) >= DAY // 2 and np.median(ratios) > 0:
            return float(np.median(ratios))
    positive = y[np.isfinite(y) & (y > 0)]
    if positive.size == 0:
        return 1.0
    return float(np.mean(positive**2) / np.mean(positive))


def _fill(hours: np.ndarray, y: np.ndarray, good: np.ndarray) -> np.ndarray:
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


def _isolated(hours: np.ndarray, y: np.ndarray, seen: np.ndarray) -> np.ndarray:
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
    grid = _arranged(hours, day_diff, np.isfinite(day_diff), DAY)
    centre, count = _column_medians(grid)
    spread, _ = _column_medians(np.abs(grid - centre))
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


def _stand_in(
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
    anything (`stream`), and `_fill` copies the new weeks back over it. Copied as they are,
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


def _weekly_trend(y: np.ndarray) -> np.ndarray:
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


def _weekly_profile(
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


def _arranged(hours: np.ndarray, values: np.ndarray, good: np.ndarray, size: int) -> np.ndarray:
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
    grid = _arranged(hours, values, good, size)
    count = np.isfinite(grid).sum(axis=0)
    rows = grid.shape[0]
    if neighbours:
        near = grid[:, _neighbour_slots(size, neighbours)].transpose(1, 0, 2).reshape(size, -1)
        median, in_reach = _column_medians(near.T)
    else:
        median, in_reach = _column_medians(grid)  # each slot's values are its own column
    dev = grid - median
    if group > 1:
        absdev = np.abs(dev).reshape(rows, size // group, group).transpose(1, 0, 2)
        spread = 1.4826 * _column_medians(absdev.reshape(size // group, -1).T)[0].repeat(group)
    else:
        spread = 1.4826 * _column_medians(np.abs(dev))[0]
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


def _column_medians(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _young_value_profile(
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


def _slope(hours: np.ndarray, deseason: np.ndarray, fit_hour: int) -> float | None:
    """Theil-Sen slope per hour through daily means; None with fewer than 4 days."""
    days, means = _day_means(hours, deseason, fit_hour)
    if len(days) < 4:
        return None
    centre = -days.astype(float) * DAY
    i, j = _pairs(len(days))
    return arrays.median((means[j] - means[i]) / (centre[j] - centre[i]))


@functools.cache
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of indices i < j below n (`np.triu_indices`), kept for reuse (read-only)."""
    i, j = np.triu_indices(n, 1)
    i.setflags(write=False)
    j.setflags(write=False)
    return i, j


def _level(hours: np.ndarray, deseason: np.ndarray, slope: float, fit_hour: int) -> float:
    """Level at ``fit_hour``: median over days of each day's mean detrended value."""
    detrended = deseason - slope * (hours - fit_hour)
    days, means = _day_means(hours, detrended, fit_hour)
    if len(days) < 3:
        return arrays.mean(detrended)
    return arrays.median(means)


def _day_means(
    hours: np.ndarray, values: np.ndarray, fit_hour: int
) -> tuple[np.ndarray, np.ndarray]:
    """(days back from ``fit_hour``, each day's mean of ``values``)."""
    # hours ascend, so the days back descend: each new day starts where the day changes
    day = (fit_hour - 1 - hours) // DAY
    new_day = np.empty(len(day), dtype=bool)
    new_day[:1] = True
    np.not_equal(day[1:], day[:-1], out=new_day[1:])
    days = day[new_day][::-1]
    which = len(days) - np.cumsum(new_day)
    sums = np.bincount(which, weights=values, minlength=len(days))
    return days, sums / np.maximum(np.bincount(which, minlength=len(days)), 1)


def _dispersion(counts: np.ndarray, mean: np.ndarray) -> float:
    """Negative-binomial phi by moments on hours with enough volume, robust to bursts.

    Each hour gives an unbiased estimate of phi, ``((y - m)^2 - m) / m^2``, whose variance
    is about ``2 (1/m + phi)^2``: a quiet hour's is mostly Poisson noise, so the hours are
    weighted by their precision (the quasi-likelihood weights of Breslow 1984), and each
    deviation is first winsorized at `DISPERSION_BOUND` of its own standard deviation
    under the current phi, so that a burst does not pass for noise. The weighted mean less
    one of its standard errors (``sqrt(2 / sum(weight))``) is taken, so that a quiet
    metric's chance excess over a few busy hours is no noise, and this is iterated to its
    fixed point (Breslow, N. E. 1984, Extra-Poisson variation in log-linear models,
    Applied Statistics 33, 38-44, for the weights). A mean of the unweighted estimates,
    trimmed of their top 5%, read zero on most metrics below a few hundred events an hour
    whatever their noise: the trim cuts the long right tail of every hour's
    chi-square-like estimate. The result
    is inflated by `DISPERSION_INFLATE`, as in-sample residuals understate the error of
    a forecast, and never below `MODEL_ERROR` squared.
    """
    busy = mean >= 3
    if busy.sum() < DAY:
        return MODEL_ERROR**2
    y, m = counts[busy], mean[busy]
    resid, square, poisson = y - m, m**2, 1.0 / m
    phi = 0.0
    for _ in range(DISPERSION_STEPS):
        bound = DISPERSION_BOUND * np.sqrt(m + phi * square)
        dev = np.minimum(np.maximum(resid, -bound), bound)  # (np.clip, without its wrapper)
        weight = 1.0 / (poisson + max(phi, MODEL_ERROR**2)) ** 2
        excess = (dev**2 - m) / square
        total = float(weight.sum())
        sure = float((weight * excess).sum()) / total - float(np.sqrt(2.0 / total))
        last, phi = phi, max(sure, 0.0)
        if abs(phi - last) <= 0.01 * phi:
            break
    return float(max(DISPERSION_INFLATE * phi, MODEL_ERROR**2))
