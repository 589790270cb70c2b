"""The detector's hold on a new normal, which the service sets during a source-wide incident."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from lantern.detect.state import new_state
from lantern.detect.stream import advance

LOW_START = pd.Timestamp("2026-09-30", tz="UTC")


def low_day(seed: int, *, hours: int = 30) -> pd.Series:
    """Five weeks of hourly counts, at 30% for `hours` hours from LOW_START, then back."""
    index = pd.date_range("2026-09-01", periods=35 * 24, freq="h", tz="UTC")
    hour = index.hour.to_numpy()
    rate = 150 * (0.35 + 0.65 * np.exp(-0.5 * ((hour - 15) / 4.5) ** 2))
    low = (index >= LOW_START) & (index < LOW_START + pd.Timedelta(hours=hours))
    counts = np.random.default_rng(seed).poisson(np.where(low, rate * 0.3, rate))
    return pd.Series(counts.astype(float), index=index)


def ends(series: pd.Series, *, holding: bool) -> list[str]:
    """The statuses after the opening of the episode that begins with the low day."""
    state = new_state(series.index[0], kind="count")
    state, _ = advance(state, series[series.index < LOW_START], LOW_START - pd.Timedelta(hours=1))
    state = replace(state, holding=holding)
    _, events = advance(state, series, series.index[-1])
    return [event.status for event in events if event.status != "opened"]


def test_a_lasting_drop_held_by_an_incident_ends_when_it_is_back_not_as_a_new_normal() -> None:
    for seed in range(3):
        series = low_day(seed)
        assert ends(series, holding=False)[-1] == "accepted"
        assert ends(series, holding=True)[-1] == "resolved"


def test_the_hold_changes_nothing_of_a_drop_that_ends_within_a_day() -> None:
    series = low_day(0, hours=20)
    assert ends(series, holding=True) == ends(series, holding=False)
