"""A group's breakdown increments: summed in memory per (metrics, dimension values, hour).

Most events of a group share their metrics, their dimension values and their hour, so
each event adds to one cell keyed by all three; the cells are spread over each metric and
each dimension value only once per group. Value and average metrics get no rows of their
own: the event's count metric (its track event, or its LaunchDarkly experiment) carries
the value's count and sum beside its events, which halves the rows an hour takes; the
reading side (`lantern.breakdowns.read`) finds them there.
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

# Metrics with no breakdown rows of their own, and those that carry an event's value.
NOT_SPLIT = frozenset({MetricKind.VALUE.value, MetricKind.MEAN.value})
CARRY_VALUE = frozenset({MetricKind.TRACK.value, MetricKind.EXPERIMENT.value})
Marks = tuple[tuple[MetricKey, bool], ...]  # the metrics split, each marked if it takes the value
Dims = tuple[tuple[int, str], ...]
# (value id, metric id, hour) -> (events, events with a value, their sum)
Rows = dict[tuple[int, int, int], tuple[int, int, float]]


def split_marks(verdict: Verdict) -> tuple[Marks, float | None]:
    """The metrics an event's breakdowns count, each marked if it carries the event's
    value, and that value (None when the event has none)."""
    value: float | None = None
    for _, given in verdict.increments:
        if given is not None:
            value = given
            break
    marks = tuple(
        (key, value is not None and key[0] in CARRY_VALUE)
        for key, _ in verdict.increments
        if key[0] not in NOT_SPLIT
    )
    return marks, value


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
            summed = self.cells[source_id] = {}
        marks, value = split_marks(verdict)
        key = (marks, verdict.dims, verdict.hour)
        cell = summed.get(key)
        if cell is None:
            cell = summed[key] = [0, 0, 0.0]
        cell[0] += 1
        if value is not None:
            cell[1] += 1
            cell[2] += value

    def increments(
        self,
        connection: Connection,
        *,
        metric_ids: dict[int, dict[MetricKey, int]],
        refused: set[int],
    ) -> tuple[Rows, dict[int, KnownValues]]:
        """Rows to add, new values admitted within the cap; and the dimensions' values to
        remember after commit."""
        wanted: dict[int, dict[str, None]] = {}
        for summed in self.cells.values():
            for _, dims, _ in summed:
                for dimension_id, value in dims:
                    if dimension_id not in refused:
                        wanted.setdefault(dimension_id, {})[value] = None
        found, learned = resolve_values(
            connection, wanted={d: list(values) for d, values in wanted.items()}
        )
        learned.update({dimension_id: KnownValues(refused=True) for dimension_id in refused})
        rows: dict[tuple[int, int, int], list[float]] = {}
        for source_id, summed in self.cells.items():
            ids = metric_ids[source_id]
            for (marks, dims, hour), (count, valued, value_sum) in summed.items():
                targets = [(ids[key], carries) for key, carries in marks]
                for pair in dims:
                    value_id = found.get(pair)
                    if value_id is None:
                        continue
                    for metric_id, carries in targets:
                        row = (value_id, metric_id, hour)
                        cell = rows.get(row)
                        if cell is None:
                            cell = rows[row] = [0, 0, 0.0]
                        cell[0] += count
                        if carries:
                            cell[1] += valued
                            cell[2] += value_sum
        return {k: (int(c), int(n), float(v)) for k, (c, n, v) in rows.items()}, learned
