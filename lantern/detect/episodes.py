"""The judging of a metric's hours and the life of its episodes (`Run`).

A `Run` holds a mutable copy of a metric's state and the events told so far: it refits the
model on the metric's daily schedule and after every lasting change, judges each day's
hours with the detectors (`detectors.graded_candidates`), and follows each episode from
the hour it opens to its end: a short one (spike, drop, outage) resolved when its hours
are back, a lasting one adopted as the new normal after a day, or over when the metric
returns to the normal before it. `stream` is the only caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from lantern.detect.detectors import (
    LOOKBACK,
    WINDOW_ERROR,
    Evidence,
    graded_candidates,
)
from lantern.detect.detectors.trend import TREND_DAYS
from lantern.detect.kinds import PERSISTENT, SHORT_LIMIT, DetectionKind
from lantern.detect.model import FIT_DAYS, Baseline, empty_as_zero, fit_baseline
from lantern.detect.series import DAY, TRAINING_DAYS, WEEK, SeriesError
from lantern.detect.state import LEVELS, EpisodeEvent, MetricState, Status, hour_stamp
from lantern.detect.verdicts import Candidate, Detection

TRAINING_HOURS = TRAINING_DAYS * DAY
FIT_HOURS = FIT_DAYS * DAY
CONFIRM_HOURS = 24  # a lasting change is adopted as the new normal after this long
# after a lasting change is adopted the model takes the new normal at once, and spikes,
# drops and outages are reported throughout; a further lasting change so soon is likelier
# to be the young model's error than news for a while: 6 days after a level, 10 after a
# cycle (relearned from a week of it) or a trend (one that goes on is the same news)
SETTLE_HOURS: dict[str, int] = {
    DetectionKind.LEVEL_SHIFT.value: 6 * DAY,
    DetectionKind.SEASONALITY_CHANGE.value: 10 * DAY,
    DetectionKind.TREND_CHANGE.value: 10 * DAY,
}
# a model re-learning its level after a lasting change drifts for a week before its slope
# settles: a trend change is heard of that much later than a level
TREND_SETTLE = 7 * DAY
# a trend change bends away from the line of the last `TREND_DAYS` daily blocks: a metric
# with fewer days than that has no such line, and its missing first blocks (which the test
# allows for gaps) left a young model's first weekends to bend it (a quiet demo metric
# whose second weekend ran low was told as a trend change down on its twelfth day)
TREND_HISTORY = TREND_DAYS * DAY
# the variance (log scale) of a new normal's level learned from one day of it; it shrinks
# as the new normal accumulates days and is added to the model's error until
# `NEW_NORMAL_DAYS` have passed
NEW_NORMAL_VAR = 0.04
NEW_NORMAL_DAYS = 14
# while the new normal is that young, the metric coming back to the normal before it ends
# the adopted change (`Run._back_to_former`): a holiday, a campaign or a three-day jam
# adopted after a day is over when it ends, not a new drop
FORMER_HOURS = NEW_NORMAL_DAYS * DAY
# a level shift is over when its last hours are back near the old normal (`_returned`):
# the last `RETURN_HOURS` (more, up to a day, until the old normal expects `RETURN_EVENTS`
# events of them) must have come back to within `RETURN_SHARE` of the shift, by at least
# `RETURN_Z` standard errors: a quiet night of a shifted metric is no return
RETURN_HOURS = 6
RETURN_EVENTS = 30
RETURN_SHARE = 1 / 3
RETURN_Z = 4.0
RETURN_HOUR_Z = 3.0  # and no hour of them further than this from the old normal
# and their total no further above (below, for a shift down) the old normal than this many
# standard errors: hours a third of the way back but still clearly shifted are no return
RETURN_NEAR_Z = 2.0
# an open short episode goes on while its hours stay this far off, up or down, and this
# significant; it is resolved after `RESOLVE_HOURS` hours back to normal
STILL_UP = 1.3  # observed/expected of an hour still up
STILL_DOWN = 0.75  # observed/expected of an hour still down
STILL_SCORE = 1.3  # -log10 p of an hour still off (p of 5%)
RESOLVE_HOURS = 2
# nor while the hours since its last abnormal one are, together, still off its way: by this
# many standard errors (one-sided 5%, as `STILL_SCORE`) and by `STILL_UP` or `STILL_DOWN`.
# An hour of a quiet metric says little, their total more: a doubling at 25 an hour is no
# hour-by-hour anomaly after its first, and was resolved to be found again the next day
STILL_Z = 1.645
# the hours of a count expecting this many events or more each are judged one by one: their
# Poisson noise alone no longer hides a `STILL_UP` change ((STILL_Z / log STILL_UP)^2)
QUIET_HOUR = (STILL_Z / np.log(STILL_UP)) ** 2
# a short episode (spike, drop, outage) that begins within this many hours of the end of
# the last one in the same direction, and is not much larger than it, is the same
# turbulence again: followed, not told (a metric that bursts every few hours is one
# incident); much larger is twice as far from expectation (`_size`, for counts a ratio).
# Less than a day: the same hour the next day is a new incident (a road jammed two
# mornings running, a nightly job failing twice), and the metric's own tail leaves the
# day before out (`detectors.evidence.TAIL_GAP`), so the repeat rule alone hid it
REPEAT_HOURS = DAY - 1
REPEAT_LARGER = 2.0
YOUNG_ERROR = 0.07

# told (first hour, stop, expected, model, a mean's counts) of each stretch one model judged
Trace = Callable[[int, int, np.ndarray, Baseline, np.ndarray | None], None]


class Run:
    """One call's worth of judging: a mutable copy of the state and the events so far."""

    def __init__(
        self,
        state: MetricState,
        origin: int,
        values: np.ndarray,
        trace: Trace | None = None,
        *,
        counts: np.ndarray | None = None,
        within: np.ndarray | None = None,
    ) -> None:
        self.state = state
        self.origin = origin
        self.values = values
        for support in (counts, within):
            if support is not None and len(support) != len(values):
                raise SeriesError("counts and variances must cover the same hours as the values")
        # a mean's events behind each hour, and their values' variance within it
        self.counts = counts if state.kind == "mean" else None
        self.within = within if self.counts is not None else None
        # each judged hour's own standard deviation under the model judging it (`_judge`)
        self.own: np.ndarray | None = None
        # the former normal's model, built from the state once (`_former_model`)
        self._former_cache: tuple[dict[str, Any], Baseline] | None = None
        self.hours = origin + np.arange(len(values))
        self.events: list[EpisodeEvent] = []
        # episodes are found and followed at the most sensitive setting, whatever the
        # metric's; its setting decides which of them are told (see `_judge`)
        self.level = LEVELS.index(state.sensitivity)
        # told (first, stop, expected, model) for each stretch of hours one model judged
        self.trace = trace

    def until(self, now: int) -> None:
        """Judge hours up to ``now`` inclusive."""
        s = self.state
        t = s.last_hour + 1 if s.last_hour is not None else s.first_hour + TRAINING_HOURS
        while t <= now:
            if t - FIT_HOURS < self.origin and self.origin > self.state.first_hour:
                raise SeriesError("the series must hold the 28 days before the first hour to judge")
            if self.state.model is None or self.state.refit_due or (t - s.stagger) % DAY == 0:
                self._refit(t)
            stop = min(now + 1, t + ((self.state.stagger - t) % DAY or DAY))
            t = self._judge(t, stop)

    def _usable(self, lo: int, hi: int) -> np.ndarray:
        """Which hours in [lo, hi) may be learned from and counted in windows."""
        s = self.state
        hours = np.arange(lo, hi)
        ok = hours >= max(s.first_hour, s.anchor if s.anchor is not None else s.first_hour)
        for start, end in s.masks:
            ok &= ~((hours >= start) & (hours <= (end if end >= 0 else hi)))
        return ok

    def _slice(self, lo: int, hi: int, of: np.ndarray | None = None) -> np.ndarray:
        """Values (or ``of``, aligned to them) of hours [lo, hi), NaN before the series
        starts."""
        a, b = lo - self.origin, hi - self.origin
        part = (self.values if of is None else of)[max(a, 0) : b]
        return np.concatenate([np.full(max(-a, 0), np.nan), part]) if a < 0 else part

    def _count_at(self, hour: int) -> float:
        """The events behind a mean's hour; NaN where unknown."""
        at = hour - self.origin
        if self.counts is None or not 0 <= at < len(self.counts):
            return float("nan")
        return float(self.counts[at])

    def _refit(self, t: int) -> None:
        s = self.state
        lo = max(t - FIT_HOURS, s.first_hour)
        usable = self._usable_masks_only(lo, t)
        if s.kind == "count":
            usable &= np.isfinite(self._slice(lo, t))
        # (a value model decides itself what its missing hours are: see fit_baseline)
        if s.anchor is not None and t - s.anchor >= WEEK:
            # a week of the new normal is enough to stand in for the old one, which would
            # otherwise leave a step in the window for the decomposition to misread
            usable &= np.arange(lo, t) >= s.anchor
        model = fit_baseline(
            np.arange(lo, t),
            self._slice(lo, t),
            usable,
            kind=s.kind,
            fit_hour=t,
            anchor=s.anchor,
            reshaped=s.reshaped,
            prior_slope=s.prior_slope,
            # the slope the model has learned of the new normal so far
            carried_slope=s.model.slope if s.trending and s.model is not None else None,
            counts=None if self.counts is None else self._slice(lo, t, self.counts),
            within=None if self.within is None else self._slice(lo, t, self.within),
        )
        self.state = replace(s, model=model, refit_due=False)

    def _usable_masks_only(self, lo: int, hi: int) -> np.ndarray:
        hours = np.arange(lo, hi)
        ok = np.ones(hi - lo, dtype=bool)
        for start, end in self.state.masks:
            ok &= ~((hours >= start) & (hours <= (end if end >= 0 else hi)))
        return ok

    def _judge(self, t: int, stop: int) -> int:
        """Judge hours [t, stop) with the current model; return the next hour to judge."""
        s = self.state
        assert s.model is not None
        lo = t - LOOKBACK
        x, mu = self._slice(lo, stop), s.model.expected(np.arange(lo, stop))
        unit = s.model.unit
        if s.kind == "value" and s.model.kind == "count":
            # pseudo-counts: an hour without a value may be an hour without events
            mu = mu / unit
            seen = np.arange(lo, stop) >= s.first_hour
            x = np.where(seen, empty_as_zero(x / unit, mu), np.nan)
        usable = self._usable(lo, stop) & np.isfinite(x)
        # what the metric has done since its current normal began, episodes included
        since = s.anchor if s.anchor is not None else s.first_hour
        recent = (np.arange(lo, stop) >= max(since, s.first_hour)) & np.isfinite(x)
        calm = None
        if s.outages:
            calm = recent.copy()
            for first, last in s.outages:
                calm[max(first - lo, 0) : max(last + 1 - lo, 0)] = False
        # a model that has seen one week knows the weekly cycle from one sample an hour
        young = not s.model.weekly
        # a new normal's level is known only as well as its few days tell
        extra = self._new_normal_var(t)
        allowance = (YOUNG_ERROR**2 if young else 0.0) + extra
        # a mean's hours weighed by their events: each its own spread, with the allowance
        # the model's one spread gets
        n = None if self.counts is None else self._slice(lo, stop, self.counts)
        self.own = s.model.spread(n) if n is not None and s.model.weighted else None
        evidence = Evidence(
            x,
            mu,
            usable,
            first=LOOKBACK,
            kind=s.model.kind,
            dispersion=s.model.dispersion + allowance,
            window_error=float(np.sqrt((YOUNG_ERROR if young else WINDOW_ERROR) ** 2 + extra)),
            recent=recent,
            calm=calm,
            spread=None if self.own is None else self.own + allowance,
        )
        by_level, grades = graded_candidates(evidence)
        found = by_level[0]
        upgrades = self._episode_grades(lo, stop, x, mu, evidence)
        judged = stop
        for offset, (candidate, grade) in enumerate(zip(found, grades, strict=True)):
            u = int(t + offset)
            if candidate is not None and unit != 1.0:
                observed, expected = candidate.observed * unit, candidate.expected * unit
                candidate = replace(candidate, observed=observed, expected=expected)
            if upgrades is not None and self.state.episode is not None:
                told = upgrades[0][self._level_of(self.state.episode["kind"])][offset]
                self._upgrade(u, told, upgrades[1][offset], unit)
            level = self._level_of(candidate.kind) if candidate is not None else self.level
            told_here = by_level[level][offset] if grade >= level else None
            if told_here is not None and unit != 1.0:
                told_here = replace(
                    told_here,
                    observed=told_here.observed * unit,
                    expected=told_here.expected * unit,
                )
            if self._step(u, LOOKBACK + offset, candidate, told_here, grade, x, mu, evidence):
                judged = u + 1
                break
        self.state = replace(self.state, last_hour=judged - 1)
        if self.trace is not None:
            span = slice(LOOKBACK, LOOKBACK + judged - t)
            self.trace(t, judged, unit * mu[span], s.model, None if n is None else n[span])
        return judged

    def _step(
        self,
        u: int,
        i: int,
        candidate: Candidate | None,
        told: Candidate | None,
        grade: int,
        x: np.ndarray,
        mu: np.ndarray,
        evidence: Evidence,
    ) -> bool:
        """Apply hour u's evidence to the episode; True when the state changed its model."""
        s = self.state
        episode = s.episode
        if episode is None:
            if candidate is None or not np.isfinite(x[i]):
                return False
            if candidate.kind != DetectionKind.OUTAGE and u < s.quiet_until:
                return False
            if self._back_to_former(u, i, x, mu, candidate):
                return True
            if candidate.kind in PERSISTENT and u < s.settled_until:
                return False
            young = self._young(u)
            if candidate.kind == DetectionKind.TREND_CHANGE and (
                u < s.settled_until + TREND_SETTLE or young
            ):
                return False
            if young and told is not None and told.kind == DetectionKind.TREND_CHANGE:
                told = None  # followed as what the most sensitive setting found, untold
            return self._open(u, candidate, told, grade)
        if episode["kind"] in PERSISTENT:
            if episode["kind"] == DetectionKind.LEVEL_SHIFT and self._returned(
                i, x, mu, episode, own=self.own
            ):
                masks = (
                    *tuple(m for m in s.masks if m[1] >= 0),
                    (episode["start"], u - RETURN_HOURS),
                )
                self._emit("resolved", u, episode)
                self.state = replace(s, episode=None, masks=self._prune(masks, u))
                return True
            if (
                not s.holding
                and u >= episode["opened_at"] + CONFIRM_HOURS
                and u - episode["start"] >= DAY
            ):
                self._emit("accepted", u, episode)
                assert s.model is not None  # the model the episode was judged by
                former = {
                    "model": s.model.to_dict(),
                    "anchor": s.anchor,
                    "reshaped": s.reshaped,
                    "prior_slope": s.prior_slope,
                    "trending": s.trending,
                    "settled_until": s.settled_until,
                    "until": u + FORMER_HOURS,
                    "episode": episode,
                }
                self.state = replace(
                    s,
                    former=former,
                    episode=None,
                    anchor=episode["start"],
                    reshaped=True,
                    masks=tuple(m for m in s.masks if m[1] >= 0),
                    prior_slope=episode.get("slope"),
                    trending=s.trending or episode["kind"] == DetectionKind.TREND_CHANGE,
                    refit_due=True,
                    settled_until=u + SETTLE_HOURS[episode["kind"]],
                )
                return True
            return False
        up, down = evidence.hourly_scores(i)
        if episode["direction"] == "up":
            abnormal = x[i] >= STILL_UP * mu[i] and up >= STILL_SCORE
        else:
            abnormal = x[i] <= STILL_DOWN * mu[i] and down >= STILL_SCORE
        if abnormal:
            episode = {**episode, "last_abnormal": u}
            self.state = replace(s, episode=episode)
        if u - episode["last_abnormal"] >= RESOLVE_HOURS and not self._still_off(
            i, u - episode["last_abnormal"], x, mu, evidence, episode["direction"]
        ):
            masks = (
                *tuple(m for m in s.masks if m[1] >= 0),
                (episode["start"], episode["last_abnormal"]),
            )
            self._emit("resolved", u, episode)
            last = (
                episode["direction"],
                int(episode["last_abnormal"]),
                float(episode.get("size", 0.0)),
            )
            outages = s.outages
            if episode["kind"] == DetectionKind.OUTAGE:
                outages = (*outages, (episode["start"], episode["last_abnormal"]))
            outages = self._prune(outages, u)
            self.state = replace(
                s, episode=None, masks=self._prune(masks, u), last_short=last, outages=outages
            )
            return True
        if u - episode["start"] >= SHORT_LIMIT[episode["kind"]]:
            kind = evidence.classify(i - (u - episode["start"]), i)
            episode = {**episode, "kind": kind, "opened_at": u}
            if episode.get("repeat"):
                # turbulence that has become a lasting change is news again
                episode["repeat"] = False
                if episode["grade"] >= self._level_of(kind):
                    episode.update(told=True, told_at=u, **self._told_of(episode))
                    self._emit("opened", u, episode)
                self.state = replace(s, episode=episode)
                return False
            self._emit("updated", u, episode)
            self.state = replace(s, episode=episode)
            return False
        return False

    def _back_to_former(self, u: int, i: int, x: np.ndarray, mu: np.ndarray, c: Candidate) -> bool:
        """Whether hour u's verdict is the metric back at the normal it had before its last
        adopted change, less than `FORMER_HOURS` ago; if so that change is over: `resolved`,
        the old normal restored (the adopted hours masked) and nothing new told.

        Only a short verdict (a spike or a drop) is such a return, and only when its hours
        have come back as a level shift's return asks (`_returned`, against the old model,
        the shift being from it to the current one), each of them nearer the old normal
        than the new. A lasting change back towards the old normal stays news (a second
        level shift); a count's silence is never a return (the outage is told however low
        the old normal was). Judged only where a detector found something: a check at every
        hour of the two weeks, on the last six hours, took a moved cycle's quiet nights for
        returns and raised the bench's false alerts by half.
        """
        s = self.state
        former = s.former
        model = s.model
        if former is None or u >= former["until"] or model is None:
            return False
        if c.kind in PERSISTENT or (c.kind == DetectionKind.OUTAGE and model.kind == "count"):
            return False
        old_model = self._former_model(former)
        length = int(c.start_offset) + 1
        span = slice(i - length + 1, i + 1)
        old = old_model.expected(np.arange(u - length + 1, u + 1))
        if s.kind == "value" and model.kind == "count":
            old = old / model.unit  # pseudo-counts, as ``x`` and ``mu``
        # the way the adopted normal moved the metric, at these hours
        moved = "up" if mu[span].sum() > old.sum() else "down"
        if c.direction == moved:
            return False
        accepted = former["episode"]
        if not self._returned(
            length - 1,
            x[span],
            old,
            {"direction": moved},
            model=old_model,
            hours=length,
            shifted=mu[span],
            own=None if self.own is None else self.own[span],
        ):
            return False
        adopted = (int(accepted["start"]), u - length)
        self._emit("resolved", u, accepted)
        self.state = replace(
            s,
            former=None,
            model=old_model,
            anchor=former["anchor"],
            reshaped=former["reshaped"],
            prior_slope=former["prior_slope"],
            trending=former["trending"],
            settled_until=former["settled_until"],
            masks=self._prune((*tuple(m for m in s.masks if m[1] >= 0), adopted), u),
            refit_due=True,
        )
        return True

    def _former_model(self, former: dict[str, Any]) -> Baseline:
        """The model of the normal before the adopted change (built once per run)."""
        cached = self._former_cache
        if cached is None or cached[0] is not former:
            cached = (former, Baseline.from_dict(former["model"]))
            self._former_cache = cached
        return cached[1]

    @staticmethod
    def _still_off(
        i: int, length: int, x: np.ndarray, mu: np.ndarray, evidence: Evidence, direction: str
    ) -> bool:
        """Whether the ``length`` hours ending at hour ``i`` of a quiet count (`QUIET_HOUR`)
        are, together, still off in ``direction`` (`STILL_Z`)."""
        recent = slice(i - length + 1, i + 1)
        seen, expected = float(np.nansum(x[recent])), float(mu[recent].sum())
        if evidence.kind != "count" or expected / length >= QUIET_HOUR:
            return False  # each hour tells for itself
        z = float(evidence.total_z(np.array([i]), length, seen=True)[0])
        if not np.isfinite(z):
            return False
        if direction == "up":
            return z >= STILL_Z and seen >= STILL_UP * expected
        return z <= -STILL_Z and seen <= STILL_DOWN * expected

    def _open(self, u: int, c: Candidate, told: Candidate | None, grade: int) -> bool:
        s = self.state
        assert s.model is not None
        start = int(u - c.start_offset)
        size = self._size(c)
        repeat = self._repeat(u, c, size)
        if repeat:
            assert s.last_short is not None  # what it repeats
            told, size = None, max(size, s.last_short[2])
        episode = {
            "kind": c.kind,
            "direction": c.direction,
            "start": start,
            "opened_at": u,
            "told_at": u,
            "told": told is not None,
            "grade": grade,
            "last_abnormal": u,
            "observed": float(c.observed),
            "expected": float(c.expected),
            "score": float(c.score),
            "size": size,
            "repeat": repeat,
        }
        if told is not None:
            # what is told is the verdict at the metric's own setting
            episode.update(self._told(told))
        self._emit("opened", u, episode)
        if c.kind in PERSISTENT:
            extra = c.slope / DAY if c.kind == DetectionKind.TREND_CHANGE else 0.0
            episode["slope"] = float(s.model.slope + extra)
        # the episode's hours teach the model nothing until it is over or accepted
        self.state = replace(s, episode=episode, masks=(*s.masks, (start, -1)))
        return True

    def _size(self, c: Candidate) -> float:
        """How far a verdict's hours are from expectation: the log ratio for counts (and
        pseudo-counts), the difference in residual deviations for values."""
        model = self.state.model
        assert model is not None
        if model.kind == "count":
            pad = 0.5 * model.unit
            return abs(float(np.log((c.observed + pad) / (c.expected + pad))))
        return abs(float(c.observed - c.expected)) / max(model.dispersion, 1e-9)

    def _repeat(self, u: int, c: Candidate, size: float) -> bool:
        """Whether a short verdict repeats the last short episode (`REPEAT_HOURS`)."""
        last = self.state.last_short
        if last is None or c.kind in PERSISTENT:
            return False
        direction, ended, before = last
        model = self.state.model
        assert model is not None
        larger = (
            size > before + np.log(REPEAT_LARGER)
            if model.kind == "count"
            else size > REPEAT_LARGER * before
        )
        return direction == c.direction and u - ended <= REPEAT_HOURS and not larger

    @staticmethod
    def _told_of(episode: dict[str, Any]) -> dict[str, Any]:
        """The told fields of an episode from its own verdict (the state's, in its units)."""
        return {
            "told_kind": episode["kind"],
            "told_direction": episode["direction"],
            "told_observed": float(episode["observed"]),
            "told_expected": float(episode["expected"]),
            "told_score": float(episode["score"]),
        }

    @staticmethod
    def _told(c: Candidate) -> dict[str, Any]:
        """The fields of an episode that say what was told (the state keeps its own)."""
        return {
            "told_kind": c.kind,
            "told_direction": c.direction,
            "told_observed": float(c.observed),
            "told_expected": float(c.expected),
            "told_score": float(c.score),
        }

    def _episode_grades(
        self, lo: int, stop: int, x: np.ndarray, mu: np.ndarray, evidence: Evidence
    ) -> tuple[list[list[Candidate | None]], list[int]] | None:
        """The graded verdicts of the judged hours with the open episode's own hours in use,
        while its grade can still rise: the episode is followed at the most sensitive
        setting, and told at a stricter one once its hours clear that one too (a repeat,
        `_repeat`, is never told)."""
        episode = self.state.episode
        if episode is None or episode.get("grade", len(LEVELS) - 1) >= len(LEVELS) - 1:
            return None
        if episode.get("repeat"):
            return None
        hours = np.arange(lo, stop)
        own = (hours >= episode["start"]) & np.isfinite(x)
        unmasked = Evidence(
            x,
            mu,
            evidence.usable | own,
            first=evidence.first,
            kind=evidence.kind,
            dispersion=evidence.dispersion,
            window_error=evidence.window_error,
            recent=evidence.recent,
            calm=evidence.calm,
            spread=evidence.spread,
        )
        return graded_candidates(unmasked)

    def _upgrade(self, u: int, c: Candidate | None, grade: int, unit: float) -> None:
        """Raise the open episode's grade by hour u's verdict; tell it once it clears the
        metric's setting (the verdict then says what is told)."""
        episode = self.state.episode
        if episode is None or c is None or grade <= episode.get("grade", len(LEVELS) - 1):
            return
        cycle = c.kind == episode["kind"] == DetectionKind.SEASONALITY_CHANGE
        if c.direction != episode["direction"] and not cycle:
            # another movement than the episode's: not what it would tell (a change of the
            # daily cycle has no direction of its own, only the sign of its last day's net)
            return
        if c.kind == DetectionKind.TREND_CHANGE and self._young(u):
            return  # no trend to bend from yet (`TREND_HISTORY`)
        told = episode["told"]
        episode = {**episode, "grade": grade}
        if not told and grade >= self._level_of(episode["kind"]):
            # what is told is this hour's evidence; the opening's stays for the state's use,
            # which must not depend on the setting
            scaled = replace(c, observed=c.observed * unit, expected=c.expected * unit)
            episode.update(told=True, told_at=u, **self._told(scaled))
        self.state = replace(self.state, episode=episode)
        if not told and episode["told"]:
            self._emit("opened", u, episode)

    def _young(self, u: int) -> bool:
        """Whether hour u comes before the metric has the days a trend change is judged on."""
        return u - self.state.first_hour < TREND_HISTORY

    def _level_of(self, kind: str) -> int:
        """The setting (index in `LEVELS`) an episode of ``kind`` is told at: the metric's
        own, raised by the team's feedback on that kind, never beyond `low`."""
        raised = dict(self.state.raised).get(kind, 0)
        return min(self.level + max(raised, 0), len(LEVELS) - 1)

    def _new_normal_var(self, t: int) -> float:
        """The extra variance of a level learned since a lasting change: `NEW_NORMAL_VAR`
        for one day of the new normal, shrinking as 1/days (the error of a mean of days)."""
        anchor = self.state.anchor
        if anchor is None or t - anchor >= NEW_NORMAL_DAYS * DAY:
            return 0.0
        return NEW_NORMAL_VAR * DAY / max(t - anchor, DAY)

    def _returned(
        self,
        i: int,
        x: np.ndarray,
        mu: np.ndarray,
        episode: dict[str, Any],
        *,
        model: Baseline | None = None,
        hours: int | None = None,
        shifted: np.ndarray | None = None,
        own: np.ndarray | None = None,
    ) -> bool:
        """Whether a level shift is over: its last hours are back at the old normal (``mu``,
        of ``model``, the current one unless given).

        By default the last `RETURN_HOURS` (more for a quiet count) and the episode's shift;
        with ``hours`` and ``shifted`` (the new normal, aligned to ``mu``) the last
        ``hours``, the shift from ``mu`` to ``shifted``, and each hour nearer ``mu`` than
        ``shifted`` instead of within `RETURN_HOUR_Z` of ``mu`` (the old model's spread is
        no measure of a normal it no longer fits: `_back_to_former`). ``own`` (aligned to
        ``mu``) is each hour's own standard deviation, for a mean weighed by its events.
        """
        model = model or self.state.model
        if model is None:
            return False
        if hours is None:
            hours = RETURN_HOURS
            if model.kind == "count":
                while hours < DAY and np.nansum(mu[i - hours + 1 : i + 1]) < RETURN_EVENTS:
                    hours += 1
        recent = slice(i - hours + 1, i + 1)
        seen, expected = x[recent], mu[recent]
        if not np.isfinite(seen).all():
            return False
        if model.kind == "count":
            shift = (
                np.log((episode["observed"] + 0.5) / (episode["expected"] + 0.5))
                if shifted is None
                else np.log((shifted[recent].sum() + 0.5) / (expected.sum() + 0.5))
            )
            change = float(np.log((seen.sum() + 0.5) / (expected.sum() + 0.5)))
            spread = float(np.sqrt(1.0 / (expected.sum() + 0.5) + model.dispersion / hours))
            hourly = np.log((seen + 0.5) / (expected + 0.5)) / np.sqrt(
                1.0 / (expected + 0.5) + model.dispersion
            )
        else:
            scale = float(np.abs(expected).mean()) + model.dispersion
            shift = (
                (episode["observed"] - episode["expected"]) / scale
                if shifted is None
                else float((shifted[recent] - expected).mean()) / scale
            )
            change = float((seen - expected).mean()) / scale
            if own is None:
                spread = model.dispersion / scale / np.sqrt(hours)
                hourly = (seen - expected) / model.dispersion
            else:
                # a mean's hours, each of its own spread: the mean change's is their root
                # sum of squares over the hours
                own = own[recent]
                spread = float(np.sqrt((own**2).sum())) / hours / scale
                hourly = (seen - expected) / own
        sign = 1.0 if episode["direction"] == "up" else -1.0
        back = sign * (shift - change)
        # every hour back, not only their sum: a moved cycle's day sums to the old normal
        every = bool(np.abs(hourly).max() < RETURN_HOUR_Z)
        if shifted is not None:
            new = shifted[recent]
            if model.kind == "count":
                to_old = np.abs(np.log((seen + 0.5) / (expected + 0.5)))
                to_new = np.abs(np.log((seen + 0.5) / (new + 0.5)))
            else:
                to_old, to_new = np.abs(seen - expected), np.abs(seen - new)
            every = bool((to_old < to_new).all())
        # (a mean's hours are not independent enough for their mean's standard error)
        near = model.kind != "count" or sign * change < RETURN_NEAR_Z * spread
        return bool(
            every
            and near
            and sign * change < RETURN_SHARE * sign * shift
            and back >= RETURN_Z * spread
        )

    def _prune(self, masks: tuple[tuple[int, int], ...], u: int) -> tuple[tuple[int, int], ...]:
        return tuple(m for m in masks if m[1] < 0 or m[1] >= u - FIT_HOURS)

    def _emit(self, status: Status, u: int, episode: dict[str, Any]) -> None:
        if not episode.get("told", True):
            return  # below this metric's setting: followed, never told
        s = self.state
        assert s.model is not None
        expected = float(episode.get("told_expected", episode["expected"]))
        observed = float(episode.get("told_observed", episode["observed"]))
        counts = None
        if s.model.weighted and episode["kind"] not in PERSISTENT:
            # a short episode of a mean: the band of its first hour, by its events
            counts = np.array([self._count_at(episode["start"])])
        low, high = s.model.band(np.array([expected]), counts=counts)
        relative = (observed - expected) / max(abs(expected), 1e-9)
        opened = status == "opened"
        detection = Detection(
            kind=episode.get("told_kind", episode["kind"]) if opened else episode["kind"],
            direction=episode.get("told_direction", episode["direction"]),
            start=hour_stamp(episode["start"]),
            detected_at=hour_stamp(
                episode.get("told_at", episode["opened_at"]) if status == "opened" else u
            ),
            observed=round(observed, 6),
            expected=round(expected, 6),
            lower=round(float(low[0]), 6),
            upper=round(float(high[0]), 6),
            relative_change=round(float(relative), 6),
            score=round(float(episode.get("told_score", episode["score"])), 3),
        )
        self.events.append(EpisodeEvent(status=status, at=hour_stamp(u), detection=detection))
