"""The detectors: evidence, hour by hour, that a metric left its baseline, and of what kind.

Every detector reads the same two aligned arrays, the observed value and the baseline's
expectation of each hour, and only hours up to the one being judged. They are computed for
a run of hours at once with prefix sums, so judging a day costs about what judging an hour
does. A verdict needs both *significance* under the noise model (a Poisson-gamma tail for
counts and for non-negative values as pseudo-counts, a Gaussian one for values that can go
negative) and a *relative change* large enough to matter; the
second is what keeps a metric at 50,000 events an hour, where every wobble is
"significant", from paging anyone.

`spike`
    One hour far above expectation: upper tail of Poisson(mu * exp(2 sqrt(phi))), the
    mean pushed two standard deviations up the gamma mixing distribution, so that
    over-dispersion is never mistaken for an event. A burst of 2 to 4 hours all above
    expectation is judged the same way on its total once an hour is back near
    expectation: at a few events an hour no single hour of it adds enough.
`outage` / `drop`
    A run of consecutive low hours, judged on its total: near zero (at most 15% of the
    expected count) is an outage, otherwise a drop.
`level_shift`
    The ratio of observed to expected over the last 6, 12 or 24 hours, on the log scale
    with the variance of a sum of negative-binomial counts plus a model-error term; each
    third of the window must agree, so that one spike cannot pass for a shift.
`trend_change`
    The log ratios of the last fourteen 24-hour blocks regressed on a line plus a hinge
    2 to 7 days back: the hinge's slope is the change of trend, judged against the data's
    own line rather than the daily refit (which follows a drift in progress); it must be
    steep, significant, have moved the metric by 10%, and bend better than it steps.
`seasonality_change`
    Over the last 24 hours, the dispersion of hourly log ratios around their mean (a
    chi-square statistic) with hours above *and* below expectation: the shape, amplitude
    or phase of the cycle moved while the level did not. And, without the model: the
    last 48 hours against the same hours a week before, less a line, averaged by hour of
    day; the two days must agree, and the noise is measured on the days before.

Spikes, outages, drops and level shifts are also judged against the model's own recent
error at the same hours (`Evidence._reference`): a model wrong about an hour of the day is
wrong every day, and that is not news. Verdict types and tail scores are in `verdicts`.

References
----------
Page, E. S. (1954). Continuous inspection schemes. Biometrika 41, 100-115.
Sen, P. K. (1968). Estimates of the regression coefficient based on Kendall's tau.
    JASA 63, 1379-1389.
(Lawless 1987, for the count tails, is cited in `verdicts`.)
"""

from __future__ import annotations

import numpy as np
from scipy import special

from lantern.detect.series import SeriesKind
from lantern.detect.verdicts import (
    MAX_SCORE,
    Candidate,
    Thresholds,
    classify_run,
    down_score,
    score_from_z,
    up_score,
)

LEVEL_WINDOWS = (6, 12, 24)
SEASON_WINDOW = 24
DAY, WEEK = 24, 168
TREND_DAYS = 14  # daily blocks a trend change is judged on
TREND_ERROR = 0.015  # relative error of a day's forecast that no amount of data removes
TREND_REACH = 0.1  # a change of trend must have moved the metric by this much (log) so far
CYCLE_WINDOW = 48  # hours a change of cycle is judged on, against the same hours a week before
CYCLE_ERROR = 0.02  # relative error of an hour against the same hour a week before
CYCLE_HISTORY = 96  # hours before the window whose jitter measures the noise
CYCLE_CAP = 16.0  # most one hour of the day can add to the chi-square
CYCLE_MIN_SCALE = 0.1  # least fraction of the model's noise that the measured noise can be
BEND_MARGIN = 4.0  # chi-square by which a bend must beat a step to rename a level shift
LOOKBACK = TREND_DAYS * DAY  # hours before the first judged one
WINDOW_ERROR = 0.04  # relative error of a window's forecast: seasonal and trend misfit
SPIKE_FLOOR = 3.0  # events an hour below which a spike's expectation is not taken at its word
BURST_HOURS = 4  # longest run of high hours judged on its total as one spike
BURST_END = 1.5  # a burst is judged once an hour is back under this many times its expectation
LOW_VOLUME_ERROR = 1.4  # variance of a window's log ratio in units of its Poisson variance


class Evidence:
    """Every detector's statistics for the judged hours ``lo..`` of aligned arrays.

    ``x`` and ``mu`` cover ``LOOKBACK`` hours before the first judged one; ``usable`` is
    False for hours that must not count (before the current normal began, inside an
    earlier episode, or missing).
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
        thresholds: Thresholds,
        window_error: float = WINDOW_ERROR,
    ) -> None:
        self.kind, self.t = kind, thresholds
        self.first = first
        self.error = window_error
        self.raw_x, self.raw_mu = x, mu
        self.x = np.where(usable, np.nan_to_num(x), 0.0)
        self.mu = np.where(usable, mu, 0.0)
        self.usable = usable
        # episodes' hours included: what the metric did, however it was judged then
        seen = np.isfinite(x)
        self.seen_x = np.where(seen, np.nan_to_num(x), 0.0)
        self.seen_mu = np.where(seen, mu, 0.0)
        self.spread = dispersion
        if kind == "count":
            self.noise = max(dispersion - 0.04**2, 0.0)  # the part that averages out
            hour_var = 1.0 / (mu + 0.5) + dispersion
            self.logr = np.log((self.x + 0.5) / (self.mu + 0.5))
        else:
            scale = np.abs(mu) + dispersion
            hour_var = (dispersion / scale) ** 2 + window_error**2
            self.logr = (self.x - self.mu) / scale
        self.w = np.where(usable, 1.0 / hour_var, 0.0)
        self._c = {
            name: np.concatenate([[0.0], np.cumsum(arr)])
            for name, arr in {
                "x": self.x,
                "rx": self.seen_x,
                "rmu": self.seen_mu,
                "mu": self.mu,
                "mu2": self.mu**2,
                "n": usable.astype(float),
                "w": self.w,
                "wl": self.w * self.logr,
                "wl2": self.w * self.logr**2,
                "hi": (self.w > 0) & (self.logr * np.sqrt(self.w) > 2),
                "lo": (self.w > 0) & (self.logr * np.sqrt(self.w) < -2),
            }.items()
        }

    def window(self, name: str, end: int, length: int, back: int | np.ndarray = 0) -> np.ndarray:
        """Sums over ``length`` hours ending ``back`` hours before each judged hour."""
        stop = np.maximum(np.arange(self.first, end) + 1 - back, 0)
        return self._c[name][stop] - self._c[name][np.maximum(stop - length, 0)]

    def hourly(self, i: int) -> tuple[float, float, float, float]:
        """(observed, expected, up score, down score) of hour ``i``."""
        x, mu = self.x[i : i + 1], self.mu[i : i + 1]
        return (
            float(x[0]),
            float(mu[0]),
            float(up_score(x, mu, self.spread, self.kind)[0]),
            float(down_score(x, mu, self.spread, self.kind)[0]),
        )

    def hourly_scores(self, i: int) -> tuple[float, float]:
        """(up score, down score) of hour ``i``, masked or not."""
        x, mu = np.nan_to_num(self.raw_x[i : i + 1]), self.raw_mu[i : i + 1]
        return (
            float(up_score(x, mu, self.spread, self.kind)[0]),
            float(down_score(x, mu, self.spread, self.kind)[0]),
        )

    def classify(self, lo: int, hi: int) -> str:
        """Whether hours lo..hi (raw) moved as a level (a mean shift) or as a cycle."""
        x, mu = np.nan_to_num(self.raw_x[lo : hi + 1]), self.raw_mu[lo : hi + 1]
        return classify_run(x, mu, self.spread, self.kind)

    def candidates(self) -> list[Candidate | None]:
        """The strongest detection of each judged hour, or None."""
        end = len(self.x)
        hours = np.arange(self.first, end)
        level = self._level(end)
        ramp = self._ramp(end)
        season = self._season(end)
        cycle = self._cycle(end)
        out: list[Candidate | None] = []
        slope, line = self._ramp_shape
        for j, i in enumerate(hours):
            found = self._short(int(i)) or level[j] or ramp[j] or season[j] or cycle[j]
            if found is not None and found.kind == "level_shift" and line[j]:
                # a level that has been drifting away for days is a change of trend
                same_way = np.sign(slope[j]) == (1 if found.direction == "up" else -1)
                if same_way and abs(slope[j]) >= self.t.ramp_slope:
                    found = Candidate(
                        "trend_change",
                        found.direction,
                        found.start_offset,
                        found.observed,
                        found.expected,
                        found.score,
                        float(slope[j]),
                    )
            out.append(found)
        return out

    def _short(self, i: int) -> Candidate | None:
        """Spike at hour i, or an outage/drop run ending at hour i."""
        if not self.usable[i]:
            return None
        t = self.t
        x, mu, up, _ = self.hourly(i)
        # the corrections below only ever raise the bar, so they are computed for hours
        # that clear it without them
        if self._is_spike(x, mu, up) and self.kind == "count":
            # a quiet hour's expectation rests on a handful of events: never trust it below
            # a few, or a stray burst at night pages someone
            mu = max(mu * self._reference(i, i + 1, up=True), SPIKE_FLOOR)
            up = float(up_score(np.array([x]), np.array([mu]), self.spread, self.kind)[0])
        if self._is_spike(x, mu, up):
            return Candidate("spike", "up", 0, x, mu, up)
        burst = self._burst(i)
        if burst is not None:
            return burst
        start = i
        while start > 0 and self.usable[start] and self.x[start] < t.drop_ratio * self.mu[start]:
            start -= 1
        if start == i:
            return None
        s = slice(start + 1, i + 1)
        total, expected = self.x[s].sum(), self.mu[s].sum()
        if self.kind == "value":
            score = float(
                score_from_z(np.array([(total - expected) / (self.spread * np.sqrt(i - start))]))[0]
            )
        else:
            score = float(
                down_score(np.array([total]), np.array([expected]), self.spread, "count")[0]
            )
        hours = i - start
        found = self._low_run(total, expected, score, hours)
        if found is None or self.kind != "count":
            return found
        ref = self._reference(start + 1, i + 1, up=False)
        if ref < 1.0:
            expected *= ref
            score = float(
                down_score(np.array([total]), np.array([expected]), self.spread, "count")[0]
            )
        return self._low_run(total, expected, score, hours)

    def _burst(self, i: int) -> Candidate | None:
        """A spike of 2 to `BURST_HOURS` hours that ended before hour i, judged on its total.

        At a few events an hour no single hour of a burst clears a spike's bar (10 events
        more than expected, at least 3 expected); a run of hours all above expectation is
        judged as one hour would be, on the sums, once an hour back near expectation shows
        it was not the start of a new level.
        """
        t = self.t
        if self.kind != "count" or self.x[i] > BURST_END * max(self.mu[i], SPIKE_FLOOR):
            return None
        # hours out of use have x = mu = 0 here, so they end a run too
        if self.x[i - 1] <= self.mu[i - 1]:
            return None
        for k in range(2, BURST_HOURS + 1):
            lo = i - k
            if lo < 0 or self.x[lo] <= self.mu[lo]:
                return None
            total, raw = float(self.x[lo:i].sum()), float(self.mu[lo:i].sum())
            expected = max(raw, SPIKE_FLOOR * k)
            if total < t.spike_ratio * expected or total - expected < t.min_events:
                continue  # the reference below only ever raises the expectation
            expected = max(raw * self._reference(lo, i, up=True), SPIKE_FLOOR * k)
            up = float(up_score(np.array([total]), np.array([expected]), self.spread, "count")[0])
            if self._is_spike(total, expected, up):
                return Candidate("spike", "up", k, total / k, expected / k, up)
        return None

    def _is_spike(self, x: float, mu: float, up: float) -> bool:
        """Far enough above ``mu``; a spike adds a handful of events, or three sigma of a value."""
        t = self.t
        least = t.min_events if self.kind == "count" else 3 * self.spread
        return up >= t.spike_score and x >= t.spike_ratio * mu and x - mu >= least

    def _low_run(self, total: float, expected: float, score: float, hours: int) -> Candidate | None:
        """An outage or a drop of ``hours`` low hours, or None."""
        t = self.t
        if total <= 0.15 * expected and score >= t.outage_score:
            return Candidate("outage", "down", hours - 1, total / hours, expected / hours, score)
        if score >= t.drop_score and 2 <= hours <= 6 and total <= t.drop_ratio * 0.75 * expected:
            return Candidate("drop", "down", hours - 1, total / hours, expected / hours, score)
        return None

    def _reference(self, lo: int, hi: int, up: bool) -> float:
        """Observed/expected of hours lo..hi-1 lately: the model's own error at those hours.

        A model that misjudges an hour of the day (or of the week) misjudges it again, so an
        hour is only anomalous as far as it departs from how the model fared at that hour on
        the three days before and on the same day a week before, whichever excuses more.
        """
        if self.kind != "count":
            return 1.0
        ratios = []
        for lags in ((DAY, 2 * DAY, 3 * DAY), (WEEK,)):
            sx = sm = 0.0
            for d in lags:
                a, b = max(lo - d, 0), max(hi - d, 0)
                sx += float(self.seen_x[a:b].sum())
                sm += float(self.seen_mu[a:b].sum())
            ratios.append((sx + 1.0) / (sm + 1.0))
        return max(1.0, *ratios) if up else min(1.0, *ratios)

    def _log_ratio(self, s: np.ndarray, m: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Observed sum ``s`` against expected ``m`` over ``n`` usable hours: the log ratio
        for counts, the mean difference in units of its scale for values."""
        if self.kind == "count":
            return np.log((s + 0.5) / (m + 0.5))
        nn = np.maximum(n, 1)
        return (s - m) / nn / (np.abs(m / nn) + self.spread)

    def _window_z(
        self, end: int, k: int, back: int = 0, inflate: float = LOW_VOLUME_ERROR
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(log ratio, z, observed/h, expected/h) of k hours ending ``back`` before each hour."""
        s, m = self.window("x", end, k, back), self.window("mu", end, k, back)
        n = self.window("n", end, k, back)
        nn = np.maximum(n, 1)
        lr = self._log_ratio(s, m, n)
        if self.kind == "count":
            # the forecast of a quiet metric errs about as much as its counts scatter
            mu2 = self.window("mu2", end, k, back)
            var = inflate / (m + 0.5) + self.noise * mu2 / (m + 0.5) ** 2
        else:
            var = (self.spread / (np.abs(m / nn) + self.spread)) ** 2 / nn
        z = lr / np.sqrt(var + self.error**2)
        if self.kind == "count":
            # near zero the log ratio overstates the evidence: never more than the Poisson
            # likelihood ratio itself gives (six empty hours where nine events were
            # expected is e^-9, not the 6 sigma the log scale would claim)
            deviance = m - s + s * np.log(np.maximum(s, 1e-12) / np.maximum(m, 1e-12))
            z = np.sign(z) * np.minimum(np.abs(z), np.sqrt(2 * np.maximum(deviance, 0.0)))
        full = n >= 0.75 * k
        return np.where(full, lr, 0.0), np.where(full, z, 0.0), s / nn, m / nn

    def _window_lr(self, end: int, k: int, back: int) -> np.ndarray:
        """The log ratio of `_window_z` alone (zero where the window is not three-quarters full)."""
        s, m = self.window("x", end, k, back), self.window("mu", end, k, back)
        n = self.window("n", end, k, back)
        return np.where(n >= 0.75 * k, self._log_ratio(s, m, n), 0.0)

    def _level(self, end: int) -> list[Candidate | None]:
        """Level shifts over the last 6, 12 and 24 hours, each third of the window agreeing."""
        t = self.t
        out: list[Candidate | None] = [None] * (end - self.first)
        for k in LEVEL_WINDOWS:
            lr, z, obs, exp = self._window_z(end, k)
            score = score_from_z(z)
            hit = (np.abs(lr) >= t.level_change) & (score >= t.level_score)
            if not hit.any():
                continue  # most hours: no need to look at the thirds
            third = k // 3
            parts = np.stack([self._window_lr(end, third, back) for back in (0, third, 2 * third)])
            hit &= (np.sign(lr) * parts >= t.level_change / 2).all(axis=0)
            if self.kind == "count" and hit.any():
                # the same window on the three days before and a week before: how the model
                # fared there; it only ever shrinks the change, so hits alone are re-judged
                refs = []
                for lags in ((DAY, 2 * DAY, 3 * DAY), (WEEK,)):
                    rx = sum(self.window("rx", end, k, back) for back in lags)
                    rm = sum(self.window("rmu", end, k, back) for back in lags)
                    refs.append(np.log((rx + 1.0) / (rm + 1.0)))
                high, low = np.maximum(*refs), np.minimum(*refs)
                lr = np.where(
                    lr > 0,
                    np.maximum(lr - np.maximum(high, 0), 0),
                    np.minimum(lr - np.minimum(low, 0), 0),
                )
                hit &= np.abs(lr) >= t.level_change
            for j in np.flatnonzero(hit):
                if out[j] is None:
                    direction = "up" if lr[j] > 0 else "down"
                    out[j] = Candidate(
                        "level_shift", direction, k - 1, obs[j], exp[j], float(score[j])
                    )
        return out

    def _ramp(self, end: int) -> list[Candidate | None]:
        """Trend changes: daily log ratios that bend away from their own line and keep going.

        The last `TREND_DAYS` 24-hour blocks (ending at the judged hour) are regressed on a
        line plus a hinge that starts 2 to 7 days ago; the hinge's slope is the change of
        trend. The line is the data's own, so how much of a drift the daily refit has
        already absorbed does not matter. The variance of a block is its count noise plus
        `TREND_ERROR`, scaled up by the fit's own residual scatter when the days scatter
        more than that (quasi-likelihood), and the bend must fit better than a step.
        """
        t = self.t
        n_out = end - self.first
        days = TREND_DAYS
        # block 0 is the oldest; all blocks at once
        back = ((days - 1 - np.arange(days)) * DAY)[:, None]
        lr, var, full = self._block(end, DAY, back)
        w = np.where(full, 1.0 / (var + TREND_ERROR**2), 0.0)
        time = np.arange(days, dtype=float)
        enough = (w > 0).sum(0) >= days - 2
        bends = range(days - 8, days - 2)
        steps = range(days - 8, days - 1)
        regressors = [np.maximum(time - k, 0.0) for k in bends]
        regressors += [(time > k).astype(float) for k in steps]
        design = np.stack([np.stack([np.ones(days), time, r]) for r in regressors])
        c, se, rss = _wls_last(design, lr, w)
        nb = len(bends)
        z = np.where(enough, c[:nb] / se[:nb], 0.0)
        pick = np.argmax(np.abs(z), axis=0)
        cols = np.arange(n_out)
        best_z = z[pick, cols]
        found = np.abs(best_z) > 0
        best_c = np.where(found, c[pick, cols], 0.0)
        best_k = np.where(found, np.asarray(bends)[pick], 0)
        best_rss = np.where(found, rss[pick, cols], np.inf)
        step_rss = rss[nb:].min(0)
        score = score_from_z(best_z)
        reach = np.abs(best_c) * (days - 1 - best_k)
        ramp = enough & (best_rss <= step_rss) & (np.abs(best_c) >= t.ramp_slope)
        # a level window turns into a trend only where the bend beats a step clearly: a step
        # a few hours old fits the last block's bend about as well as it fits a step
        self._ramp_shape = (best_c, ramp & (best_rss + BEND_MARGIN <= step_rss))
        out: list[Candidate | None] = []
        for j in range(n_out):
            if not (ramp[j] and score[j] >= t.ramp_score and reach[j] >= TREND_REACH):
                out.append(None)
                continue
            onset = int((days - 1 - best_k[j]) * DAY + DAY // 2)
            i = self.first + j
            obs, exp = float(self.x[i - 23 : i + 1].mean()), float(self.mu[i - 23 : i + 1].mean())
            direction = "up" if best_c[j] > 0 else "down"
            out.append(
                Candidate("trend_change", direction, onset, obs, exp, float(score[j]), best_c[j])
            )
        return out

    def _block(
        self, end: int, k: int, back: int | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log ratio, its variance, mostly usable) of k hours ending ``back`` before each."""
        s, m = self.window("x", end, k, back), self.window("mu", end, k, back)
        n = self.window("n", end, k, back)
        lr = self._log_ratio(s, m, n)
        if self.kind == "count":
            mu2 = self.window("mu2", end, k, back)
            var = 1.0 / (m + 0.5) + self.noise * mu2 / (m + 0.5) ** 2
        else:
            nn = np.maximum(n, 1)
            var = (self.spread / (np.abs(m / nn) + self.spread)) ** 2 / nn
        return lr, var, n >= 0.75 * k

    def _cycle(self, end: int) -> list[Candidate | None]:
        """Changes of the daily cycle seen against the same hours a week before.

        Over the last `CYCLE_WINDOW` hours, each hour's log ratio minus that of the same
        hour a week earlier, less a line through them (level and drift are other
        detectors' business), averaged over the two days by hour of day: a chi-square on
        what is left. Comparing data with data, the model's own misfit of the cycle cancels.
        The two days must agree (a one-day oddity is no change of cycle) and the pattern
        must be large enough to matter (`Thresholds.cycle_amplitude`, RMS on the log scale).
        """
        t, k = self.t, CYCLE_WINDOW
        n_out = end - self.first
        out: list[Candidate | None] = [None] * n_out
        if self.kind != "count":
            return out
        now = np.arange(self.first, end)[:, None] - np.arange(k)[::-1][None, :]
        then = now - WEEK
        ok = self.usable[now] & self.usable[then]
        d = self.logr[now] - self.logr[then]
        var = 1.0 / (self.mu[now] + 0.5) + 1.0 / (self.mu[then] + 0.5)
        w = np.where(ok, 1.0 / (var + 2 * self.noise + CYCLE_ERROR**2), 0.0)
        # less the weighted line through the window
        time = np.arange(k, dtype=float)[None, :]
        sw = w.sum(1, keepdims=True)
        safe = np.maximum(sw, 1e-12)
        tm = (w * time).sum(1, keepdims=True) / safe
        dm = (w * d).sum(1, keepdims=True) / safe
        sxx = np.maximum((w * (time - tm) ** 2).sum(1, keepdims=True), 1e-12)
        slope = (w * (time - tm) * (d - dm)).sum(1, keepdims=True) / sxx
        e = d - dm - slope * (time - tm)
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
        scale = np.maximum(np.maximum(within / pairs, self._jitter(end, k)), CYCLE_MIN_SCALE)
        q = np.minimum(ww * pattern**2 / scale[:, None], CYCLE_CAP).sum(1)
        n = ok.sum(1)
        dof = np.maximum(half - 2, 1)
        score = np.minimum(-np.log10(np.maximum(special.chdtrc(dof, q), 1e-300)), MAX_SCORE)
        amplitude = np.sqrt((ww * pattern**2).sum(1) / np.maximum(ww.sum(1), 1e-12))
        zed = pattern * np.sqrt(ww / scale[:, None])
        hi, lo = (zed > 2).sum(1), (zed < -2).sum(1)
        hit = (
            (n >= 0.75 * k)
            & (score >= t.cycle_score)
            & (amplitude >= t.cycle_amplitude)
            & (q >= 2 * within / scale)
            & (hi >= 3)
            & (lo >= 3)
        )
        for j in np.flatnonzero(hit):
            i = self.first + j
            obs = float(self.x[i - DAY + 1 : i + 1].mean())
            exp = float(self.mu[i - DAY + 1 : i + 1].mean())
            direction = "up" if obs >= exp else "down"
            out[j] = Candidate("seasonality_change", direction, DAY - 1, obs, exp, float(score[j]))
        return out

    def _jitter(self, end: int, k: int) -> np.ndarray:
        """Mean squared hour-to-hour change of the week-on-week log ratio, in units of its
        variance, over the `CYCLE_HISTORY` hours before the last k of each judged hour."""
        p = np.arange(WEEK + 1, len(self.x))
        ok = self.usable[p] & self.usable[p - 1] & self.usable[p - WEEK] & self.usable[p - WEEK - 1]
        step = (self.logr[p] - self.logr[p - WEEK]) - (self.logr[p - 1] - self.logr[p - WEEK - 1])
        poisson = [1.0 / (self.mu[q] + 0.5) for q in (p, p - 1, p - WEEK, p - WEEK - 1)]
        var = np.sum(poisson, axis=0) + 4 * self.noise + 2 * CYCLE_ERROR**2
        pad = np.zeros(WEEK + 2)
        ratio = np.concatenate([pad, np.where(ok, step**2 / var, 0.0)])
        count = np.concatenate([pad, ok.astype(float)])
        stop = np.arange(self.first, end) + 1 - k
        lo = np.maximum(stop - CYCLE_HISTORY, 0)
        cr, cn = np.cumsum(ratio), np.cumsum(count)
        n = cn[stop] - cn[lo]
        return np.where(n >= CYCLE_HISTORY / 2, (cr[stop] - cr[lo]) / np.maximum(n, 1), 1.0)

    def _season(self, end: int) -> list[Candidate | None]:
        """Seasonality changes: hours off in both directions, the level unmoved."""
        t, k = self.t, SEASON_WINDOW
        sw, swl, swl2 = (self.window(n, end, k) for n in ("w", "wl", "wl2"))
        hi, lo, n = (self.window(n, end, k) for n in ("hi", "lo", "n"))
        q = swl2 - swl**2 / np.maximum(sw, 1e-12)
        dof = np.maximum(n - 2, 1)
        score = np.minimum(-np.log10(np.maximum(special.chdtrc(dof, q), 1e-300)), MAX_SCORE)
        amplitude = np.sqrt(np.maximum(q, 0) / np.maximum(sw, 1e-12))
        mean = swl / np.maximum(sw, 1e-12)
        out: list[Candidate | None] = []
        for j in range(len(q)):
            ok = (
                n[j] >= 0.75 * k
                and score[j] >= t.season_score
                and amplitude[j] >= t.season_amplitude
                and hi[j] >= 3
                and lo[j] >= 3
                and hi[j] + lo[j] >= k / 3
                and abs(mean[j]) < t.level_change
            )
            if not ok:
                out.append(None)
                continue
            i = self.first + j
            obs, exp = (
                float(self.x[i - k + 1 : i + 1].mean()),
                float(self.mu[i - k + 1 : i + 1].mean()),
            )
            direction = "up" if obs >= exp else "down"
            out.append(Candidate("seasonality_change", direction, k - 1, obs, exp, float(score[j])))
        return out


def _wls_last(
    design: np.ndarray, y: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares of each column of ``y`` (n x k) on each design (m x p x n).

    Returns, per design and column (m x k), the last coefficient, its standard error
    (scaled up by the residual scatter when that exceeds the weights' promise) and the
    weighted residual sum of squares.
    """
    p = design.shape[1]
    xtwx = np.einsum("min,mjn,nk->mkij", design, design, w)
    xtwy = np.einsum("min,nk->mki", design, w * y)
    good = np.linalg.det(xtwx) > 1e-9
    xtwx[~good] = np.eye(p)
    inv = np.linalg.inv(xtwx)
    beta = np.einsum("mkij,mkj->mki", inv, xtwy)
    resid = y[None] - np.einsum("mki,min->mnk", beta, design)
    rss = (w[None] * resid**2).sum(1)
    dof = np.maximum((w > 0).sum(0) - p, 1)
    scale = np.maximum(rss / dof, 1.0)
    se = np.sqrt(inv[..., -1, -1] * scale)
    return (
        np.where(good, beta[..., -1], 0.0),
        np.where(good, se, np.inf),
        np.where(good, rss, np.inf),
    )
