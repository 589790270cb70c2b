"""What metrics an event feeds: the kinds of metric and their human labels."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from lantern.detect.series import SeriesKind


class MetricKind(StrEnum):
    """The kinds of discovered metric; the value is what the database stores."""

    TRACK = "track"  # one per track event name
    PAGE = "page"  # one per page name
    SCREEN = "screen"  # one per screen name
    TOTAL = "total"  # one per call type; the identify total is the identify volume
    VALUE = "value"  # sum of a numeric properties.value (else revenue) per track event
    MEAN = "mean"  # average of the same values: their count, sum and sum of squares are kept
    FLAG = "flag"  # LaunchDarkly flag evaluations per flag key
    EXPERIMENT = "experiment"  # LaunchDarkly click, page view and custom metric events
    OVERFLOW = "overflow"  # new names past the source's metric cap
    # one value of a breakdown of another metric, watched on request (never from an event:
    # `lantern.breakdowns.alerts`); named "Checkout Completed — OS Android"
    BREAKDOWN = "breakdown"


LABELS = {
    MetricKind.TRACK: "track event",
    MetricKind.PAGE: "page",
    MetricKind.SCREEN: "screen",
    MetricKind.TOTAL: "all calls",
    MetricKind.VALUE: "value",
    MetricKind.MEAN: "average value",
    MetricKind.FLAG: "flag evaluations",
    MetricKind.EXPERIMENT: "experiment metric",
    MetricKind.OVERFLOW: "metrics over the cap",
    MetricKind.BREAKDOWN: "breakdown value",
}

OVERFLOW_NAME = "(over the metric cap)"

# Kinds that exist for every source whatever the cap: they cannot crowd anything out (a
# breakdown value's metric is made on request, and only for the values a dimension counts).
UNCAPPED = frozenset({MetricKind.TOTAL, MetricKind.OVERFLOW, MetricKind.BREAKDOWN})

MetricKey = tuple[str, str]

# What one hour of a metric holds: a number of events, a sum of values, or their average.
Measure = Literal["count", "sum", "average"]


def label(kind: str, name: str) -> str:
    """How a metric is named to a person."""
    if kind == MetricKind.TOTAL:
        return "identify volume" if name == "identify" else f"all {name} calls"
    return LABELS.get(MetricKind(kind), kind)


def is_value_kind(kind: str) -> bool:
    """Whether the metric's series is real-valued (a sum or an average) rather than a count."""
    return kind in (MetricKind.VALUE, MetricKind.MEAN)


def measure(kind: str) -> Measure:
    """What one hour of the metric holds: its events, the sum of their values, or the average."""
    if kind == MetricKind.MEAN:
        return "average"
    return "sum" if kind == MetricKind.VALUE else "count"


def series_kind(kind: str) -> SeriesKind:
    """The kind of series detection is given for a metric of this kind."""
    if kind == MetricKind.MEAN:
        return "mean"
    return "value" if kind == MetricKind.VALUE else "count"


# How a list names a metric (`display_name`); the metrics list's search reads the same words
# in SQL (lantern.dashboard.status), so they live here once.
IDENTIFY_VOLUME = "Identify volume"
TOTAL_WORDS = ("All ", " calls")  # around the call type: "All page calls"
OVER_THE_CAP = "Metrics over the cap"
NAME_SUFFIX = {
    MetricKind.PAGE: "page",
    MetricKind.SCREEN: "screen",
    MetricKind.VALUE: "value",
    MetricKind.MEAN: "average value",
    MetricKind.FLAG: "flag evaluations",
    MetricKind.EXPERIMENT: "experiment",
}


def display_name(kind: str, name: str) -> str:
    """A metric's name as a list shows it: "Signed Up", "Page Load (average value)"."""
    if kind in (MetricKind.TRACK, MetricKind.BREAKDOWN):  # a value's is named in full
        return name
    if kind == MetricKind.TOTAL:
        return IDENTIFY_VOLUME if name == "identify" else name.join(TOTAL_WORDS)
    if kind == MetricKind.OVERFLOW:
        return OVER_THE_CAP
    suffix = NAME_SUFFIX.get(MetricKind(kind), kind)
    return f"{name} ({suffix})"
