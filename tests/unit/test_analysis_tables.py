"""The analysts' tables and figures: stories, alerts per sensitivity, insights per week."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from lantern.analysis import (
    alert_table,
    connect,
    mark_sent,
    metric_titles,
    plot_alerts,
    weekly,
)

T0 = pd.Timestamp("2026-03-02 10:00", tz="UTC")  # a Monday


def alert(
    sensitivity: str,
    metric_id: int,
    hours: int,
    *,
    kind: str = "spike",
    direction: str = "up",
    metric_kind: str = "track",
    change: float = 1.0,
    start_hours: int | None = None,
) -> dict[str, object]:
    at = T0 + pd.Timedelta(hours=hours)
    return {
        "sensitivity": sensitivity,
        "source": "web",
        "metric_id": metric_id,
        "metric": f"m{metric_id}",
        "metric_kind": metric_kind,
        "title": f"m{metric_id}",
        "at": at,
        "kind": kind,
        "direction": direction,
        "start": T0 + pd.Timedelta(hours=hours if start_hours is None else start_hours),
        "relative_change": change,
        "score": 10.0,
        "severity": "high",
    }


def test_alerts_opening_together_in_one_direction_are_one_message_led_by_a_named_metric() -> None:
    alerts = pd.DataFrame(
        [
            alert("medium", 1, 0, metric_kind="total", change=3.0),
            alert("medium", 2, 0, change=1.0),
            alert("medium", 3, 0, kind="drop", direction="down", change=-0.6),
            alert("medium", 4, 2, start_hours=1),  # within three hours of the story told
            alert("medium", 5, 30),  # a day later: news again
            alert("high", 1, 0, metric_kind="total"),  # each sensitivity on its own
        ]
    )
    assert list(mark_sent(alerts)) == [False, True, True, False, True, True]


def test_the_alert_table_counts_kinds_per_sensitivity_with_totals_and_messages() -> None:
    alerts = pd.DataFrame(
        [
            alert("low", 1, 0, kind="outage", direction="down"),
            alert("high", 1, 0, kind="outage", direction="down"),
            alert("high", 2, 0),
            alert("high", 3, 40, kind="level_shift"),
        ]
    )
    alerts["sent"] = mark_sent(alerts)
    table = alert_table(alerts)
    assert list(table.columns) == ["low", "high"]
    assert table.to_dict("index") == {
        "level_shift": {"low": 0, "high": 1},
        "spike": {"low": 0, "high": 1},
        "outage": {"low": 1, "high": 1},
        "all alerts": {"low": 1, "high": 3},
        "Slack messages": {"low": 1, "high": 3},
    }


def test_insights_per_week_start_on_monday_and_list_quiet_weeks_with_zeros() -> None:
    insights = pd.DataFrame(
        {
            "detected_at": [T0, T0 + pd.Timedelta(days=6, hours=13), T0 + pd.Timedelta(days=14)],
            "severity": ["high", "low", "high"],
        }
    )
    table = weekly(insights, by="severity")
    assert list(table.columns) == ["low", "high"]
    assert [str(w.date()) for w in table.index] == ["2026-03-02", "2026-03-09", "2026-03-16"]
    # Sunday 23:00 UTC is still the first week; the second had none.
    assert table.to_dict("list") == {"low": [1, 0, 0], "high": [1, 0, 1]}


def test_metrics_are_titled_as_a_person_reads_them() -> None:
    metrics = pd.DataFrame(
        {
            "kind": ["track", "value", "total", "total", "page"],
            "name": ["Checkout", "Checkout", "track", "identify", "Home"],
        },
        index=[1, 2, 3, 4, 5],
    )
    assert metric_titles(metrics) == {
        1: "Checkout (track event)",
        2: "Checkout (value)",
        3: "all track calls",
        4: "identify volume",
        5: "Home",
    }


def test_the_sensitivity_figure_draws_every_alert_and_a_bar_per_kind_and_sensitivity() -> None:
    alerts = pd.DataFrame(
        [alert("low", 1, 0), alert("high", 1, 0), alert("high", 2, 5, kind="drop")]
    )
    alerts["sent"] = mark_sent(alerts)
    timeline, bars = plot_alerts(alerts).axes
    assert sum(np.asarray(c.get_offsets()).shape[0] for c in timeline.collections) == 3
    assert [t.get_text() for t in timeline.get_yticklabels()] == ["m2", "m1"]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["spike", "drop"]
    assert sorted(p.get_height() for p in bars.patches if isinstance(p, Rectangle)) == [0, 1, 1, 1]


def test_connecting_to_a_missing_sqlite_file_says_how_to_make_a_database(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="lantern demo"):
        connect(f"sqlite:///{tmp_path / 'nothing' / 'lantern.db'}")
    assert not (tmp_path / "nothing").exists()
