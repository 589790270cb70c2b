"""What the detector expected of each hour, for charts of observed against expected."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lantern.detect.episodes import Run
from lantern.detect.model import Baseline
from lantern.detect.series import SeriesKind, validate_series
from lantern.detect.state import EpisodeEvent, Sensitivity, hour_number, new_state
from lantern.detect.stream import _support


@dataclass(frozen=True)
class Expectation:
    """What the detector expected of each hour it judged, with its band (NaN elsewhere)."""

    expected: pd.Series
    lower: pd.Series
    upper: pd.Series
    events: list[EpisodeEvent]


def replay_expected(
    series: pd.Series,
    *,
    kind: SeriesKind = "count",
    sensitivity: Sensitivity = "medium",
    stagger: int = 0,
    counts: pd.Series | None = None,
    within: pd.Series | None = None,
) -> Expectation:
    """Replay ``series`` as `replay_series` does, keeping each judged hour's expectation.

    Each hour's expected value comes from the model in force when that hour was judged,
    fitted on earlier hours only, so a chart of it is what the live service expected.
    Hours in training (the first 7 days) have none. A mean's ``counts`` and ``within``
    (`advance`) weigh its hours as the service does, and its band is then each hour's own.
    """
    clean = validate_series(series, kind=kind)
    n, spread = _support(clean, kind, counts, within)
    origin = hour_number(clean.index[0])
    state = new_state(clean.index[0], kind=kind, sensitivity=sensitivity, stagger=stagger)
    expected = np.full(len(clean), np.nan)
    lower, upper = expected.copy(), expected.copy()

    def record(
        first: int, stop: int, mu: np.ndarray, model: Baseline, hours_counts: np.ndarray | None
    ) -> None:
        low, high = model.band(mu, counts=hours_counts)
        span = slice(first - origin, stop - origin)
        expected[span], lower[span], upper[span] = mu, low, high

    run = Run(state, origin, clean.to_numpy(), trace=record, counts=n, within=spread)
    run.until(origin + len(clean) - 1)
    index = clean.index
    return Expectation(
        expected=pd.Series(expected, index=index, name="expected"),
        lower=pd.Series(lower, index=index, name="lower"),
        upper=pd.Series(upper, index=index, name="upper"),
        events=run.events,
    )
