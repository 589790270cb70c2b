"""The detector's hour-by-hour expectation, as the dashboard's series chart shows it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lantern.detect import replay_expected, replay_series
from tests.unit.test_detect import CHANGE, expected_volume, noisy, with_change


def test_the_expectation_replay_raises_the_same_events_as_a_replay() -> None:
    series = noisy(with_change("spike"), seed=3)
    traced = replay_expected(series, stagger=5)
    assert traced.events == replay_series(series, stagger=5)
    assert traced.events[0].status == "opened"


def test_there_is_no_expectation_during_training_and_one_for_every_hour_after() -> None:
    traced = replay_expected(noisy(expected_volume(500.0, weeks=3), seed=1))
    assert traced.expected.iloc[: 7 * 24].isna().all()
    assert traced.expected.iloc[7 * 24 :].notna().all()
    assert (traced.lower.iloc[7 * 24 :] <= traced.expected.iloc[7 * 24 :]).all()
    assert (traced.upper.iloc[7 * 24 :] >= traced.expected.iloc[7 * 24 :]).all()


def test_an_hour_is_expected_from_earlier_data_only() -> None:
    series = noisy(expected_volume(500.0, weeks=3), seed=2)
    changed = series.copy()
    changed.iloc[CHANGE:] *= 3
    before, after = replay_expected(series), replay_expected(changed)
    pd.testing.assert_series_equal(before.expected.iloc[:CHANGE], after.expected.iloc[:CHANGE])
    assert not np.allclose(before.expected.iloc[-24:], after.expected.iloc[-24:])


def test_the_expectation_follows_a_clean_series_closely() -> None:
    lam = expected_volume(2000.0)
    traced = replay_expected(noisy(lam, seed=4))
    judged = traced.expected.notna().to_numpy()
    error = np.abs(traced.expected.to_numpy()[judged] / lam[judged] - 1)
    assert np.median(error) < 0.1
    inside = (traced.lower <= noisy(lam, seed=4)) & (noisy(lam, seed=4) <= traced.upper)
    assert inside[judged].mean() > 0.95
