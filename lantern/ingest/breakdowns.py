"""A group's breakdown increments: summed in memory per (metrics, dimension values, hour).

Most events of a group share their metrics, their dimension values and their hour, so
each event adds to one cell keyed by all three; the cells are spread over each metric and
each dimension value only once per group. An average metric gets no rows: its value
metric's rows hold the same count and sum.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy.engine import Connection

from lantern.breakdowns.service import (
    ONE_VALUE_PER_EVENT,
    RATIO_MAX_DISTINCT,
    RATIO_MIN_EVENTS,
    KnownValues,
    property_dimensions,
    resolve_values,
)
from lantern.ingest.events import Verdict
from lantern.ingest.types import Judged
from lantern.metrics.keys import MetricKey, MetricKind

_MEAN = MetricKind.MEAN.value
Marks = tuple[tuple[MetricKey, bool], ...]  # a metric an event increments, and if valued
Dims = tuple[tuple[int, str], ...]


def split_marks(verdict: Verdict) -> tuple[Marks, float]:
    """The metrics an event's breakdowns count (not averages), each marked if it takes the
    event's value, and that value (0 when none)."""
    value = 0.0
    marks: list[tuple[MetricKey, bool]] = []
    for key, given in verdict.increments:
        if key[0] == _MEAN:
            continue
        if given is not None:
            value = given
        marks.append((key, given is not None))
    return tuple(marks), value


def find_refusals(requests: Sequence[Judged], unique: Sequence[list[Verdict]]) -> dict[int, str]:
    """Property dimensions to refuse, with the reason: a value that looked personal, or
    almost one value per event among a group's events."""
    reasons: dict[int, str] = {}
    seen: dict[int, list[int]] = {}
    values: dict[int, set[str]] = defaultdict(set)
    for request, kept in zip(requests, unique, strict=True):
        watched = property_dimensions(request.spec)
        if not watched:
            continue
        for verdict in kept:
            if verdict.refusal is not None:
                reasons.setdefault(verdict.refusal.dimension_id, verdict.refusal.reason)
            for dimension_id, value in verdict.dims:
                if dimension_id in watched:
                    seen.setdefault(dimension_id, [0])[0] += 1
                    values[dimension_id].add(value)
    for dimension_id, (events,) in seen.items():
        if events >= RATIO_MIN_EVENTS and len(values[dimension_id]) >= RATIO_MAX_DISTINCT * events:
            reasons.setdefault(dimension_id, ONE_VALUE_PER_EVENT)
    return reasons


class BreakdownCells:
    """A group's counted events summed per source, metrics, dimension values and hour."""

    def __init__(self) -> None:
        self.cells: dict[int, dict[tuple[Marks, Dims, int], list[float]]] = {}

    def add(self, source_id: int, verdict: Verdict) -> None:
        """Count one event that was counted in its metrics."""
        if not verdict.dims:
            return
        summed = self.cells.get(source_id)
        if summed is None:
            summed = self.cells[source_id] = defaultdict(lambda: [0, 0.0])
        marks, value = split_marks(verdict)
        cell = summed[(marks, verdict.dims, verdict.hour)]
        cell[0] += 1
        cell[1] += value

    def increments(
        self,
        connection: Connection,
        *,
        metric_ids: dict[int, dict[MetricKey, int]],
        refused: set[int],
    ) -> tuple[dict[tuple[int, int, int], tuple[int, float]], dict[int, KnownValues]]:
        """Rows `(value_id, metric_id, hour) -> (count, value_sum)` to add, new values
        admitted within the cap; and the dimensions' values to remember after commit."""
        wanted: dict[int, list[str]] = {}
        for summed in self.cells.values():
            for _, dims, _ in summed:
                for dimension_id, value in dims:
                    if dimension_id not in refused:
                        wanted.setdefault(dimension_id, []).append(value)
        found, learned = resolve_values(
            connection, wanted={d: list(dict.fromkeys(v)) for d, v in wanted.items()}
        )
        learned.update({dimension_id: KnownValues(refused=True) for dimension_id in refused})
        rows: dict[tuple[int, int, int], list[float]] = defaultdict(lambda: [0, 0.0])
        for source_id, summed in self.cells.items():
            ids = metric_ids[source_id]
            for (marks, dims, hour), (count, value_sum) in summed.items():
                for pair in dims:
                    value_id = found.get(pair)
                    if value_id is None:
                        continue
                    for key, valued in marks:
                        cell = rows[(value_id, ids[key], hour)]
                        cell[0] += count
                        if valued:
                            cell[1] += value_sum
        return {k: (int(c), float(v)) for k, (c, v) in rows.items()}, learned
