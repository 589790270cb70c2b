"""Streaming detection: a metric's state, advanced hour by hour, and its episode events.

`advance` is the only code that judges hours. The hourly pass feeds it the hours since the
last one it scored, `replay_series` feeds it a whole history at once, and both get the same
events because every decision depends on the data up to the judged hour and on the state,
never on how many hours one call covers. The model is refitted on a fixed daily schedule
(the metric's ``stagger`` hour, so that a fleet of metrics spreads its refits over the day)
and whenever an episode changes what "normal" means.

A mean (``kind="mean"``) may come with the number of events behind each hour, and the
variance of their values within it (``counts``, ``within``): its model then weighs each
hour's noise by its events (`noise.mean_noise`), and every detector judges the hour by its
own standard deviation (`Evidence`). Without them a mean is judged as it always was, with
one standard deviation for every hour; other kinds take none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from lantern.detect.episodes import Run
from lantern.detect.model import Baseline
from lantern.detect.series import (
    SeriesError,
    SeriesKind,
    validate_counts,
    validate_series,
)
from lantern.detect.state import EpisodeEvent, MetricState, Sensitivity, hour_number, new_state

K = TypeVar("K")


def advance(
    state: MetricState,
    series: pd.Series,
    now: pd.Timestamp,
    *,
    counts: pd.Series | None = None,
    within: pd.Series | None = None,
) -> tuple[MetricState, list[EpisodeEvent]]:
    """Judge every hour after ``state.last_hour`` up to ``now`` using data up to each hour.

    For a mean, ``counts`` are the events behind each hour's average and ``within`` the
    variance of their values within the hour (both optional, `validate_counts`).
    """
    return _advance_valid(state, validate_series(series, kind=state.kind), now, counts, within)


def _advance_valid(
    state: MetricState,
    clean: pd.Series,
    now: pd.Timestamp,
    counts: pd.Series | None,
    within: pd.Series | None,
) -> tuple[MetricState, list[EpisodeEvent]]:
    """`advance` on a series `validate_series` has already returned."""
    n, spread = _support(clean, state.kind, counts, within)
    origin = hour_number(clean.index[0])
    return advance_array(state, origin, clean.to_numpy(), hour_number(now), n, spread)


def _support(
    clean: pd.Series, kind: SeriesKind, counts: pd.Series | None, within: pd.Series | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A mean's counts and within-hour variances as arrays aligned to ``clean``."""
    if counts is None:
        if within is not None:
            raise SeriesError("a within-hour variance needs the counts of events it comes from")
        return None, None
    if kind != "mean":
        raise SeriesError(f"counts of events weigh the hours of a mean, not of a {kind} series")
    return validate_counts(clean, counts, within)


def advance_array(
    state: MetricState,
    origin: int,
    values: np.ndarray,
    now: int,
    counts: np.ndarray | None = None,
    within: np.ndarray | None = None,
) -> tuple[MetricState, list[EpisodeEvent]]:
    """`advance` on a validated array whose first element is hour ``origin`` (``counts``
    and ``within``, a mean's, aligned to it)."""
    run = Run(state, origin, values, counts=counts, within=within)
    run.until(min(now, origin + len(values) - 1))
    return run.state, run.events


@dataclass(frozen=True)
class JudgedHours:
    """What the detector expected of the hours one call judged, and the band insights report.

    ``hours`` are hour numbers (hours since the epoch), one per hour judged, in order; the
    other fields are aligned to them, in the series' own unit. Empty when nothing was judged
    (a metric still in training, or already judged up to ``now``).
    """

    hours: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


class _Bands:
    """A `Run` trace that keeps each judged hour's expectation and band."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]] = []

    def __call__(
        self, first: int, stop: int, mu: np.ndarray, model: Baseline, counts: np.ndarray | None
    ) -> None:
        low, high = model.band(mu, counts=counts)
        self.parts.append((first, stop, mu, low, high))

    def judged(self) -> JudgedHours:
        if not self.parts:
            empty = np.empty(0)
            return JudgedHours(np.empty(0, dtype=np.int64), empty, empty, empty)
        return JudgedHours(
            hours=np.concatenate([np.arange(a, b, dtype=np.int64) for a, b, *_ in self.parts]),
            expected=np.concatenate([part[2] for part in self.parts]),
            lower=np.concatenate([part[3] for part in self.parts]),
            upper=np.concatenate([part[4] for part in self.parts]),
        )


def advance_judged(
    state: MetricState,
    origin: int,
    values: np.ndarray,
    now: int,
    counts: np.ndarray | None = None,
    within: np.ndarray | None = None,
) -> tuple[MetricState, list[EpisodeEvent], JudgedHours]:
    """`advance_array`, also returning what the detector expected of each hour it judged.

    The verdicts are `advance_array`'s, to the bit: the expectation is only read off the
    models that judged the hours, as `replay_expected` reads it. A mean's band is each
    hour's own where its model weighs hours by their events.
    """
    bands = _Bands()
    run = Run(state, origin, values, trace=bands, counts=counts, within=within)
    run.until(min(now, origin + len(values) - 1))
    return run.state, run.events, bands.judged()


def replay_series(
    series: pd.Series,
    *,
    kind: SeriesKind = "count",
    sensitivity: Sensitivity = "medium",
    stagger: int = 0,
    raised: Mapping[str, int] | None = None,
    counts: pd.Series | None = None,
    within: pd.Series | None = None,
) -> list[EpisodeEvent]:
    """Every episode event a live service would have raised on ``series``, hour by hour;
    with ``raised`` (kind: settings, as `feedback_bar` makes them), as it would with that
    feedback from the team; for a mean, with ``counts`` and ``within`` (`advance`), as the
    service judges it from its buckets."""
    clean = validate_series(series, kind=kind)
    state = new_state(clean.index[0], kind=kind, sensitivity=sensitivity, stagger=stagger)
    if raised:
        state = replace(state, raised=tuple(sorted(raised.items())))
    _, events = _advance_valid(state, clean, clean.index[-1], counts, within)
    return events


def score_batch(
    states: Mapping[K, MetricState],
    frame: pd.DataFrame,
    now: pd.Timestamp,
    *,
    counts: pd.DataFrame | None = None,
    within: pd.DataFrame | None = None,
) -> dict[K, tuple[MetricState, list[EpisodeEvent]]]:
    """Advance many metrics to ``now``; ``frame`` holds one column per key of ``states``.

    The frame needs the last 28 days before the oldest unjudged hour (fewer for metrics
    still young). ``counts`` and ``within``, on the frame's index, hold the events behind
    each hour of a mean and their values' variance within it (a column per mean metric;
    `advance`). Inputs and outputs pickle, so partitions of a fleet can run in a process
    pool or on Dask workers.
    """
    origin, target = _batch_hours(frame, now)
    return {
        key: advance_array(
            state,
            origin,
            _column(frame, key, state),
            target,
            *_support_columns(frame, counts, within, key, state),
        )
        for key, state in states.items()
    }


def score_batch_judged(
    states: Mapping[K, MetricState],
    frame: pd.DataFrame,
    now: pd.Timestamp,
    *,
    counts: pd.DataFrame | None = None,
    within: pd.DataFrame | None = None,
) -> dict[K, tuple[MetricState, list[EpisodeEvent], JudgedHours]]:
    """`score_batch`, also returning each metric's `JudgedHours` (what the hourly pass
    stores, so that every chart shows what was judged)."""
    origin, target = _batch_hours(frame, now)
    return {
        key: advance_judged(
            state,
            origin,
            _column(frame, key, state),
            target,
            *_support_columns(frame, counts, within, key, state),
        )
        for key, state in states.items()
    }


def _batch_hours(frame: pd.DataFrame, now: pd.Timestamp) -> tuple[int, int]:
    """The hour numbers of a batch frame's first row and of ``now``, the frame checked."""
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or len(index) == 0:
        raise SeriesError("the frame needs a non-empty hourly DatetimeIndex")
    validate_series(pd.Series(0.0, index=index))
    if len(index) != (index[-1] - index[0]) / pd.Timedelta(hours=1) + 1:
        raise SeriesError("the frame's index must list every hour: reindex it first")
    return hour_number(index[0]), hour_number(now)


def _column(frame: pd.DataFrame, key: Any, state: MetricState) -> np.ndarray:
    values = frame[key].to_numpy(dtype=float)
    return np.nan_to_num(values) if state.kind == "count" else values


def _support_columns(
    frame: pd.DataFrame,
    counts: pd.DataFrame | None,
    within: pd.DataFrame | None,
    key: Any,
    state: MetricState,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A mean's counts and within-hour variances from a batch's tables, on the frame's
    hours (None where the batch has none for it)."""
    if state.kind != "mean" or counts is None or key not in counts.columns:
        return None, None
    n = counts[key].reindex(frame.index).to_numpy(dtype=float)
    spread = None
    if within is not None and key in within.columns:
        spread = within[key].reindex(frame.index).to_numpy(dtype=float)
    return n, spread
