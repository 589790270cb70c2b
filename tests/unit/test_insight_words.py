"""Insights in words: how sure, what severity and status mean, the range, the next step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lantern.dashboard.feed import INSIGHT_STATUSES
from lantern.insights.service import severity
from lantern.insights.words import (
    SEVERITY_MEANINGS,
    STATUS_MEANINGS,
    how_sure,
    in_words,
    normal_range,
    once_in,
    sureness,
)

START = datetime(2026, 3, 2, 14, tzinfo=UTC)


def test_how_sure_says_how_often_chance_alone_would_make_a_change_this_large() -> None:
    assert how_sure(6.0) == (
        "Very unlikely to be chance: by chance, a change this large comes about once in "
        "110 years of this metric's hours."
    )
    assert how_sure(4.5).startswith("Unlikely to be chance: ")
    assert "once in 4 years" in how_sure(4.5)
    assert how_sure(2.0).startswith("Could be chance: ")
    assert "once in 4 days" in how_sure(2.0)
    assert "less often than once in a million years" in how_sure(50.0)


def test_a_higher_score_is_never_told_as_less_sure() -> None:
    order = ["unsure", "sure", "very_sure"]
    ranks = [order.index(sureness(s / 10)) for s in range(0, 600)]
    assert ranks == sorted(ranks)


@pytest.mark.parametrize(
    ("hours", "said"),
    [(5, "5 hours"), (72, "3 days"), (24 * 90, "3 months"), (24 * 365.25 * 1234, "1,200 years")],
)
def test_a_span_of_hours_is_said_in_the_unit_a_person_would_use(hours: float, said: str) -> None:
    assert once_in(hours) == said


def test_an_outage_within_each_hours_range_says_the_run_is_what_is_unusual() -> None:
    words = in_words(
        kind="outage",
        direction="down",
        status="open",
        severity="high",
        score=8.2,
        observed=0.0,
        lower=-1.5,
        upper=17.0,
        measure="count",
        start=START,
        detected_at=START + timedelta(hours=5),
    )
    assert words.normal_range == (
        "Normally 0\u201317 events an hour at this time of day and week; 0 an hour observed over "
        "6 hours. Each hour alone is within that range: 6 hours in a row is what is not."
    )
    assert "debug view" in words.next_step
    assert words.severity.startswith("high: the metric stopped")


def test_a_single_hour_outside_its_range_is_a_range_and_a_figure() -> None:
    assert normal_range(observed=41.0, lower=4.2, upper=17.0, measure="count") == (
        "Normally 4.2\u201317 events an hour at this time of day and week; 41 observed."
    )
    assert "on average" in normal_range(observed=3.0, lower=1.0, upper=2.0, measure="average")


@pytest.mark.parametrize(("change", "kind"), [(0.1, "spike"), (0.3, "drop"), (0.6, "level_shift")])
def test_each_severity_is_explained_by_the_rule_that_gives_it(change: float, kind: str) -> None:
    meaning = SEVERITY_MEANINGS[severity(kind, change)]
    said = {"low": "less than a fifth", "medium": "a fifth to a half", "high": "half or more"}
    assert said[severity(kind, change)] in meaning
    assert severity("outage", 0.01) == "high" and "stopped" in SEVERITY_MEANINGS["high"]


def test_every_status_is_explained_and_a_flag_change_comes_first_in_the_next_step() -> None:
    assert set(STATUS_MEANINGS) == set(INSIGHT_STATUSES)
    words = in_words(
        kind="drop",
        direction="down",
        status="open",
        severity="medium",
        score=6.5,
        observed=20.0,
        lower=60.0,
        upper=120.0,
        measure="count",
        start=START,
        detected_at=START,
        has_causes=True,
    )
    assert "feature flag" in words.next_step
    resolved = in_words(**{**words_kwargs(), "status": "resolved"})
    assert resolved.next_step.startswith("Nothing to do now")
    assert resolved.status.startswith("resolved: over")


def words_kwargs() -> dict[str, Any]:
    return {
        "kind": "spike",
        "direction": "up",
        "status": "open",
        "severity": "high",
        "score": 9.0,
        "observed": 300.0,
        "lower": 40.0,
        "upper": 90.0,
        "measure": "count",
        "start": START,
        "detected_at": START,
    }
