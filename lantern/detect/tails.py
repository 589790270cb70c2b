"""How rare a score is for this metric: its own recent history's tail, not the model's.

A detector's score is ``-log10 p`` under the noise model. Real metrics break noise models
in their tails: tweet volumes, error counts and request rates burst far more often than
any negative binomial fitted to their bulk allows, and a score of 8 may come every few
days. So a verdict is also checked against the same statistic over the metric's own recent
hours: the excesses of those scores over their upper decile are fitted with an exponential
tail (peaks over threshold, the generalized Pareto law with shape zero, as in SPOT), which
gives the probability of a score at least as high under the metric's *observed*
behaviour. A model that is right makes the two agree (its scores above 1 fall off as
``10^-s``, an exponential of scale ``1/ln 10``), so the check costs nothing on a metric
that behaves as modelled and only removes verdicts where the metric's own history says
such scores are common.

References
----------
Pickands, J. (1975). Statistical inference using extreme order statistics. Annals of
    Statistics 3, 119-131.
Siffer, A., Fouque, P.-A., Termier, A. and Largouet, C. (2017). Anomaly detection in
    streams with extreme value theory. KDD '17, 1067-1075.
"""

from __future__ import annotations

import numpy as np

from lantern.detect import arrays
from lantern.detect.verdicts import MAX_SCORE

TAIL_QUANTILE = 0.9  # the tail is fitted to the scores above this quantile of the history
MIN_HISTORY = 72  # hours of history below which a metric's tail is not estimated
# the mean excess of a normal law over its upper decile, in its standard deviations: a tail
# is never taken to fall off faster than a normal law with the bulk's own spread does
NORMAL_EXCESS = 0.47
# a -log10 p score of a model that is right falls off as 10^-s: an exponential tail of
# this scale, below which a history of scores is never taken to fall
SCORE_TAIL_SCALE = 1.0 / np.log(10.0)


def rarity(
    history: np.ndarray,
    current: np.ndarray,
    *,
    unknown: float = MAX_SCORE,
    least_scale: float | None = None,
) -> np.ndarray:
    """-log10 of the probability, under each row's history, of a statistic >= ``current``.

    ``history`` is (n, h) with NaN where an hour does not count; ``current`` is (n,).
    Rows with too little history get ``unknown``: `MAX_SCORE` lets the model's verdict
    stand (a spike needs no history), 0 holds it back (a lasting change does). The fitted
    tail's scale is never below ``least_scale`` (`SCORE_TAIL_SCALE` for -log10 p scores);
    by default, never below a normal law's with the history's own spread.
    """
    history = np.atleast_2d(history)
    current = np.asarray(current, dtype=float).reshape(-1)
    out = np.full(current.shape, unknown)
    for row in range(history.shape[0]):
        seen = history[row][np.isfinite(history[row])]
        if seen.size < MIN_HISTORY:
            continue
        out[row] = _rarity_one(seen, float(current[row]), least_scale)
    return out


def _rarity_one(seen: np.ndarray, value: float, least_scale: float | None) -> float:
    """`rarity` of one value against one row of finite history."""
    n = seen.size
    threshold = arrays.quantile(seen, TAIL_QUANTILE)
    above = seen[seen > threshold]
    if value <= threshold:
        p = (np.count_nonzero(seen >= value) + 1) / (n + 1)
    else:
        if least_scale is None:
            bulk = 1.4826 * arrays.median(np.abs(seen - arrays.median(seen)))
            least_scale = NORMAL_EXCESS * bulk
        if above.size:
            scale = max(arrays.mean(above - threshold), least_scale, 1e-9)
            share = above.size / (n + 1)
        else:
            # nothing in the history beyond its upper decile (a calm metric's scores are
            # mostly zero): the tail from there on is the least one, from the share of the
            # history at the threshold, never the history's size alone
            scale = max(least_scale, 1e-9)
            share = np.count_nonzero(seen >= threshold) / (n + 1)
        p = share * np.exp(-(value - threshold) / scale)
        # never rarer than the history itself says: a few bursts as high in a month are a
        # fact, whatever the fitted tail makes of them
        p = max(p, np.count_nonzero(seen >= value) / (n + 1))
    return float(min(-np.log10(max(p, 1e-300)), MAX_SCORE))
