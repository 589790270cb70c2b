"""What metrics an event feeds: the kinds of metric and their human labels."""

from __future__ import annotations

from enum import StrEnum


class MetricKind(StrEnum):
    """The kinds of discovered metric; the value is what the database stores."""

    TRACK = "track"  # one per track event name
    PAGE = "page"  # one per page name
    SCREEN = "screen"  # one per screen name
    TOTAL = "total"  # one per call type; the identify total is the identify volume
    VALUE = "value"  # sum of a numeric properties.value (else revenue) per track event
    FLAG = "flag"  # LaunchDarkly flag evaluations per flag key
    EXPERIMENT = "experiment"  # LaunchDarkly click, page view and custom metric events
    OVERFLOW = "overflow"  # new names past the source's metric cap


LABELS = {
    MetricKind.TRACK: "track event",
    MetricKind.PAGE: "page",
    MetricKind.SCREEN: "screen",
    MetricKind.TOTAL: "all calls",
    MetricKind.VALUE: "value",
    MetricKind.FLAG: "flag evaluations",
    MetricKind.EXPERIMENT: "experiment metric",
    MetricKind.OVERFLOW: "metrics over the cap",
}

OVERFLOW_NAME = "(over the metric cap)"

# Kinds that exist for every source whatever the cap: they cannot crowd anything out.
UNCAPPED = frozenset({MetricKind.TOTAL, MetricKind.OVERFLOW})

MetricKey = tuple[str, str]


def label(kind: str, name: str) -> str:
    """How a metric is named to a person."""
    if kind == MetricKind.TOTAL:
        return "identify volume" if name == "identify" else f"all {name} calls"
    return LABELS.get(MetricKind(kind), kind)


def is_value_kind(kind: str) -> bool:
    """Whether the metric's series is a real-valued sum rather than a count."""
    return kind == MetricKind.VALUE


def display_name(kind: str, name: str) -> str:
    """A metric's name as a list shows it: "Signed Up", "Checkout Completed (value)"."""
    if kind == MetricKind.TRACK:
        return name
    if kind == MetricKind.TOTAL:
        return "Identify volume" if name == "identify" else f"All {name} calls"
    if kind == MetricKind.OVERFLOW:
        return "Metrics over the cap"
    suffix = {
        MetricKind.PAGE: "page",
        MetricKind.SCREEN: "screen",
        MetricKind.VALUE: "value",
        MetricKind.FLAG: "flag evaluations",
        MetricKind.EXPERIMENT: "experiment",
    }.get(MetricKind(kind), kind)
    return f"{name} ({suffix})"
