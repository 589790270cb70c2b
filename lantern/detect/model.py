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
from dataclasses import dataclass
from typing import Any

import numpy as np

from lantern.detect import arrays
from lantern.detect.hours import fill, isolated, stand_in
from lantern.detect.noise import MODEL_ERROR, count_dispersion, mean_noise
from lantern.detect.profile import weekly_profile, weekly_trend, young_value_profile
from lantern.detect.series import DAY, WEEK, SeriesKind

FIT_DAYS = 28
LEVEL_DAYS = 14
MAX_SLOPE = 0.15 / DAY  # log change per hour; growth beyond 15%/day is not extrapolated
MASS_CAP, MASS_SLACK = 3.0, 10.0  # an hour's count above 3x its expectation + 10 is a burst
EMPTY_MEAN = 9.0  # pseudo-events expected above which an hour without a value is a gap (e^-9)


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
    ``anchor`` are stood in for once none of them is used (`stand_in`): the slope the
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
    good = seen & ~isolated(hours, y, seen)
    filled = fill(hours, y, good)
    if anchor is not None and hours[0] < anchor and abs(carried_slope or 0.0) * WEEK > MODEL_ERROR:
        # (a slope that moves the level by less than a forecast's error in a week is none)
        filled = stand_in(hours, y, good, filled, anchor, float(carried_slope or 0.0))
    weekly = len(y) >= 2 * WEEK + DAY
    # one week cannot tell a trend from the days of the week (STL(24)'s trend follows them,
    # a line through a week ending on a quiet weekend falls): a young model's cycle is
    # taken from the hours as they are, its trend from the deseasonalised days
    trend = weekly_trend(filled) if weekly else arrays.median(filled[good])
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
        profile = weekly_profile(hours[:upto], detrended[:upto], good[:upto], counts)
    else:
        # a young value model that can go negative: STL(24)'s cycle, a shrunk day-of-week
        profile = young_value_profile(hours, filled, good, upto)
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
        dispersion = count_dispersion(values[window], scale * mean)
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
