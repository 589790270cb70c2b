"""An average's noise shrinks with the events behind each hour (`noise.mean_noise`).

A checkout's average value over 250 orders at noon is known to within a percent or two;
over one order at 3 a.m. it is one order's value, give or take half of it. The seeded
series below (`tests.factories.average_checkouts`) have both: busy daytime hours, a few
quiet ones around them, and nights of one to three checkouts (an hour without one is
missing).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from lantern.detect import (
    Baseline,
    EpisodeEvent,
    MetricState,
    SeriesError,
    new_state,
    replay_expected,
    replay_series,
    score_batch,
)
from lantern.detect.model import fit_baseline
from lantern.detect.noise import mean_noise
from lantern.detect.state import hour_number
from lantern.replay import replay
from tests.factories import average_checkouts

START = pd.Timestamp("2026-03-02", tz="UTC")
MEAN = 40.0  # a checkout's average value (`average_checkouts`), with a daily cycle of 10%
SHAPE = 4.0  # of the gamma law of one checkout's value: its spread is half its mean
# an hour of one checkout at 3.2 times the hour's average, at 03:00 on day 29
ODD_HOUR = START + pd.Timedelta(days=29, hours=3)
# every checkout worth half as much again from 10:00 on day 29
SHIFT = START + pd.Timedelta(days=29, hours=10)


def checkouts(
    seed: int, *, odd: bool = False, shift: bool = False, days: int = 35
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(hourly average, checkouts behind it, their values' variance within the hour)."""
    return average_checkouts(
        pd.date_range(START, periods=days * 24, freq="h"),
        seed=seed,
        odd_hour=ODD_HOUR if odd else None,
        shift_from=SHIFT if shift else None,
    )


def opened(events: list[EpisodeEvent]) -> list[tuple[pd.Timestamp, str, str]]:
    return [(e.at, e.detection.kind, e.detection.direction) for e in events if e.status == "opened"]


def test_a_night_hour_of_one_checkout_is_no_alert_yet_a_daytime_shift_of_its_size_is() -> None:
    average, events, within = checkouts(0, odd=True)
    # one standard deviation for every hour, the busy hours': the odd night hour is "news"
    plain = opened(replay_series(average, kind="mean"))
    assert (ODD_HOUR + pd.Timedelta(hours=1), "spike", "up") in plain
    assert len(plain) >= 3  # and other nights of a checkout or two besides
    # each hour by its own: a night of one checkout scatters by half its value, and
    # nothing in five weeks of these is news, whether the hours' own spread is known
    # (the buckets' sums of squares) or read from the averages themselves
    assert opened(replay_series(average, kind="mean", counts=events, within=within)) == []
    assert opened(replay_series(average, kind="mean", counts=events)) == []
    # while every daytime checkout worth 50% more (the night's noise, relative) is told
    # within the hours, as a level shift up
    average, events, within = checkouts(0, shift=True)
    told = opened(replay_series(average, kind="mean", counts=events, within=within))
    assert len(told) == 1
    at, kind, direction = told[0]
    assert (kind, direction) == ("level_shift", "up")
    assert SHIFT <= at <= SHIFT + pd.Timedelta(hours=6)


def test_the_noise_by_events_comes_from_the_sums_of_squares_or_else_from_the_averages() -> None:
    average, events, within = checkouts(1, days=28)
    hours = hour_number(START) + np.arange(len(average))
    y, n = average.to_numpy(), events.to_numpy()
    good = np.isfinite(y)
    window = good & (hours >= hours[-1] - 14 * 24)
    # a model that expects each hour's true level exactly
    clock = pd.DatetimeIndex(average.index).hour.to_numpy()
    level = MEAN * (1 + 0.1 * np.sin((clock - 8) / 24 * 2 * np.pi))
    known = mean_noise(hours, y, level, good, window, n, within.to_numpy())
    guessed = mean_noise(hours, y, level, good, window, n, None)
    assert known is not None and guessed is not None
    # one checkout's variance is level^2 / SHAPE: 400 at the mean level, 330 at night
    assert known[1] == pytest.approx(MEAN**2 / SHAPE, rel=0.15)
    assert guessed[1] == pytest.approx(MEAN**2 / SHAPE, rel=0.4)
    # the averages wander by nothing beyond their events' noise here
    assert known[0] < 0.1 * known[1] / 250
    # with one event every hour, the events tell nothing: the plain model stands
    assert mean_noise(hours, y, level, good, window, np.ones_like(n), None) is None


def test_the_band_of_an_hour_of_few_events_is_wider_than_that_of_a_busy_hour() -> None:
    average, events, within = checkouts(2, days=21)
    weighed = replay_expected(average, kind="mean", counts=events, within=within)
    width = (weighed.upper - weighed.lower)[weighed.expected.notna()]
    few, many = width[events < 4], width[events >= 200]
    assert few.median() > 5 * many.median()
    # one checkout: three times its spread, half its mean, either side
    assert width[events == 1].median() == pytest.approx(6 * 0.5 * 36.4, rel=0.35)
    # only the noise is weighed: a model fitted with the events expects what one without does
    hours = hour_number(START) + np.arange(len(average))
    fit_hour, usable = int(hours[-1]) + 1, np.ones(len(hours), dtype=bool)
    weighed_fit = fit_baseline(
        hours,
        average.to_numpy(),
        usable,
        kind="mean",
        fit_hour=fit_hour,
        counts=events.to_numpy(),
        within=within.to_numpy(),
    )
    plain_fit = fit_baseline(hours, average.to_numpy(), usable, kind="mean", fit_hour=fit_hour)
    assert weighed_fit.weighted and not plain_fit.weighted
    assert replace(weighed_fit, between=None, within=None) == plain_fit


def test_a_state_stored_before_means_were_weighed_still_loads_and_a_new_one_keeps_its_noise() -> (
    None
):
    average, events, within = checkouts(3, days=10)
    state = new_state(average.index[0], kind="mean")
    frame = pd.DataFrame({7: average})
    (scored, _) = score_batch(
        {7: state},
        frame,
        average.index[-1],
        counts=pd.DataFrame({7: events}),
        within=pd.DataFrame({7: within}),
    )[7]
    assert scored.model is not None and scored.model.weighted
    again = MetricState.from_bytes(scored.to_bytes())
    assert again == scored
    # as stored before: no noise by events in the model's dict
    data = json.loads(scored.to_bytes())
    del data["model"]["between"], data["model"]["within"]
    old = MetricState.from_bytes(json.dumps(data).encode())
    assert old.model is not None and not old.model.weighted
    assert old.model.spread(np.array([1.0, 300.0])).tolist() == [old.model.dispersion] * 2
    # a count's model is stored exactly as it always was
    counted = Baseline(
        kind="count",
        fit_hour=1,
        level=1.0,
        slope=0.0,
        profile=(0.0,) * 168,
        scale=1.0,
        dispersion=0.1,
        weekly=True,
    )
    assert set(counted.to_dict()) == {
        "kind",
        "fit_hour",
        "level",
        "slope",
        "profile",
        "scale",
        "dispersion",
        "weekly",
        "unit",
    }


def test_the_hourly_pass_in_steps_says_what_a_replay_of_the_whole_history_says() -> None:
    average, events, within = checkouts(0, odd=True, shift=True)
    whole = replay_series(average, kind="mean", counts=events, within=within)
    state = new_state(average.index[0], kind="mean")
    frame, counts, spread = (pd.DataFrame({1: s}) for s in (average, events, within))
    stepped = []
    for end in range(8 * 24, len(average) + 1, 37):
        stop = min(end, len(average)) - 1
        state, found = score_batch(
            {1: state},
            frame.iloc[: stop + 1],
            average.index[stop],
            counts=counts.iloc[: stop + 1],
            within=spread.iloc[: stop + 1],
        )[1]
        state = MetricState.from_bytes(state.to_bytes())
        stepped += found
    whole_at = [(e.status, e.at, e.detection) for e in whole]
    assert [(e.status, e.at, e.detection) for e in stepped] == whole_at != []


def test_counts_are_checked_and_are_for_averages_only() -> None:
    average, events, _ = checkouts(4, days=9)
    with pytest.raises(SeriesError, match=r"count at .* is negative"):
        replay_series(average, kind="mean", counts=events.where(events.index != START, -1.0))
    busy = average.first_valid_index()
    with pytest.raises(SeriesError, match="an average needs at least one event"):
        replay_series(average, kind="mean", counts=events.where(events.index != busy, 0.0))
    with pytest.raises(SeriesError, match="not of a count series"):
        replay_series(events, kind="count", counts=events)
    with pytest.raises(SeriesError, match="needs the counts"):
        replay_series(average, kind="mean", within=events)
    # unknown counts are no counts: the plain model, to the bit
    unknown = replay_series(average, kind="mean", counts=events * np.nan)
    assert unknown == replay_series(average, kind="mean")


def write_checkouts(path: Path, average: pd.Series, events: pd.Series | None) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(average.index).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "value": average.to_numpy(),
        }
    )
    if events is not None:
        frame["count"] = events.where(average.notna()).to_numpy()
    frame.to_csv(path, index=False)


def test_lantern_replay_reads_a_count_column_of_averages(tmp_path: Path) -> None:
    average, events, _ = checkouts(0, odd=True)
    write_checkouts(tmp_path / "plain.csv", average, None)
    write_checkouts(tmp_path / "counted.csv", average, events)
    out = tmp_path / "alerts.jsonl"
    result = CliRunner().invoke(replay, [str(tmp_path), "--kind", "mean", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    found = {r["series"] for r in records if r["detected_at"] == "2026-03-31T04:00:00+00:00"}
    assert found == {"plain"}  # weighed by its one checkout, the odd hour is no news
    assert not [r for r in records if r["series"] == "counted"]
    # a count column is for averages, and holds numbers
    result = CliRunner().invoke(replay, [str(tmp_path / "counted.csv"), "--kind", "value"])
    assert result.exit_code == 2
    assert "count column" in result.output and "--kind mean" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value,count\n2026-01-05T00:00:00Z,1.5,many\n")
    result = CliRunner().invoke(replay, [str(bad), "--kind", "mean"])
    assert result.exit_code == 2
    assert "count at 2026-01-05T00:00:00+00:00 is not a number" in result.output
