"""Which breakdown values explain a change: pure functions over per-value series, no I/O.

When an insight opens, each dimension of its source is asked which of its values moved.
A value's expectation is its own: for each hour of the episode, the median of the same
hour of the week in the (up to) four weeks before the episode began, or, with less than
a week of breakdown data, of the same hour of the day in the days before. Its change is
observed minus expected over the episode's hours, its relative change that change over
its expectation (none for a value that was not expected at all: a new app version), and
its contribution its share of the move in the insight's direction: its change over the
dimension's net change (values that moved the other way contribute negatively; one whose
change is more than the net explains all of it), or over the metric's own change when
that is larger, as when the dimension sees only part of the events (an event without a
locale has no country).

A value is named when it explains a clear majority of the move (`MAJORITY`), its
relative change is much larger than the rest of the dimension's (`STANDOUT` times) and,
for a count, its change is beyond Poisson noise (`Z` standard errors); else the top two
together, if they do so. A second value is named beside a first when it explains
`SECOND` of the move or more and stands out as well. Of the dimensions that name values,
the most specific one is told: among those explaining nearly as much as the best
(`CLOSE`), the one whose named values were expected to carry the least of the metric.
When a dimension saw the move and none names a value, the change is broad.

Counts and sums are additive, so changes add up; an average is not (a value's weight
moves as well as its level), so averages get no root cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from lantern.breakdowns.rootcause import DimensionChange, RootCause, ValueChange, ValueSeries

# A value (or two) is named only if it explains at least this share of the move.
MAJORITY = 0.5
# ... and its relative change is at least this many times the rest of the dimension's.
STANDOUT = 2.0
# ... and it moved by at least this much itself: a value 5% down is no cause of a drop.
MIN_RELATIVE = 0.2
# A second value is named beside the first if it explains at least this share as well.
SECOND = 0.2
# Dimensions whose named values explain within this of the best one compete on specificity.
CLOSE = 0.1
# A count's named value moved by at least this many standard errors (Poisson noise).
Z = 3.0
# The variance of a count's change over its Poisson variance: the median it is held
# against is itself a few noisy hours.
NOISE_FACTOR = 1.5
# Weeks of the same hour a value's expectation is the median of, at most.
WEEKS = 4
# With less than a week of data before the episode, days of the same hour instead.
DAYS = 7
# A count's episode with fewer expected and observed events than this, in a dimension, is
# too small to say anything about.
MIN_EVENTS = 10
# Values listed per dimension (ranked), for the API and the insight page.
LISTED = 5
# Hours before the episode the per-value chart shows.
CHART_HOURS_BEFORE = 48
WEEK = 7 * 24


def expected_hours(frame: pd.DataFrame, *, hours: pd.DatetimeIndex, before: Any) -> pd.DataFrame:
    """Each value's expectation at `hours`, from the hours of `frame` before `before` only.

    The median of the same hour of the week over the last `WEEKS` weeks when `frame` has a
    week before `before`, else of the same hour of the day over the last `DAYS` days; NaN
    where no such hour is in `frame` (less than a day of data).
    """
    limit = pd.Timestamp(before)
    first = frame.index[0] if len(frame.index) else limit
    step, lags = (WEEK, WEEKS) if first <= limit - pd.Timedelta(hours=WEEK) else (24, DAYS)
    data = frame.fillna(0.0)
    samples = []
    for k in range(1, lags + 1):
        at = hours - pd.Timedelta(hours=step * k)
        usable = np.asarray((at >= first) & (at < limit))
        shifted = data.reindex(at).to_numpy(dtype=float, copy=True)
        shifted[~usable] = np.nan
        samples.append(shifted)
    stacked = np.stack(samples)
    median = np.full(stacked.shape[1:], np.nan)
    known = np.isfinite(stacked).any(axis=0)
    median[known] = np.nanmedian(stacked[:, known], axis=0)
    return pd.DataFrame(median, index=hours, columns=frame.columns)


def rank_values(
    frame: pd.DataFrame,
    *,
    start: Any,
    end: Any,
    direction: str,
    total: pd.Series | None = None,
    min_events: float = 0.0,
    counts: bool = False,
    dimension: str | None = None,
) -> DimensionChange | None:
    """Rank one dimension's values by how much of the move over hours [start, end] they explain.

    `frame` is the dimension's hourly series per value (columns), from before the baseline
    to `end`; `total` the metric's own series on the same hours, when the dimension may
    see only part of its events. With `counts`, a value's change must also be beyond
    Poisson noise (`Z` standard errors) to be named. None when the dimension cannot say:
    no values, less than a day of data before `start`, too few events (`min_events`), or
    no net move in `direction` among its values.
    """
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    if frame.shape[1] == 0 or not len(frame.index) or frame.index[0] > first - pd.Timedelta(1, "D"):
        return None
    hours = pd.date_range(first, last, freq="h")
    expected = expected_hours(frame, hours=hours, before=first)
    if not np.isfinite(expected.to_numpy()).all():
        return None
    observed = frame.reindex(hours).fillna(0.0)
    seen = observed.mean().to_numpy(dtype=float)
    wanted = expected.mean().to_numpy(dtype=float)
    # Poisson counts over the episode; the expectation, a median of a few such hours,
    # adds about half that variance again.
    noise = (
        np.sqrt(np.maximum(np.maximum(seen, wanted) * len(hours), 1.0) * NOISE_FACTOR) / len(hours)
        if counts
        else np.zeros(len(seen))
    )
    if (observed.to_numpy().sum() + expected.to_numpy().sum()) < min_events:
        return None
    sign = -1.0 if direction == "down" else 1.0
    moves = sign * (seen - wanted)
    # The net move, not the sum of the moves one way: with many values, their noise adds
    # up in such a sum (and would dilute a value that explains it all) but cancels here.
    net = float(moves.sum())
    if net <= 0:
        return None
    whole_move = net
    if total is not None:
        total = total.loc[frame.index[0] :]  # the hours the dimension counted
        whole = expected_hours(total.to_frame("total"), hours=hours, before=first)["total"]
        if np.isfinite(whole.to_numpy()).all():
            metric_move = sign * (float(total.reindex(hours).fillna(0.0).mean()) - whole.mean())
            whole_move = max(net, metric_move)
    expected_sum = float(wanted.sum())
    values = [
        ValueChange(
            value=str(column),
            observed=float(seen[i]),
            expected=float(wanted[i]),
            relative_change=(seen[i] - wanted[i]) / wanted[i] if wanted[i] > 0 else None,
            # more than all of the move when others moved the other way: all of it
            contribution=float(min(moves[i] / whole_move, 1.0)),
            expected_share=float(wanted[i] / expected_sum) if expected_sum > 0 else 0.0,
            noise=float(noise[i]),
        )
        for i, column in enumerate(frame.columns)
    ]
    ranked = tuple(sorted(values, key=lambda v: (-v.contribution, v.value)))
    return DimensionChange(
        dimension=dimension or str(frame.columns.name or ""),
        values=ranked,
        named=_named(ranked, sign),
    )


def _relative(group: Sequence[ValueChange], sign: float) -> float:
    """The group's relative change in the insight's direction (infinite for new values)."""
    seen = sum(v.observed for v in group)
    wanted = sum(v.expected for v in group)
    if wanted <= 0:
        return float("inf") if sign * seen > 0 else 0.0
    return sign * (seen - wanted) / wanted


def _stands_out(group: Sequence[ValueChange], rest: Sequence[ValueChange], sign: float) -> bool:
    """The group moved, and far more than the rest of its dimension (which must exist: a
    dimension's only values all moving is a broad change)."""
    if sum(v.expected for v in rest) <= 0:
        return False
    moved = _relative(group, sign)
    change = sign * sum(v.observed - v.expected for v in group)
    beyond_noise = change >= Z * float(np.sqrt(sum(v.noise**2 for v in group)))
    return (
        beyond_noise
        and moved >= MIN_RELATIVE
        and moved >= STANDOUT * max(_relative(rest, sign), 0.0)
    )


def _named(ranked: tuple[ValueChange, ...], sign: float) -> tuple[ValueChange, ...]:
    """The one or two values that explain the move, or none."""
    if not ranked:
        return ()
    top, rest = ranked[0], ranked[1:]
    if top.contribution >= MAJORITY and _stands_out([top], rest, sign):
        if len(ranked) > 1:
            second = ranked[1]
            if second.contribution >= SECOND and _stands_out([second], ranked[2:], sign):
                return (top, second)
        return (top,)
    pair = ranked[:2]
    if (
        len(pair) == 2
        and pair[1].contribution >= SECOND
        and sum(v.contribution for v in pair) >= MAJORITY
        and all(_stands_out([v], ranked[2:], sign) for v in pair)
    ):
        return pair
    return ()


def explain(changes: Sequence[DimensionChange | None], *, direction: str) -> RootCause | None:
    """The root cause of one insight from its dimensions' rankings; None if none could say."""
    seen = [c for c in changes if c is not None]
    if not seen:
        return None
    naming = [c for c in seen if c.named]
    checked = tuple(c.dimension for c in seen)
    if not naming:
        # broad: the values listed are those of the dimension whose top value came nearest
        nearest = max(seen, key=lambda c: (c.values[0].contribution, c.dimension))
        return RootCause(
            direction=direction,
            dimension=None,
            shown=nearest.dimension,
            values=nearest.values[:LISTED],
            named=(),
            checked=checked,
        )
    best = max(c.explained for c in naming)
    close = [c for c in naming if c.explained >= best - CLOSE]
    chosen = min(
        close,
        key=lambda c: (sum(v.expected_share for v in c.named), -c.explained, c.dimension),
    )
    return RootCause(
        direction=direction,
        dimension=chosen.dimension,
        shown=chosen.dimension,
        values=chosen.values[:LISTED],
        named=chosen.named,
        checked=checked,
    )


def find_root_cause(
    frames: dict[str, pd.DataFrame],
    *,
    start: Any,
    end: Any,
    direction: str,
    total: pd.Series | None = None,
    min_events: float = 0.0,
    counts: bool = False,
) -> RootCause | None:
    """`rank_values` for each dimension's frame, `explain`, and the chart of the values told.

    The chart shows the hours from `CHART_HOURS_BEFORE` before `start` to `end` of the
    named values (when broad, of the two values that came nearest), observed against each
    value's own expectation.
    """
    changes = [
        rank_values(
            frame,
            start=start,
            end=end,
            direction=direction,
            total=total,
            min_events=min_events,
            counts=counts,
            dimension=name,
        )
        for name, frame in frames.items()
    ]
    cause = explain(changes, direction=direction)
    if cause is None or cause.shown is None:
        return cause
    frame = frames[cause.shown]
    shown = [v.value for v in (cause.named or cause.values[:2])]
    first = max(pd.Timestamp(start) - pd.Timedelta(hours=CHART_HOURS_BEFORE), frame.index[0])
    hours = pd.date_range(first, pd.Timestamp(end), freq="h")
    part = frame[shown]
    expected = expected_hours(part, hours=hours, before=start)
    observed = part.reindex(hours).fillna(0.0)
    series = tuple(
        ValueSeries(
            value=value,
            observed=tuple(float(x) for x in observed[value]),
            expected=tuple(float(x) for x in expected[value]),
        )
        for value in shown
    )
    return replace(cause, chart_start=first.to_pydatetime(), series=series)
