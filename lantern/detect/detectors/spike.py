"""Spikes: one hour far above expectation, or a short burst of high hours judged on its total."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lantern.detect.detectors.evidence import Evidence
from lantern.detect.kinds import DetectionKind
from lantern.detect.verdicts import Candidate, down_score, up_score

SPIKE_FLOOR = 3.0  # events an hour below which a spike's expectation is not taken at its word
BURST_MIN_HOURS = 2  # a single high hour is a spike on its own
BURST_HOURS = 4  # longest run of high hours judged on its total as one spike
BURST_END = 1.5  # a burst is judged once an hour is back under this many times its expectation
VALUE_SPIKE_SIGMAS = 3  # a value's spike adds at least this many of its standard deviations
VALUE_BACK = 0.5  # a value's spike is over once an hour is this close (a share of it) again
# a measured value's normal range: the 5th to 95th percentile of its hours over the last two
# weeks (since its current normal began), once it holds three days of them
NORMAL_RANGE = (0.05, 0.95)
NORMAL_RANGE_HOURS = 14 * 24
NORMAL_RANGE_MIN_HOURS = 72


@dataclass(frozen=True)
class SpikeParams:
    """What a sensitivity asks of a spike."""

    score: float  # least -log10 p of the hour (or the burst's total)
    ratio: float  # least observed/expected
    min_events: float  # least events a count's spike adds over expectation
    rarity: float  # least -log10 p of the departure against the metric's own recent weeks
    value_change: float  # least |change| of a measured value, as a share of its level
    value_range: float  # least |change| of a measured value, as a share of its normal range
    # a change this many times its normal range needs no share of its level
    value_far: float


class SpikeDetector:
    """Spikes: the upper tail of one hour, or of a 2-to-4-hour burst's total.

    The statistic is the upper tail of Poisson(mu * exp(2 sqrt(phi))), the mean pushed two
    standard deviations up the gamma mixing distribution of a negative binomial, so that
    over-dispersion is never mistaken for an event (Lawless 1987; see `verdicts.up_score`);
    a value's is a Gaussian tail, of the hour's own spread for a mean whose hours are
    weighed by their events (`Evidence.spread`). A count's expectation is first raised to
    the model's own recent error at that hour (`Evidence.reference`) and to at least
    `SPIKE_FLOOR`, and the hour must stand out against the metric's own recent weeks,
    bursts included (`Evidence.rare_total`): tweets and error counts burst every few days.
    At a few events an hour no single hour of a burst adds enough, so a run of 2 to
    `BURST_HOURS` hours all above expectation is judged the same way on its total, once an
    hour is back near expectation (`BURST_END`): waiting for it keeps the first hours of a
    level shift from being called a spike.
    """

    kinds = (DetectionKind.SPIKE, DetectionKind.DROP)

    def __init__(self, params: SpikeParams) -> None:
        self.params = params

    def scan(self, evidence: Evidence) -> list[Candidate | None]:
        """The spike (or burst) found at each judged hour, or None."""
        # every hour's tail at once: `at` only for the hours that clear the bar before its
        # corrections (which only raise it), `burst` for the rest
        hours = np.arange(evidence.first, evidence.end)
        x, mu = evidence.x[hours], evidence.mu[hours]
        p = self.params
        if evidence.kind == "value":
            # each judged hour tells of the hour before it, which stood alone once this
            # one is back (`value_at`): the hours that may, from the one before the first
            prior = np.arange(evidence.first - 1, evidence.end - 1)
            px, pmu = evidence.x[prior], evidence.mu[prior]
            own = None if evidence.spread is None else evidence.spread[prior]
            spread = evidence.dispersion if own is None else own
            up = up_score(px, pmu, spread, "value")
            down = down_score(px, pmu, spread, "value")
            least = VALUE_SPIKE_SIGMAS * spread
            maybe = ((up >= p.score) | (down >= p.score)) & (np.abs(px - pmu) >= least)
            return [
                self.value_at(evidence, int(i)) if evidence.usable[i] and maybe[j] else None
                for j, i in enumerate(hours)
            ]
        up = up_score(x, mu, evidence.dispersion, evidence.kind)
        maybe = (up >= p.score) & (x >= p.ratio * mu) & (x - mu >= p.min_events)
        # a burst ends only at an hour back near expectation after two above it (`burst`),
        # and not where those two are too few to judge and the hour before them is low
        ended = x <= BURST_END * np.maximum(mu, SPIKE_FLOOR)
        for back in range(1, BURST_MIN_HOURS + 1):
            ended &= evidence.x[hours - back] > evidence.mu[hours - back]
        pair = evidence.x[hours - 2] + evidence.x[hours - 1]
        pair_expected = np.maximum(evidence.mu[hours - 2] + evidence.mu[hours - 1], 2 * SPIKE_FLOOR)
        too_few = (pair < p.ratio * pair_expected) | (pair - pair_expected < p.min_events)
        ended &= ~(too_few & (evidence.x[hours - 3] <= evidence.mu[hours - 3]))
        out: list[Candidate | None] = []
        usable = evidence.usable[hours]
        for j, i in enumerate(hours.tolist()):
            if not usable[j]:
                out.append(None)
            elif maybe[j]:
                out.append(self.at(evidence, i))
            elif ended[j] and evidence.kind == "count":
                out.append(self.burst(evidence, i))
            else:
                out.append(None)
        return out

    def value_at(self, evidence: Evidence, i: int) -> Candidate | None:
        """A measured value's hour far above its expectation (a spike) or far below it (a
        drop of one hour: a speed that collapses in a jam), judged once the next hour is
        back near expectation, or the first hour of a new level would be one."""
        if i < 1 or not evidence.usable[i - 1]:
            return None
        x, mu, up, down = evidence.hourly(i - 1)
        p = self.params
        spread = evidence.dispersion if evidence.spread is None else evidence.spread_at(i - 1)
        upward = up >= down
        score = up if upward else down
        departure = abs(x - mu)
        if score < p.score or departure < VALUE_SPIKE_SIGMAS * spread:
            return None
        now, expected = evidence.x[i], evidence.mu[i]
        if abs(now - expected) > VALUE_BACK * departure:
            return None
        # a measurement's own tail is all there is to go by: its Gaussian model knows
        # nothing of how often a price or a load time jumps, so it waits for three days
        # of history since the current normal
        width = normal_range(evidence, i - 1)
        if departure < p.value_range * width:
            return None
        # a share of its level, unless far beyond anything it did lately: a latency that
        # never leaves 44-47 ms and jumps to 53 has changed, though only by a fifth
        if departure < p.value_change * (abs(mu) + spread) and departure < p.value_far * width:
            return None
        if not evidence.rare_total(
            i - 1, 1, up=upward, least=self.params.rarity, needs_history=True
        ):
            return None
        kind = DetectionKind.SPIKE if upward else DetectionKind.DROP
        return Candidate(kind.value, "up" if upward else "down", 1, x, mu, score)

    def at(self, evidence: Evidence, i: int) -> Candidate | None:
        """A count's spike at hour i, or a burst that ended just before it."""
        if not evidence.usable[i]:
            return None
        x, mu, up, _ = evidence.hourly(i)
        # the corrections below only ever raise the bar, so they are computed for hours
        # that clear it without them
        if self.is_spike(evidence, x, mu, up):
            # a quiet hour's expectation rests on a handful of events: never trust it below
            # a few, or a stray burst at night pages someone
            mu = max(mu * evidence.reference(i, i + 1, up=True), SPIKE_FLOOR)
            up = float(up_score(np.array([x]), np.array([mu]), evidence.dispersion, "count")[0])
        if self.is_spike(evidence, x, mu, up) and evidence.rare_total(
            i, 1, up=True, least=self.params.rarity
        ):
            return Candidate(DetectionKind.SPIKE.value, "up", 0, x, mu, up)
        return self.burst(evidence, i)

    def burst(self, evidence: Evidence, i: int) -> Candidate | None:
        """A spike of 2 to `BURST_HOURS` hours that ended before hour i, judged on its total.

        At a few events an hour no single hour of a burst clears a spike's bar (10 events
        more than expected, at least 3 expected); a run of hours all above expectation is
        judged as one hour would be, on the sums, once an hour back near expectation shows
        it was not the start of a new level.
        """
        p, x, mu = self.params, evidence.x, evidence.mu
        if evidence.kind != "count" or x[i] > BURST_END * max(mu[i], SPIKE_FLOOR):
            return None
        # hours out of use have x = mu = 0 here, so they end a run too
        if x[i - 1] <= mu[i - 1]:
            return None
        for k in range(BURST_MIN_HOURS, BURST_HOURS + 1):
            lo = i - k
            if lo < 0 or x[lo] <= mu[lo]:
                return None
            total, raw = float(x[lo:i].sum()), float(mu[lo:i].sum())
            expected = max(raw, SPIKE_FLOOR * k)
            if total < p.ratio * expected or total - expected < p.min_events:
                continue  # the reference below only ever raises the expectation
            expected = max(raw * evidence.reference(lo, i, up=True), SPIKE_FLOOR * k)
            up = float(
                up_score(np.array([total]), np.array([expected]), evidence.dispersion, "count")[0]
            )
            if self.is_spike(evidence, total, expected, up) and evidence.rare_total(
                i - 1, k, up=True, least=p.rarity
            ):
                return Candidate(DetectionKind.SPIKE.value, "up", k, total / k, expected / k, up)
        return None

    def is_spike(self, evidence: Evidence, x: float, mu: float, up: float) -> bool:
        """A count far enough above ``mu``: significant, a ratio, and a handful of events."""
        p = self.params
        return up >= p.score and x >= p.ratio * mu and x - mu >= p.min_events


def normal_range(evidence: Evidence, i: int) -> float:
    """The width of a measured value's normal range before hour i (`NORMAL_RANGE` of its
    hours over `NORMAL_RANGE_HOURS`, episodes included); infinite with too few of them.

    A measurement's zero is arbitrary (a temperature, a latency with a fixed floor), so a
    change as a share of its level says little; how far its hours normally range does. A
    price whose hours range from 0.2 to 0.6 and one hour at 0.35 below expectation has not
    left its normal behaviour, however small its residual scatter; a latency that never
    leaves 44-47 ms and jumps to 53 has.
    """
    window = np.arange(max(i - NORMAL_RANGE_HOURS, 0), i)
    seen = np.isfinite(evidence.raw_x[window])
    if evidence.recent is not None:
        seen &= evidence.recent[window]
    if np.count_nonzero(seen) < NORMAL_RANGE_MIN_HOURS:
        return float("inf")
    low, high = np.quantile(evidence.seen_x[window[seen]], NORMAL_RANGE)
    return float(high - low)
