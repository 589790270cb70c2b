"""What an insight's root cause is: the values of a dimension that explain its change, the
line that tells them ("app version 5.2: -92% (explains 88% of the drop)"), and the form it
is stored and served in. How the values are ranked and named: `ranking.py`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from lantern.breakdowns.dimensions import DEFAULT_DIMENSIONS, PROPERTY_PREFIX

NAMES = {
    "os": "OS",
    "app_version": "app version",
    "library": "library",
    "country": "country",
    "page_path": "page",
}


def dimension_label(dimension: str) -> str:
    """A dimension as a sentence names it: "app version", "page", or a property's key."""
    if dimension in NAMES:
        return NAMES[dimension]
    if dimension.startswith(PROPERTY_PREFIX):
        return dimension[len(PROPERTY_PREFIX) :]
    return dimension


@dataclass(frozen=True, slots=True)
class ValueChange:
    """One value's move over the episode: per hour, averaged over the episode's hours."""

    value: str
    observed: float
    expected: float
    relative_change: float | None  # None: the value was not expected at all (a new one)
    contribution: float  # its share of the move in the insight's direction
    expected_share: float  # its share of the dimension's expectation
    noise: float = 0.0  # a count's standard error of `observed - expected` (0: not known)


@dataclass(frozen=True, slots=True)
class DimensionChange:
    """How one dimension's values moved, ranked by contribution, and those that stand out."""

    dimension: str
    values: tuple[ValueChange, ...]  # every value, largest contribution first
    named: tuple[ValueChange, ...]  # the one or two that explain the move; empty if none

    @property
    def explained(self) -> float:
        return sum(v.contribution for v in self.named)


@dataclass(frozen=True, slots=True)
class ValueSeries:
    """A value's hours around the episode, observed against its own expectation."""

    value: str
    observed: tuple[float, ...]
    expected: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class RootCause:
    """What an insight says of its breakdowns: the values that explain it, or that it is broad."""

    direction: str
    dimension: str | None  # the dimension told (None: broad, no dimension stands out)
    shown: str | None  # the dimension whose values are listed (when broad, the nearest)
    values: tuple[ValueChange, ...]  # that dimension's values, ranked (at most LISTED)
    named: tuple[ValueChange, ...]  # the one or two told; empty when broad
    checked: tuple[str, ...]  # the dimensions that saw the move
    chart_start: datetime | None = None  # the first hour of `series`
    series: tuple[ValueSeries, ...] = ()

    @property
    def broad(self) -> bool:
        return not self.named

    @property
    def text(self) -> str:
        return root_cause_text(self)

    def as_json(self) -> dict[str, Any]:
        """The stored form (and the API's): plain numbers and strings."""
        return {
            "text": self.text,
            "broad": self.broad,
            "direction": self.direction,
            "dimension": self.dimension,
            "dimension_label": dimension_label(self.dimension) if self.dimension else None,
            "shown": self.shown,
            "shown_label": dimension_label(self.shown) if self.shown else None,
            "checked": list(self.checked),
            "values": [
                {
                    "value": v.value,
                    "observed": _round(v.observed),
                    "expected": _round(v.expected),
                    "relative_change": _round(v.relative_change),
                    "contribution": _round(v.contribution),
                    "named": v in self.named,
                }
                for v in self.values
            ],
            "chart": None
            if self.chart_start is None
            else {
                "start": pd.Timestamp(self.chart_start).isoformat(),
                "values": [
                    {
                        "value": s.value,
                        "observed": [_round(x) for x in s.observed],
                        "expected": [_round(x) for x in s.expected],
                    }
                    for s in self.series
                ],
            },
        }


def _round(value: float | None) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return float(f"{value:.4g}")


def _percent(change: float | None) -> str:
    if change is None:
        return "new"
    text = f"{change:+,.0%}"
    return text.replace("-", "\u2212")


def root_cause_text(cause: RootCause) -> str:
    """One line: "app version 5.2: -92% (explains 88% of the drop)" (a true minus sign), or
    that the change is broad."""
    move = "drop" if cause.direction == "down" else "rise"
    if cause.broad:
        labels = [dimension_label(d) for d in _in_order(cause.checked)]
        listed = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " or " + labels[-1]
        return f"The {move} is broad: no single {listed} explains most of it"
    label = dimension_label(cause.dimension or "")
    parts = []
    for i, value in enumerate(cause.named):
        share = (
            f"explains {value.contribution:.0%} of the {move}"
            if i == 0
            else (f"explains {value.contribution:.0%}")
        )
        name = f"{label} {value.value}" if i == 0 else value.value
        parts.append(f"{name}: {_percent(value.relative_change)} ({share})")
    return "; ".join(parts)


def _in_order(dimensions: Sequence[str]) -> list[str]:
    def order(name: str) -> tuple[int, str]:
        if name in DEFAULT_DIMENSIONS:
            return (DEFAULT_DIMENSIONS.index(name), name)
        return (len(DEFAULT_DIMENSIONS), name)

    return sorted(dimensions, key=order)
