"""Average value metrics without a database: which metrics an event feeds, how Slack says it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lantern.ingest.events import Limits, judge
from lantern.metrics.keys import Measure, MetricKey, display_name, label, measure, series_kind
from lantern.notify.blocks import alert_blocks, update_blocks
from lantern.notify.types import InsightMessage

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
LIVE = Limits(late=timedelta(days=7), future=timedelta(minutes=10))


def increments(
    properties: dict[str, object], event: str = "Page Load"
) -> list[tuple[MetricKey, float | None]]:
    body = {"type": "track", "event": event, "userId": "u", "properties": properties}
    verdict = judge(body, received_at=NOW, batch_sent_at=None, limits=LIVE)
    assert verdict.accepted, verdict.reason
    return list(verdict.increments)


def test_a_numeric_value_feeds_its_event_count_its_sum_and_its_average() -> None:
    assert increments({"value": 812.5, "url": "https://example.com/?email=a@b.c"}) == [
        (("total", "track"), None),
        (("track", "Page Load"), None),
        (("value", "Page Load"), 812.5),
        (("mean", "Page Load"), 812.5),
    ]


def test_revenue_feeds_the_average_when_there_is_no_value() -> None:
    assert (("mean", "Order"), 30.0) in increments({"revenue": 30.0}, event="Order")


@pytest.mark.parametrize("properties", [{}, {"value": "812"}, {"value": True}, {"value": None}])
def test_an_event_without_a_numeric_value_feeds_no_average(properties: dict[str, object]) -> None:
    assert [key for key, _ in increments(properties)] == [
        ("total", "track"),
        ("track", "Page Load"),
    ]


def test_a_launchdarkly_metric_value_feeds_an_average_of_its_key() -> None:
    found = increments(
        {"key": "checkout-time", "environment": "prod", "metricValue": 2.5}, event="custom"
    )
    assert (("mean", "checkout-time"), 2.5) in found
    assert (("value", "checkout-time"), 2.5) in found


def test_an_average_metric_is_named_and_judged_as_an_average() -> None:
    assert display_name("mean", "Page Load") == "Page Load (average value)"
    assert label("mean", "Page Load") == "average value"
    assert (measure("mean"), series_kind("mean")) == ("average", "mean")
    assert (measure("value"), series_kind("value")) == ("sum", "value")
    assert (measure("track"), series_kind("track")) == ("count", "count")


START = datetime(2026, 3, 2, 14, tzinfo=UTC)


def message(kind_label: str, held: Measure) -> InsightMessage:
    return InsightMessage(
        insight_id=3,
        metric_name="Page Load",
        metric_kind=kind_label,
        source_name="web",
        kind="level_shift",
        direction="up",
        relative_change=0.6,
        observed=321.4,
        expected=201.0,
        lower=180.0,
        upper=222.0,
        start=START,
        detected_at=START + timedelta(hours=5),
        status="open",
        severity="high",
        score=9.0,
        causes=(),
        dashboard_url="http://127.0.0.1:8000/insights/3",
        measure=held,
    )


def test_a_slack_alert_on_an_average_gives_the_average_in_its_own_unit() -> None:
    _, blocks = alert_blocks(message("average value", "average"))
    facts = blocks[1]["text"]["text"]
    assert "*Page Load* (average value, source *web*)" in facts
    assert "*Observed average* 321 vs *expected* 201 (normal range 180 to 222)" in facts
    assert "events/h" not in str(blocks)
    _, thread = update_blocks(message("average value", "average"))
    assert "*Observed average* 321" in str(thread) and "events/h" not in str(thread)


def test_a_slack_alert_on_a_sum_has_no_unit_and_on_a_count_events_per_hour() -> None:
    _, summed = alert_blocks(message("value", "sum"))
    assert "*Observed* 321 vs *expected* 201 (" in summed[1]["text"]["text"]
    _, counted = alert_blocks(message("track event", "count"))
    assert "*Observed* 321 events/h vs *expected* 201 events/h" in counted[1]["text"]["text"]
