"""Ranking breakdown values by how much of a change they explain, on seeded series whose
truth is known (`tests.factories.breakdown_counts`)."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest

from lantern.breakdowns.ranking import MIN_EVENTS, explain, find_root_cause, rank_values
from lantern.breakdowns.rootcause import RootCause, root_cause_text
from tests.factories import breakdown_counts as counts_ending

# The series end at a fixed hour, not the clock's: the factory's daily rhythm puts the
# episode's four hours at a different volume each hour of the day, and the thresholds
# below were set at this one
END = pd.Timestamp("2026-11-30 09:00", tz="UTC")


def breakdown_counts(shares: dict[str, float], **options: Any) -> tuple[pd.DataFrame, pd.Timestamp]:
    return counts_ending(shares, end=END, **options)


VERSIONS = {"5.2": 0.45, "5.1.3": 0.35, "5.0": 0.2}


def cause_of(
    frames: dict[str, pd.DataFrame], start: pd.Timestamp, direction: str = "down"
) -> RootCause | None:
    end = start + pd.Timedelta(hours=3)  # the factory's episodes last 4 hours
    return find_root_cause(
        frames, start=start, end=end, direction=direction, min_events=MIN_EVENTS, counts=True
    )


def test_one_version_that_stopped_is_named_with_its_change_and_its_share_of_the_drop() -> None:
    frame, start = breakdown_counts(VERSIONS, change={"5.2": -0.92})
    cause = cause_of({"app_version": frame}, start)
    assert cause is not None
    [named] = cause.named
    assert named.value == "5.2"
    assert named.relative_change == pytest.approx(-0.92, abs=0.04)
    assert named.contribution > 0.9
    assert re.fullmatch(
        r"app version 5\.2: \u22129\d% \(explains (9\d|100)% of the drop\)", cause.text
    )
    assert not cause.broad


def test_the_line_reads_as_the_issue_states_it() -> None:
    frame, start = breakdown_counts({"5.2": 0.5, "5.1": 0.5}, change={"5.2": -0.9}, seed=3)
    cause = cause_of({"app_version": frame}, start)
    assert cause is not None
    [named] = cause.named
    assert named.relative_change is not None
    share, change = round(named.contribution * 100), round(-named.relative_change * 100)
    assert cause.text == f"app version 5.2: \u2212{change}% (explains {share}% of the drop)"


def test_two_versions_that_fell_are_both_named() -> None:
    frame, start = breakdown_counts(
        {"5.2": 0.35, "5.1.3": 0.25, "5.0": 0.2, "4.9": 0.2}, change={"5.2": -0.9, "5.1.3": -0.8}
    )
    cause = cause_of({"app_version": frame}, start)
    assert cause is not None
    assert [v.value for v in cause.named] == ["5.2", "5.1.3"]
    assert sum(v.contribution for v in cause.named) > 0.9
    assert cause.text.count("explains") == 2
    assert "; 5.1.3: \u2212" in cause.text


def test_a_drop_every_value_shares_is_broad() -> None:
    change = dict.fromkeys(VERSIONS, -0.5)
    frame, start = breakdown_counts(VERSIONS, change=change)
    os, _ = breakdown_counts(
        {"iOS": 0.6, "Android": 0.4}, change={"iOS": -0.5, "Android": -0.5}, dimension="os"
    )
    cause = cause_of({"os": os, "app_version": frame}, start)
    assert cause is not None
    assert cause.broad
    assert cause.named == ()
    assert cause.text == "The drop is broad: no single OS or app version explains most of it"
    # the values that came nearest are still listed, with their own changes
    assert all(v.relative_change == pytest.approx(-0.5, abs=0.08) for v in cause.values)


def test_a_new_version_that_brings_a_rise_is_named_as_new() -> None:
    frame, start = breakdown_counts(VERSIONS, new={"5.3": 0.6})
    cause = cause_of({"app_version": frame}, start, direction="up")
    assert cause is not None
    [named] = cause.named
    assert named.value == "5.3"
    assert named.expected == 0
    assert named.relative_change is None
    assert cause.text.startswith("app version 5.3: new (explains ")
    assert cause.text.endswith("% of the rise)")


def test_the_most_specific_dimension_is_told_when_two_explain_the_same_drop() -> None:
    # iOS users on 5.2 stopped: the OS and the version both explain it; 5.2 says more
    versions, start = breakdown_counts(
        {"5.2": 0.3, "5.1.3": 0.4, "5.0": 0.3}, change={"5.2": -0.95}, seed=4
    )
    os, _ = breakdown_counts({"iOS": 0.6, "Android": 0.4}, seed=5, dimension="os")
    undropped, _ = breakdown_counts({"5.2": 0.3, "5.1.3": 0.4, "5.0": 0.3}, seed=4)
    os["iOS"] = (os["iOS"] + versions["5.2"] - undropped["5.2"]).clip(lower=0)
    cause = cause_of({"os": os, "app_version": versions}, start)
    assert cause is not None
    assert cause.dimension == "app_version"
    assert cause.named[0].value == "5.2"
    assert set(cause.checked) == {"os", "app_version"}


def test_a_dimension_that_sees_only_part_of_the_events_cannot_claim_the_whole_drop() -> None:
    # the country is known for a tenth of the events; the metric fell for everyone else
    countries, start = breakdown_counts({"US": 0.05, "DE": 0.05}, change={"US": -0.9})
    rest, _ = breakdown_counts({"no locale": 0.9}, change={"no locale": -0.5}, seed=7)
    total = countries.sum(axis=1) + rest.sum(axis=1)
    ranked = rank_values(
        countries, start=start, end=countries.index[-1], direction="down", total=total
    )
    assert ranked is not None
    assert ranked.values[0].value == "US"
    assert ranked.values[0].contribution < 0.2
    assert ranked.named == ()


def test_no_breakdown_data_says_nothing() -> None:
    frame, start = breakdown_counts(VERSIONS)
    assert cause_of({}, start) is None
    empty = frame.iloc[:, :0]
    assert cause_of({"app_version": empty}, start) is None
    # less than a day of data before the episode: no expectation to hold values against
    assert cause_of({"app_version": frame.iloc[-10:]}, start) is None


def test_a_dimension_that_did_not_move_in_the_insight_s_direction_says_nothing() -> None:
    frame, start = breakdown_counts(VERSIONS, change={"5.2": 0.5})
    assert cause_of({"app_version": frame}, start, direction="down") is None


def test_too_few_events_say_nothing() -> None:
    frame, start = breakdown_counts(VERSIONS, change={"5.2": -0.9}, rate=0.5, episode_hours=2)
    assert cause_of({"app_version": frame}, start) is None


def test_with_a_week_of_breakdowns_the_same_hours_of_the_previous_days_are_the_expectation() -> (
    None
):
    frame, start = breakdown_counts(VERSIONS, change={"5.0": -1.0}, weeks=3 / 7)
    cause = cause_of({"app_version": frame}, start)
    assert cause is not None
    assert cause.named[0].value == "5.0"
    assert cause.named[0].relative_change == -1.0


def test_the_ranking_does_not_change_with_the_scale_of_the_metric() -> None:
    small, start = breakdown_counts(VERSIONS, change={"5.1.3": -0.9}, rate=400, seed=11)
    large = small * 10
    one = cause_of({"app_version": small}, start)
    ten = cause_of({"app_version": large}, start)
    assert one is not None and ten is not None
    assert one.text == ten.text
    assert [v.value for v in one.values] == [v.value for v in ten.values]


def test_the_chart_holds_each_named_value_s_hours_against_its_own_expectation() -> None:
    frame, start = breakdown_counts(VERSIONS, change={"5.2": -0.92})
    cause = cause_of({"app_version": frame}, start)
    assert cause is not None
    [series] = cause.series
    assert series.value == "5.2"
    assert cause.chart_start is not None
    assert pd.Timestamp(cause.chart_start) == start - pd.Timedelta(hours=48)
    assert len(series.observed) == len(series.expected) == 48 + 4
    # before the episode the value is where it is expected; in it, far below
    assert sum(series.observed[:48]) == pytest.approx(sum(series.expected[:48]), rel=0.1)
    assert sum(series.observed[48:]) < 0.2 * sum(series.expected[48:])
    stored = cause.as_json()
    assert stored["text"] == cause.text
    assert stored["chart"]["values"][0]["value"] == "5.2"
    assert [v["named"] for v in stored["values"]] == [True, False, False]


def test_explain_without_any_dimension_that_could_say_is_none() -> None:
    assert explain([None, None], direction="down") is None


def test_a_property_dimension_is_named_by_its_key() -> None:
    frame, start = breakdown_counts(
        {"pro": 0.5, "free": 0.5}, change={"pro": -0.9}, dimension="properties.plan"
    )
    cause = cause_of({"properties.plan": frame}, start)
    assert cause is not None
    assert root_cause_text(cause).startswith("plan pro: \u2212")


def test_one_version_of_twenty_that_stopped_is_named_over_the_others_noise() -> None:
    shares = {f"5.{i}": 1 / 20 for i in range(20)}
    frame, start = breakdown_counts(shares, change={"5.7": -0.9}, seed=8)
    cause = cause_of({"app_version": frame}, start)
    assert cause is not None
    assert [v.value for v in cause.named] == ["5.7"]
    assert cause.named[0].contribution > 0.6


def test_a_value_whose_fall_others_partly_made_up_explains_all_of_the_drop() -> None:
    # users of 5.2 moved to 5.3 as 5.2 broke: 5.2 lost more than the metric did
    frame, start = breakdown_counts(VERSIONS, change={"5.2": -0.9}, new={"5.3": 0.15}, seed=9)
    cause = cause_of({"app_version": frame}, start)
    assert cause is not None
    [named] = cause.named
    assert named.value == "5.2"
    assert named.contribution == 1.0
    assert "(explains 100% of the drop)" in cause.text
    assert [v.value for v in cause.values][-1] == "5.3"  # it moved the other way
    assert cause.values[-1].contribution < 0
