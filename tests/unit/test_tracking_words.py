"""A tracking break's one line, as Slack, the newsfeed, the page and the API say it."""

from __future__ import annotations

import pytest

from lantern.insights.tracking import describe


@pytest.mark.parametrize(
    ("stored", "said"),
    [
        (
            {
                "detected_as": "outage",
                "kept_share": 0.98,
                "renamed_to": "Order Completed v2",
                "volume_ratio": 1.04,
            },
            "renamed to 'Order Completed v2'? That name started as it stopped, at 104% of its "
            "volume",
        ),
        (
            {"detected_as": "outage", "kept_share": 0.98, "renamed_to": None},
            "its source kept sending its other events (98% of their usual volume): check the "
            "tracking of the release it stopped with",
        ),
        (
            {
                "detected_as": "outage",
                "kept_share": None,
                "renamed_to": "Checkout Completed",
                "volume_ratio": None,
            },
            "renamed to 'Checkout Completed'? That name started as it stopped",
        ),
        (
            {"detected_as": "drop", "kept_share": 1.1, "app_version": "5.2"},
            "app version 5.2 stopped sending it; the other versions kept sending it",
        ),
    ],
)
def test_each_tracking_break_is_said_in_one_line(stored: dict[str, object], said: str) -> None:
    assert describe(stored) == said
