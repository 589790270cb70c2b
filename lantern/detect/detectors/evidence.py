"""`Evidence`: the observed and expected arrays every detector reads, and their window sums.

Every detector reads the same two aligned arrays, the observed value and the baseline's
expectation of each hour, and only hours up to the one being judged. Sums over windows
come from prefix sums (`Evidence.window`), so judging a day costs about what judging an
hour does. The shared statistics live here too: a window's log ratio and its z score under
the noise model (`window_z`), the 24-hour blocks of the trend test (`block`), and the
model's own recent error at the same hours (`reference`), and how rare a window's
departure is against the metric's own recent weeks (`rare_total`, see `tails`).

On the Gaussian path (values that can go negative, and means) every hour has the model's
one standard deviation (``dispersion``), unless ``spread`` gives each hour its own: a mean
whose hours rest on different numbers of events (`noise.mean_noise`). Each hour is then
scored by its own standard deviation, and a window by the precision-weighted mean of its
residuals, ``sum(r_h / s_h^2) / sum(1 / s_h^2)``, whose variance is ``1 / sum(1 / s_h^2)``
(generalised least squares of a level on independent hours; with one ``s`` for every hour
it is the plain mean and its variance, as without ``spread``): an hour averaged over two
checkouts counts for what it shows.
"""

from __future__ import annotations

import numpy as np

from lantern.detect.noise import MODEL_ERROR
from lantern.detect.series import DAY, WEEK, SeriesKind
from lantern.detect.tails import SCORE_TAIL_SCALE, rarity
from lantern.detect.verdicts import (
    MAX_SCORE,
    classify_run,
    down_score,
    far_tail_score,
    far_z_score,
    up_score,
)

WINDOW_ERROR = 0.04  # relative error of a window's forecast: seasonal and trend misfit
LOW_VOLUME_ERROR = 1.4  # variance of a window's log ratio in units of its Poisson variance
LOG_OFFSET = 0.5  # added to counts before a log ratio, so that an empty hour has one
FULL_SHARE = 0.75  # a window counts once this share of its hours is usable
SIDE_Z = 2  # an hour's z beyond which it is counted as off above or below expectation
# the model's error at the same hours on the three days before, and a week before
REFERENCE_LAGS = ((DAY, 2 * DAY, 3 * DAY), (WEEK,))
REFERENCE_PRIOR = 1.0  # events added to both sides of a reference ratio: none seen is 1
BULK_RATIO, BULK_SLACK = 3.0, 10.0  # an hour above this many times its expectation is a burst
# hours before a judged window whose windows tell how rare its departure is: nearly the
# four weeks the model is fitted on, so that a metric's weekly bursts are all in view
TAIL_HOURS = 26 * DAY
# hours left out between that history and the judged window: a change under way for a
# while before its window must not be its own precedent
TAIL_GAP = DAY
# the window statistics every judged day reads (`Evidence.window`): summed together
EVERY_DAY = (
    "x",
    "mu",
    "usable",
    "mu2",
    "bulk_x",
    "weight",
    "weighted_log_ratio",
    "weighted_log_ratio2",
    "above",
    "below",
)


# the indices of the last hours of windows: an array, or a range (read by slices)
Stops = np.ndarray | range


def _span_sums(prefix: np.ndarray, stops: Stops, length: int) -> np.ndarray:
    """Sums of the ``length`` hours ending at each index in ``stops``, from ``prefix`` (the
    prefix sums with a leading zero); a window reaching before the first hour starts there."""
    if isinstance(stops, range) and stops.step == 1 and stops.start + 1 >= length:
        first, end = stops.start + 1, stops.stop + 1
        return prefix[first:end] - prefix[first - length : end - length]
    stop = np.asarray(stops) + 1
    return prefix[stop] - prefix[np.maximum(stop - length, 0)]


class Evidence:
    """The judged hours ``first..`` of aligned arrays, with the window sums detectors read.

    ``x`` (observed) and ``mu`` (expected) cover the detectors' lookback before the first
    judged hour. An hour is *usable* when it may count (after the current normal began,
    outside an earlier episode, and not missing), *seen* when it has data at all (episodes'
    hours included); a window is *full* when `FULL_SHARE` of its hours are usable.
    ``recent`` marks the seen hours since the current normal began: what the metric has
    done lately, however it was judged, against which `rare_total` asks how rare a short
    event is; ``calm`` marks those of them outside past outages, against which it asks how
    rare a lasting change is. ``spread`` (Gaussian path only) is each hour's own standard
    deviation about expectation, aligned to ``x``; without it every hour has
    ``dispersion``, which also stays the scale that changes are measured against.
    """

    def __init__(
        self,
        x: np.ndarray,
        mu: np.ndarray,
        usable: np.ndarray,
        *,
        first: int,
        kind: SeriesKind,
        dispersion: float,
        window_error: float = WINDOW_ERROR,
        recent: np.ndarray | None = None,
        calm: np.ndarray | None = None,
        spread: np.ndarray | None = None,
    ) -> None:
        self.kind = kind
        self.spread = spread if kind != "count" else None
        self.first = first
        self.window_error = window_error
        self.raw_x, self.raw_mu = x, mu
        seen = np.isfinite(x)
        if (usable & ~seen).any():
            self.x = np.where(usable, np.nan_to_num(x), 0.0)
        else:
            self.x = np.where(usable, x, 0.0)  # (the same: a usable hour is seen)
        self.mu = np.where(usable, mu, 0.0)
        self.usable = usable
        self.recent = recent
        self.calm = calm
        # episodes' hours included: what the metric did, however it was judged then
        self.seen_x = np.where(seen, x, 0.0)
        self.seen_mu = np.where(seen, mu, 0.0)
        self.dispersion = dispersion
        if kind == "count":
            # the part of the dispersion that averages out over a window: all but the
            # forecast error of a single hour
            self.noise = max(dispersion - MODEL_ERROR**2, 0.0)
            hour_var = 1.0 / (mu + LOG_OFFSET) + dispersion
            self.log_ratio = np.log((self.x + LOG_OFFSET) / (self.mu + LOG_OFFSET))
        else:
            scale = np.abs(mu) + dispersion
            own = dispersion if self.spread is None else self.spread
            hour_var = (own / scale) ** 2 + window_error**2
            self.log_ratio = (self.x - self.mu) / scale
        self.weight = np.where(usable, 1.0 / hour_var, 0.0)
        # what a day's level is made of: a burst counts as an hour BULK_RATIO times its
        # expectation (plus BULK_SLACK events), so that a day with a burst is no higher day
        self.bulk_x = (
            np.minimum(self.x, BULK_RATIO * self.mu + BULK_SLACK) if kind == "count" else self.x
        )
        self._seen = seen
        self._hour_z: np.ndarray | None = None  # each hour's z, for `above` and `below`
        # the judged hours' indices plus one: where their windows stop
        self._stops = np.arange(first + 1, len(x) + 1)
        self._judged = len(x) - first
        # each window statistic's prefix sums, with a leading zero: those every judged day
        # reads as the rows of one cumulative sum, the others on first use (`_prefix_of`)
        sums = np.empty((len(EVERY_DAY), len(x) + 1))
        sums[:, 0] = 0.0
        np.cumsum(np.stack([self._source(name) for name in EVERY_DAY]), axis=1, out=sums[:, 1:])
        self._prefix: dict[str, np.ndarray] = dict(zip(EVERY_DAY, sums, strict=True))

    def _source(self, name: str) -> np.ndarray:
        """The hourly array whose sums over windows ``name`` stands for."""
        if name in ("above", "below"):
            if self._hour_z is None:
                self._hour_z = self.log_ratio * np.sqrt(self.weight)
            side = self._hour_z > SIDE_Z if name == "above" else self._hour_z < -SIDE_Z
            return (self.weight > 0) & side
        if name == "recent":
            return (self.usable if self.recent is None else self.recent).astype(float)
        if name == "calm":
            # (without past outages to leave out, `_prefix_of` reads the recent hours' sums)
            assert self.calm is not None
            return self.calm.astype(float)
        if name.endswith("precision") or name.endswith("precise_resid"):
            # each hour's precision, and its residual weighted by it: usable, or seen
            assert self.spread is not None
            seen = name.startswith("seen_")
            on = self._seen if seen else self.usable
            precision = 1.0 / self.spread**2
            if name.endswith("precision"):
                return np.where(on, precision, 0.0)
            resid = self.seen_x - self.seen_mu if seen else self.x - self.mu
            return np.where(on, precision * resid, 0.0)
        if name == "mu2":
            return self.mu**2
        if name == "usable":
            return self.usable.astype(float)
        if name == "weighted_log_ratio":
            return self.weight * self.log_ratio
        if name == "weighted_log_ratio2":
            return self.weight * self.log_ratio**2
        source: np.ndarray = getattr(self, name)  # x, mu, bulk_x, seen_x, seen_mu, weight
        return source

    def _prefix_of(self, name: str) -> np.ndarray:
        """The prefix sums of ``name`` (`_source`), with a leading zero."""
        prefix = self._prefix.get(name)
        if prefix is None:
            if name == "calm" and self.calm is None:
                # without past outages to leave out, the calm hours are the recent ones
                prefix = self._prefix_of("recent")
            else:
                prefix = np.concatenate([[0.0], np.cumsum(self._source(name))])
            self._prefix[name] = prefix
        return prefix

    @property
    def end(self) -> int:
        """One past the last judged hour."""
        return len(self.x)

    @property
    def judged(self) -> int:
        """How many hours are judged."""
        return len(self.x) - self.first

    def window(self, name: str, length: int | np.ndarray, back: int | np.ndarray = 0) -> np.ndarray:
        """Sums of ``name`` over ``length`` hours ending ``back`` hours before each judged hour
        (a column of lengths gives a row of sums per length)."""
        prefix = self._prefix.get(name)
        if prefix is None:
            prefix = self._prefix_of(name)
        if type(length) is int and type(back) is int:
            last = self.first + 1 - back
            if last >= length:
                # every window lies inside the arrays: the same differences, by slices
                n = self._judged
                return prefix[last : last + n] - prefix[last - length : last - length + n]
        stop = np.maximum(self._stops - back, 0)
        return prefix[stop] - prefix[np.maximum(stop - length, 0)]

    def spread_at(self, i: int) -> float:
        """The standard deviation of hour ``i`` on the Gaussian path (a count's dispersion)."""
        return self.dispersion if self.spread is None else float(self.spread[i])

    def hourly(self, i: int) -> tuple[float, float, float, float]:
        """(observed, expected, up score, down score) of hour ``i``."""
        x, mu = self.x[i : i + 1], self.mu[i : i + 1]
        spread = self.spread_at(i)
        return (
            float(x[0]),
            float(mu[0]),
            float(up_score(x, mu, spread, self.kind)[0]),
            float(down_score(x, mu, spread, self.kind)[0]),
        )

    def hourly_scores(self, i: int) -> tuple[float, float]:
        """(up score, down score) of hour ``i``, masked or not."""
        x, mu = np.nan_to_num(self.raw_x[i : i + 1]), self.raw_mu[i : i + 1]
        spread = self.spread_at(i)
        return (
            float(up_score(x, mu, spread, self.kind)[0]),
            float(down_score(x, mu, spread, self.kind)[0]),
        )

    def classify(self, lo: int, hi: int) -> str:
        """Whether hours lo..hi (raw) moved as a level (a mean shift) or as a cycle (hours
        of their own spread weighed by their precision)."""
        x, mu = np.nan_to_num(self.raw_x[lo : hi + 1]), self.raw_mu[lo : hi + 1]
        weights = None if self.spread is None else 1.0 / self.spread[lo : hi + 1] ** 2
        return classify_run(x, mu, self.dispersion, self.kind, weights=weights)

    def reference(self, lo: int, hi: int, up: bool) -> float:
        """Observed/expected of hours lo..hi-1 lately: the model's own error at those hours.

        A model that misjudges an hour of the day (or of the week) misjudges it again, so an
        hour is only anomalous as far as it departs from how the model fared at that hour on
        the three days before and on the same day a week before, whichever excuses more.
        """
        if self.kind != "count":
            return 1.0
        ratios = []
        for lags in REFERENCE_LAGS:
            sx = sm = 0.0
            for d in lags:
                a, b = max(lo - d, 0), max(hi - d, 0)
                sx += float(self.seen_x[a:b].sum())
                sm += float(self.seen_mu[a:b].sum())
            ratios.append((sx + REFERENCE_PRIOR) / (sm + REFERENCE_PRIOR))
        return max(1.0, *ratios) if up else min(1.0, *ratios)

    def window_reference(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(highest, lowest) log `reference` of each judged hour's window of ``length`` hours."""
        refs = []
        for lags in REFERENCE_LAGS:
            seen_x = sum(self.window("seen_x", length, back) for back in lags)
            seen_mu = sum(self.window("seen_mu", length, back) for back in lags)
            refs.append(np.log((seen_x + REFERENCE_PRIOR) / (seen_mu + REFERENCE_PRIOR)))
        return np.maximum(*refs), np.minimum(*refs)

    def sum_log_ratio(self, s: np.ndarray, m: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Observed sum ``s`` against expected ``m`` over ``n`` usable hours: the log ratio
        for counts, the mean difference in units of its scale for values."""
        if self.kind == "count":
            return np.log((s + LOG_OFFSET) / (m + LOG_OFFSET))
        nn = np.maximum(n, 1)
        return (s - m) / nn / (np.abs(m / nn) + self.dispersion)

    def weighted_shift(
        self, m: np.ndarray, n: np.ndarray, length: int | np.ndarray, back: int | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(relative shift, its variance) of windows of hours of their own spread: the
        precision-weighted mean residual over the scale changes are measured against (the
        window's mean expectation plus ``dispersion``), and its variance on that scale.
        ``m`` and ``n`` are the windows' expected sums and usable hours."""
        weight = np.maximum(self.window("precision", length, back), 1e-300)
        shift = self.window("precise_resid", length, back) / weight
        scale = np.abs(m / np.maximum(n, 1)) + self.dispersion
        return shift / scale, 1.0 / weight / scale**2

    def window_z(
        self, length: int | np.ndarray, back: int = 0, inflate: float = LOW_VOLUME_ERROR
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(log ratio, z, observed/h, expected/h) of ``length`` hours ending ``back`` before
        each judged hour (zero where the window is not full); a column of lengths gives a
        row of each per length."""
        s, m = self.window("x", length, back), self.window("mu", length, back)
        n = self.window("usable", length, back)
        nn = np.maximum(n, 1)
        if self.kind == "count":
            offset_m = m + LOG_OFFSET
            lr = np.log((s + LOG_OFFSET) / offset_m)  # `sum_log_ratio`
            # the forecast of a quiet metric errs about as much as its counts scatter
            mu2 = self.window("mu2", length, back)
            var = inflate / offset_m + self.noise * mu2 / offset_m**2
        elif self.spread is not None:
            lr, var = self.weighted_shift(m, n, length, back)
        else:
            lr = self.sum_log_ratio(s, m, n)
            var = (self.dispersion / (np.abs(m / nn) + self.dispersion)) ** 2 / nn
        z = lr / np.sqrt(var + self.window_error**2)
        if self.kind == "count":
            # near zero the log ratio overstates the evidence: never more than the Poisson
            # likelihood ratio itself gives (six empty hours where nine events were
            # expected is e^-9, not the 6 sigma the log scale would claim)
            deviance = m - s + s * np.log(np.maximum(s, 1e-12) / np.maximum(m, 1e-12))
            z = np.sign(z) * np.minimum(np.abs(z), np.sqrt(2 * np.maximum(deviance, 0.0)))
        full = n >= FULL_SHARE * length
        return np.where(full, lr, 0.0), np.where(full, z, 0.0), s / nn, m / nn

    def window_log_ratio(self, length: int, back: int) -> np.ndarray:
        """The log ratio of `window_z` alone (zero where the window is not full)."""
        s, m = self.window("x", length, back), self.window("mu", length, back)
        n = self.window("usable", length, back)
        if self.kind != "count" and self.spread is not None:
            lr = self.weighted_shift(m, n, length, back)[0]
        else:
            lr = self.sum_log_ratio(s, m, n)
        return np.where(n >= FULL_SHARE * length, lr, 0.0)

    def block(
        self, length: int, back: int | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log ratio, its variance, full) of ``length`` hours ending ``back`` before each,
        of the hours' bulk (bursts capped: `bulk_x`)."""
        s, m = self.window("bulk_x", length, back), self.window("mu", length, back)
        n = self.window("usable", length, back)
        lr = self.sum_log_ratio(s, m, n)
        if self.kind == "count":
            mu2 = self.window("mu2", length, back)
            var = 1.0 / (m + LOG_OFFSET) + self.noise * mu2 / (m + LOG_OFFSET) ** 2
        elif self.spread is not None:
            lr, var = self.weighted_shift(m, n, length, back)
        else:
            nn = np.maximum(n, 1)
            var = (self.dispersion / (np.abs(m / nn) + self.dispersion)) ** 2 / nn
        return lr, var, n >= FULL_SHARE * length

    def _totals(
        self, stops: Stops, length: int, *, seen: bool, calm: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(observed, expected, every hour counts) of the ``length`` hours ending at each
        index in ``stops``: usable hours, or (``seen``) hours seen since the current normal
        (``calm``: outside past outages)."""
        names = ("x", "mu", "usable")
        if seen:
            names = ("seen_x", "seen_mu", "calm" if calm else "recent")
        s, m, n = (_span_sums(self._prefix_of(name), stops, length) for name in names)
        return s, m, n >= length

    def total_z(self, stops: Stops, length: int, *, seen: bool, calm: bool = False) -> np.ndarray:
        """The z of the totals of ``length`` hours ending at each index in ``stops``: of the
        log ratio for counts, of the mean difference for values; NaN where an hour is out
        of use (``seen``: where it is unseen or before the current normal; ``calm``: or in
        a past outage)."""
        s, m, full = self._totals(stops, length, seen=seen, calm=calm)
        if self.kind == "count":
            spread = np.sqrt(1.0 / (m + LOG_OFFSET) + self.dispersion / length)
            z = np.log((s + LOG_OFFSET) / (m + LOG_OFFSET)) / spread
        else:
            z = self._value_z(stops, length, s, m, seen=seen)
        return np.where(full, z, np.nan)

    def _value_z(
        self, stops: Stops, length: int, s: np.ndarray, m: np.ndarray, *, seen: bool
    ) -> np.ndarray:
        """The z of the ``length`` hours ending at each index in ``stops`` on the Gaussian
        path, whose observed and expected sums are ``s`` and ``m``: their summed residual
        over ``dispersion * sqrt(length)``, or with hours of their own spread, their
        precision-weighted residual ``sum(r / s^2) / sqrt(sum(1 / s^2))``."""
        if self.spread is None:
            return (s - m) / (self.dispersion * np.sqrt(length))
        prefix = "seen_" if seen else ""
        weight = _span_sums(self._prefix_of(prefix + "precision"), stops, length)
        resid = _span_sums(self._prefix_of(prefix + "precise_resid"), stops, length)
        return resid / np.sqrt(np.maximum(weight, 1e-300))

    def run_z(self, lo: int, hi: int) -> float:
        """The z of the usable hours lo..hi-1 on the Gaussian path (`_value_z`'s)."""
        total, expected = self.x[lo:hi].sum(), self.mu[lo:hi].sum()
        if self.spread is None:
            return float((total - expected) / (self.dispersion * np.sqrt(hi - lo)))
        return float(self._value_z(np.array([hi - 1]), hi - lo, total, expected, seen=False)[0])

    def total_score(self, stops: Stops, length: int, *, up: bool, seen: bool) -> np.ndarray:
        """The model's tail score (-log10 p, as `verdicts` computes it, uncapped)
        of the totals of ``length`` hours ending at each index in ``stops``, in direction
        ``up``; NaN as in `total_z`."""
        s, m, full = self._totals(stops, length, seen=seen)
        if self.kind == "count":
            score = far_tail_score(s, m, self.dispersion, up=up)
        else:
            z = self._value_z(stops, length, s, m, seen=seen)
            score = np.where(z > 0 if up else z < 0, far_z_score(z), 0.0)
        return np.where(full, score, np.nan)

    def rare_total(
        self,
        i: int,
        length: int,
        *,
        up: bool,
        least: float,
        lasting: bool = False,
        needs_history: bool = False,
    ) -> bool:
        """Whether the total of the ``length`` hours ending at ``i`` departs from expectation
        more rarely than 10^-``least`` for this metric, in direction ``up``.

        Judged against the same statistic over `TAIL_HOURS` before the window (less the
        `TAIL_GAP` just before it), episodes included (`tails.rarity`): the model's own
        tail score for a short event (so that a metric the model describes well is judged
        as the model judges it), the window's z for a lasting change, whose history leaves
        out past outages (the data stopping last week says nothing of how far the metric's
        level wanders, and must not hide a level shift this week; bursts and drops, which
        are how a real metric wanders, stay in). With less history
        than that needs, a short event stands on the model alone, and a lasting change
        waits (``lasting``), as does a short event that ``needs_history``.
        """
        last = i - length - TAIL_GAP
        past = range(max(last - TAIL_HOURS + 1, length - 1), last + 1)
        now_at = np.array([i])
        if lasting:
            sign = 1.0 if up else -1.0
            history = sign * self.total_z(past, length, seen=True, calm=True)
            now = sign * self.total_z(now_at, length, seen=False)
            least_scale = None
        else:
            history = self.total_score(past, length, up=up, seen=True)
            now = self.total_score(now_at, length, up=up, seen=False)
            least_scale = SCORE_TAIL_SCALE
        if not np.isfinite(now[0]):
            return False
        unknown = 0.0 if lasting or needs_history else MAX_SCORE
        found = rarity(history[None, :], now, unknown=unknown, least_scale=least_scale)
        return bool(found[0] >= least)
