"""Detection: the gate, training, each kind of change, invariances and alert hygiene."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lantern.detect import (
    MetricState,
    SeriesError,
    advance,
    decompose,
    new_state,
    replay_series,
    training_remaining,
    validate_series,
)
from lantern.detect.model import fit_baseline
from lantern.detect.state import hour_number

START = pd.Timestamp("2026-01-05", tz="UTC")
DAILY = np.array(
    [
        0.25,
        0.18,
        0.14,
        0.12,
        0.12,
        0.16,
        0.28,
        0.45,
        0.6,
        0.7,
        0.75,
        0.8,
        0.85,
        0.82,
        0.8,
        0.82,
        0.86,
        0.92,
        1.0,
        1.0,
        0.95,
        0.8,
        0.6,
        0.4,
    ]
)
WEEKLY = np.array([0.92, 0.9, 0.92, 0.95, 1.0, 1.1, 1.05])
CHANGE = 16 * 24  # a Wednesday, hour 0


def expected_volume(peak: float, weeks: int = 4) -> np.ndarray:
    hours = np.arange(weeks * 168)
    return peak * DAILY[hours % 24] * WEEKLY[(hours // 24) % 7]


def as_series(values: np.ndarray) -> pd.Series:
    index = pd.date_range(START, periods=len(values), freq="h", tz="UTC")
    return pd.Series(values.astype(float), index=index)


def noisy(lam: np.ndarray, seed: int, cv: float = 0.05) -> pd.Series:
    rng = np.random.default_rng(seed)
    return as_series(rng.poisson(rng.gamma(1 / cv**2, lam * cv**2)))


def opened(series: pd.Series) -> list:
    return [e for e in replay_series(series) if e.status == "opened"]


def with_change(kind: str, peak: float = 2000.0) -> np.ndarray:
    lam = expected_volume(peak)
    hours = np.arange(len(lam))
    if kind == "level_shift":
        lam[CHANGE:] *= 2.0
    elif kind == "spike":
        lam[CHANGE + 12 : CHANGE + 14] *= 5.0
    elif kind == "outage":
        lam[CHANGE + 10 : CHANGE + 16] *= 0.02
    elif kind == "trend_change":
        lam[CHANGE:] *= np.exp(-0.08 * (hours[CHANGE:] - CHANGE) / 24)
    elif kind == "seasonality_change":
        shifted = np.roll(DAILY, 8)[hours % 24] / DAILY[hours % 24]
        lam[CHANGE:] *= shifted[CHANGE:]
    return lam


@pytest.mark.parametrize(
    ("kind", "direction", "within_hours"),
    [
        ("level_shift", "up", 24),
        ("spike", "up", 14),
        ("outage", "down", 16),
        ("trend_change", "down", 7 * 24),
    ],
)
def test_an_injected_change_is_flagged_first_with_its_kind_and_direction_in_time(
    kind: str, direction: str | None, within_hours: int
) -> None:
    events = opened(noisy(with_change(kind), seed=3))
    first = events[0]
    delay = (first.at - (START + pd.Timedelta(hours=CHANGE))) / pd.Timedelta(hours=1)
    assert first.detection.kind == kind
    assert direction is None or first.detection.direction == direction
    assert 0 <= delay <= within_hours


# a metric used around the clock: a shallow daily cycle
AROUND_THE_CLOCK = np.array(
    [
        *[0.8, 0.78, 0.76, 0.75, 0.76, 0.8, 0.85, 0.9, 0.95, 1.0, 1.0, 1.0, 0.98, 0.97, 0.96],
        *[0.96, 0.97, 0.98, 1.0, 1.0, 0.97, 0.93, 0.88, 0.84],
    ],
    dtype=float,
)


def test_a_shallow_daily_cycle_moved_by_eight_hours_is_one_seasonality_change_in_time() -> None:
    hours = np.arange(4 * 168)
    shape = AROUND_THE_CLOCK[hours % 24]
    lam = 2000.0 * shape * WEEKLY[(hours // 24) % 7]
    lam[CHANGE:] *= (np.roll(AROUND_THE_CLOCK, 8)[hours % 24] / shape)[CHANGE:]
    events = opened(noisy(lam, seed=3))
    assert [e.detection.kind for e in events] == ["seasonality_change"]
    delay = (events[0].at - (START + pd.Timedelta(hours=CHANGE))) / pd.Timedelta(hours=1)
    assert 0 <= delay <= 3 * 24


def test_a_change_of_cycle_is_flagged_in_its_window_and_not_after_it() -> None:
    # the first alert may name another kind (the first hour of a cycle moved by eight hours
    # is a spike to any detector): see docs/detection.md
    kind, within_hours = "seasonality_change", 3 * 24
    events = opened(noisy(with_change(kind), seed=3))
    delay = (events[0].at - (START + pd.Timedelta(hours=CHANGE))) / pd.Timedelta(hours=1)
    assert 0 <= delay <= within_hours
    assert all(e.at <= START + pd.Timedelta(hours=CHANGE + within_hours) for e in events)


@pytest.mark.parametrize(
    "peak",
    [
        5.0,
        60.0,
        800.0,
        20000.0,
    ],
)
def test_a_clean_series_of_any_volume_raises_no_alert(peak: float) -> None:
    assert opened(noisy(expected_volume(peak), seed=11)) == []


def test_multiplying_a_busy_series_by_ten_changes_no_verdict() -> None:
    series = noisy(with_change("level_shift", peak=5000.0), seed=5)
    verdicts = [(e.at, e.detection.kind) for e in opened(series)]
    scaled = [(e.at, e.detection.kind) for e in opened(series * 10)]
    assert verdicts == scaled
    assert len(verdicts) == 1


def test_a_persistent_level_shift_gives_exactly_one_alert_and_is_accepted() -> None:
    events = replay_series(noisy(with_change("level_shift"), seed=7))
    statuses = [e.status for e in events]
    assert statuses.count("opened") == 1
    assert "accepted" in statuses


def test_feeding_hours_one_by_one_gives_the_same_events_as_a_replay() -> None:
    series = noisy(with_change("outage"), seed=9)[: CHANGE + 48]
    state = new_state(series.index[0])
    live = []
    for end in range(8 * 24, len(series), 5):
        state, events = advance(state, series.iloc[: end + 1], series.index[end])
        state = MetricState.from_bytes(state.to_bytes())
        live.extend(events)
    state, events = advance(state, series, series.index[-1])
    live.extend(events)
    assert [(e.status, e.at, e.detection) for e in live] == [
        (e.status, e.at, e.detection) for e in replay_series(series)
    ]


def test_nothing_is_judged_during_the_seven_training_days() -> None:
    lam = expected_volume(1000.0)
    lam[100:110] = 0.0
    assert opened(noisy(lam, seed=2)[: 8 * 24]) == []


def test_training_remaining_counts_down_to_zero() -> None:
    first = pd.Timestamp("2026-01-01T00:00Z")
    assert training_remaining(first, first) == pd.Timedelta(days=7)
    assert training_remaining(first, first + pd.Timedelta(days=6, hours=23)) == pd.Timedelta(
        hours=1
    )
    assert training_remaining(first, first + pd.Timedelta(days=30)) == pd.Timedelta(0)


def test_the_gate_fills_count_gaps_with_zeros_and_value_gaps_with_nan() -> None:
    index = pd.DatetimeIndex(["2026-01-01T00:00Z", "2026-01-01T03:00Z"])
    counts = validate_series(pd.Series([1, 2], index=index))
    values = validate_series(pd.Series([1.5, 2.5], index=index), kind="value")
    assert counts.tolist() == [1.0, 0.0, 0.0, 2.0]
    assert values.isna().tolist() == [False, True, True, False]


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (pd.DatetimeIndex(["2026-01-01T00:00", "2026-01-01T01:00"]), "no time zone"),
        (pd.DatetimeIndex(["2026-01-01T01:00Z", "2026-01-01T00:00Z"]), "not sorted"),
        (pd.DatetimeIndex(["2026-01-01T00:00Z", "2026-01-01T00:00Z"]), "duplicate"),
        (pd.DatetimeIndex(["2026-01-01T00:00Z", "2026-01-01T00:30Z"]), "not on the hour"),
        (
            pd.DatetimeIndex(["2026-01-01T00:00", "2026-01-01T01:00"]).tz_localize("Europe/Paris"),
            "not UTC",
        ),
    ],
)
def test_the_gate_rejects_a_bad_index_with_a_clear_message(
    index: pd.DatetimeIndex, message: str
) -> None:
    with pytest.raises(SeriesError, match=message):
        validate_series(pd.Series([1.0, 2.0], index=index))


def test_the_gate_rejects_negative_counts() -> None:
    index = pd.date_range(START, periods=2, freq="h", tz="UTC")
    with pytest.raises(SeriesError, match="negative"):
        validate_series(pd.Series([1.0, -2.0], index=index))


def test_a_value_metric_with_gaps_is_judged_and_a_jump_is_flagged() -> None:
    rng = np.random.default_rng(4)
    lam = expected_volume(100.0)
    lam[CHANGE:] *= 2.5
    values = as_series(lam + rng.normal(0, 3, len(lam)))
    values.iloc[200:205] = np.nan
    events = [e for e in replay_series(values, kind="value") if e.status == "opened"]
    assert events[0].detection.direction == "up"
    assert events[0].at >= START + pd.Timedelta(hours=CHANGE)


def test_decompose_gives_an_expected_band_aligned_to_the_series() -> None:
    series = noisy(expected_volume(500.0), seed=1)
    result = decompose(series)
    assert result.expected.index.equals(series.index)
    inside = (series >= result.lower) & (series <= result.upper)
    assert inside.iloc[-7 * 24 :].mean() > 0.95


def revenue(
    orders_at_peak: float, *, seed: int, weeks: int = 6, amount: float = 42.0
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Hourly revenue: a Poisson number of orders with a daily rhythm, gamma(4) amounts.

    Returns the series (NaN where no order came, as the buckets give it), the order
    counts and each hour's amounts' scale, so that tests can inject changes to the orders.
    """
    rng = np.random.default_rng(seed)
    lam = expected_volume(orders_at_peak, weeks)
    orders = rng.poisson(lam)
    sums = np.array([rng.gamma(4, amount / 4, n).sum() for n in orders])
    series = as_series(np.where(orders > 0, sums, np.nan))
    return series, orders, lam


def opened_values(series: pd.Series) -> list[tuple[str, str, pd.Timestamp]]:
    events = replay_series(series, kind="value")
    return [(e.detection.kind, e.detection.direction, e.at) for e in events if e.status == "opened"]


BUSY = 5 * 168 + 2 * 24 + 18  # week 6, a Wednesday at 18:00, the busiest hour of the day


@pytest.mark.parametrize("orders_at_peak", [5.0, 200.0])
def test_clean_revenue_raises_no_alert_at_low_or_high_volume(orders_at_peak: float) -> None:
    series, _, _ = revenue(orders_at_peak, seed=7)
    assert opened_values(series) == []


def test_an_outage_of_quiet_revenue_is_flagged_as_an_outage() -> None:
    series, _, _ = revenue(5.0, seed=8)
    series.iloc[BUSY - 6 : BUSY + 1] = np.nan  # seven busy hours without a single order
    assert opened_values(series)[0][:2] == ("outage", "down")
    assert opened_values(series)[0][2] <= series.index[BUSY]


@pytest.mark.parametrize("orders_at_peak", [5.0, 200.0])
def test_an_hour_of_triple_revenue_at_a_busy_hour_is_a_spike(orders_at_peak: float) -> None:
    series, _, _ = revenue(orders_at_peak, seed=9)
    series.iloc[BUSY] *= 3
    assert opened_values(series) == [("spike", "up", series.index[BUSY])]


def test_a_lasting_forty_percent_drop_of_revenue_is_a_downward_level_shift() -> None:
    series, _, _ = revenue(200.0, seed=10)
    series.iloc[BUSY - 12 :] *= 0.6
    found = opened_values(series)
    assert found[0][:2] == ("level_shift", "down")
    assert series.index[BUSY - 12] <= found[0][2] <= series.index[BUSY + 12]


@pytest.mark.parametrize("orders_at_peak", [5.0, 200.0])
def test_revenue_in_cents_gets_the_same_verdicts_as_in_dollars(orders_at_peak: float) -> None:
    series, _, _ = revenue(orders_at_peak, seed=11)
    series.iloc[BUSY] *= 3
    series.iloc[BUSY + 30 : BUSY + 36] = np.nan
    dollars = replay_series(series, kind="value")
    cents = replay_series(series * 100, kind="value")
    assert [(e.status, e.at, e.detection.kind) for e in cents] == [
        (e.status, e.at, e.detection.kind) for e in dollars
    ]
    assert [e.detection.expected for e in cents] == pytest.approx(
        [100 * e.detection.expected for e in dollars]
    )


def test_a_quiet_metrics_burst_of_a_few_hours_is_flagged_as_a_spike_once_it_is_over() -> None:
    # 8 events an hour at peak, tripled from 17:00 to 20:00: no single hour adds the ten
    # events a spike needs, the three together add some 40
    flagged = []
    for seed in range(8):
        lam = expected_volume(8.0)
        lam[CHANGE + 17 : CHANGE + 20] *= 3.0
        series = noisy(lam, seed)
        alerts = opened(series)
        assert all(e.detection.kind == "spike" for e in alerts), alerts
        assert all(
            series.index[CHANGE + 17] <= e.at <= series.index[CHANGE + 22] for e in alerts
        ), alerts
        flagged.append(len(alerts) == 1)
    assert sum(flagged) >= 5, flagged


def test_a_quiet_metrics_forecast_is_not_dragged_down_by_one_empty_hour_last_week() -> None:
    # at 7 events an hour, one empty hour is chance, not the metric's weekly rhythm: next
    # week's forecast of that hour must not copy it (it used to, and paged on the next burst)
    lam = expected_volume(10.0, weeks=5)
    counts = np.random.default_rng(5).poisson(lam).astype(float)
    fit_at = 4 * 168
    odd = fit_at - 168 + 2 * 24 + 13  # last week's Wednesday, 13:00
    hours = hour_number(START) + np.arange(fit_at)

    def forecast(values: np.ndarray) -> float:
        model = fit_baseline(
            hours,
            values[:fit_at],
            np.ones(fit_at, dtype=bool),
            kind="count",
            fit_hour=fit_at + hours[0],
        )
        return float(model.expected(np.array([hours[odd] + 168]))[0])

    with_gap = counts.copy()
    with_gap[odd] = 0.0
    assert forecast(with_gap) >= 0.75 * forecast(counts)


def test_a_model_whose_last_two_weeks_are_all_episodes_still_expects_the_metrics_level() -> None:
    # an adopted change that ended back at the old normal masks its days, and a new
    # episode opening at once masks the rest: the level comes from the hours left
    lam = expected_volume(400.0)
    values = noisy(lam, seed=3).to_numpy()
    hours = np.arange(len(values))
    fit_hour = len(values)
    usable = hours < fit_hour - 15 * 24
    model = fit_baseline(hours, values, usable, kind="count", fit_hour=fit_hour)
    expected = model.expected(hours[: usable.sum()])
    assert np.isfinite(model.level)
    # the model still expects what the metric did, day by day, within a tenth
    ratio = expected.sum() / values[: usable.sum()].sum()
    assert 0.9 < ratio < 1.1, ratio
