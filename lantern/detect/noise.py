"""How far a metric's hours stray from its baseline: the noise its detectors judge by.

A count's negative-binomial overdispersion (`count_dispersion`), and a mean's variance by the
events behind each hour, ``tau^2 + sigma_w^2 / n`` (`mean_noise`).
"""

from __future__ import annotations

import numpy as np

from lantern.detect import arrays
from lantern.detect.series import DAY

MODEL_ERROR = 0.04  # relative error of an hour's forecast that no amount of data removes
DISPERSION_BOUND = 4.0  # standard deviations at which an hour's deviation is winsorized
DISPERSION_STEPS = 20  # at most, to the fixed point of `count_dispersion`'s winsorized estimate
DISPERSION_INFLATE = 1.3  # a forecast's error over the fit's in-sample error, in variance
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


def count_dispersion(counts: np.ndarray, mean: np.ndarray) -> float:
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
