"""The detector's hour-by-hour expectation, as the dashboard's series chart shows it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lantern.detect import (
    advance_array,
    advance_judged,
    new_state,
    replay_expected,
    replay_series,
    score_batch,
    score_batch_judged,
)
from lantern.detect.state import hour_number
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


def test_a_pass_returns_its_verdicts_unchanged_with_the_expectation_a_replay_charts() -> None:
    series = noisy(with_change("spike"), seed=3)
    origin, values = hour_number(series.index[0]), series.to_numpy(dtype=float)
    start = new_state(series.index[0], stagger=5)
    end = origin + len(values) - 1
    state, events = advance_array(start, origin, values, end - 48)
    judged_state, judged_events, judged = advance_judged(start, origin, values, end - 48)
    assert judged_state == state and judged_events == events
    # then hour by hour, as the hourly pass goes
    parts = [judged]
    for hour in range(end - 47, end + 1):
        state, step, judged = advance_judged(state, origin, values, hour)
        events += step
        parts.append(judged)
    replayed = replay_expected(series, stagger=5)
    assert events == replayed.events
    hours = np.concatenate([p.hours for p in parts])
    assert hours.tolist() == [
        hour_number(t) for t in replayed.expected.index[replayed.expected.notna()]
    ]
    at = hours - origin
    for name in ("expected", "lower", "upper"):
        got = np.concatenate([getattr(p, name) for p in parts])
        np.testing.assert_allclose(got, getattr(replayed, name).to_numpy()[at], rtol=1e-12)


def test_a_batch_returns_each_metrics_verdicts_unchanged_with_its_judged_hours() -> None:
    frame = pd.DataFrame(
        {
            "spike": noisy(with_change("spike"), seed=3),
            "level": noisy(with_change("level_shift"), seed=4),
        }
    )
    states = {key: new_state(frame.index[0], stagger=7) for key in frame.columns}
    now = frame.index[-1]
    plain, judged = score_batch(states, frame, now), score_batch_judged(states, frame, now)
    for key in frame.columns:
        state, events, hours = judged[key]
        assert (state, events) == plain[key]
        assert len(hours.hours) == len(frame) - 7 * 24
        assert (hours.lower <= hours.expected).all() and (hours.expected <= hours.upper).all()
    # a metric judged up to now already judges nothing more
    again = score_batch_judged({k: s for k, (s, _, _) in judged.items()}, frame, now)
    assert all(len(h.hours) == 0 and not e for _, e, h in again.values())
