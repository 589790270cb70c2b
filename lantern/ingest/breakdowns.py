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

import numpy as np
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
Dims = tuple[tuple[int, str], ...]
# (value id, metric id, hour, events, events with a value, their sum)
Row = tuple[int, int, int, int, int, float]


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
    """A group's counted events summed per source, metric, dimension values and hour.

    A cell is keyed by one metric the event counts in, the event's dimension values (one
    tuple, the same object for every event of the same client context) and its hour; it
    holds the events, those with a value that this metric carries, and their sum.
    """

    def __init__(self) -> None:
        self.cells: dict[int, dict[tuple[MetricKey, Dims, int], list[float]]] = {}

    def add(self, source_id: int, verdict: Verdict) -> None:
        """Count one event that was counted in its metrics."""
        dims = verdict.dims
        if not dims:
            return
        summed = self.cells.get(source_id)
        if summed is None:
            summed = self.cells[source_id] = {}
        hour = verdict.hour
        value: float | None = None
        for _, given in verdict.increments:
            if given is not None:
                value = given
                break
        for key, _ in verdict.increments:
            kind = key[0]
            if kind in NOT_SPLIT:
                continue
            cell = summed.get((key, dims, hour))
            if cell is None:
                cell = summed[(key, dims, hour)] = [0, 0, 0.0]
            cell[0] += 1
            if value is not None and kind in CARRY_VALUE:
                cell[1] += 1
                cell[2] += value

    def increments(
        self,
        connection: Connection,
        *,
        metric_ids: dict[int, dict[MetricKey, int]],
        refused: set[int],
    ) -> tuple[list[Row], dict[int, KnownValues]]:
        """Rows to add in key order, new values admitted within the cap; and the
        dimensions' values to remember after commit."""
        wanted: dict[int, dict[str, None]] = {}
        for summed in self.cells.values():
            # in the order the events came: the first values met are the ones admitted
            for dims in dict.fromkeys(dims for _, dims, _ in summed):
                for dimension_id, value in dims:
                    if dimension_id not in refused:
                        wanted.setdefault(dimension_id, {})[value] = None
        found, learned = resolve_values(
            connection, wanted={d: list(values) for d, values in wanted.items()}
        )
        learned.update({dimension_id: KnownValues(refused=True) for dimension_id in refused})
        return spread(self.cells, metric_ids=metric_ids, value_ids=found), learned


def spread(
    cells: dict[int, dict[tuple[MetricKey, Dims, int], list[float]]],
    *,
    metric_ids: dict[int, dict[MetricKey, int]],
    value_ids: dict[tuple[int, str], int],
) -> list[Row]:
    """Each cell added to the row of each of its dimension values: (value id, metric id,
    hour, events, events with a value, their sum), summed per key, in key order.

    A cell goes to 3 to 5 rows, so this is the group's largest loop: it runs on arrays
    (a cell's values repeated, sorted stably by key, summed per key in the order the
    cells came, so each sum adds the same numbers in the same order a loop would).
    """
    combos: dict[Dims, int] = {}
    targets: list[list[int]] = []
    metric: list[int] = []
    combo: list[int] = []
    hour: list[int] = []
    sums: list[list[float]] = [[], [], []]
    events, valued, value_sum = sums
    for source_id, summed in cells.items():
        ids = metric_ids[source_id]
        for (key, dims, at), (count, carried, total) in summed.items():
            number = combos.get(dims)
            if number is None:
                number = combos[dims] = len(targets)
                targets.append([value_ids[p] for p in dims if p in value_ids])
            metric.append(ids[key])
            combo.append(number)
            hour.append(at)
            events.append(count)
            valued.append(carried)
            value_sum.append(total)
    if not metric:
        return []
    widths = np.array([len(t) for t in targets], dtype=np.int64)
    flat = np.array([v for t in targets for v in t], dtype=np.int64)
    starts = np.cumsum(widths) - widths
    per_cell = widths[np.array(combo, dtype=np.int64)]
    cell = np.repeat(np.arange(len(metric)), per_cell)
    if not len(cell):
        return []
    # the position of each repeat within its cell's values
    first = np.repeat(np.cumsum(per_cell) - per_cell, per_cell)
    within = np.arange(len(cell)) - first
    value_id = flat[starts[np.array(combo, dtype=np.int64)][cell] + within]
    metric_id = np.array(metric, dtype=np.int64)[cell]
    hours = np.array(hour, dtype=np.int64)[cell]
    order = np.lexsort((hours, metric_id, value_id))  # stable: cells keep their order
    value_id, metric_id, hours, cell = value_id[order], metric_id[order], hours[order], cell[order]
    new = np.empty(len(cell), dtype=bool)
    new[0] = True
    new[1:] = (
        (value_id[1:] != value_id[:-1])
        | (metric_id[1:] != metric_id[:-1])
        | (hours[1:] != hours[:-1])
    )
    group = np.cumsum(new) - 1
    heads = np.flatnonzero(new)
    # bincount adds each group's numbers one by one, in order, from 0.0
    added = [np.bincount(group, weights=np.array(column)[cell]) for column in sums]
    return list(
        zip(
            value_id[heads].tolist(),
            metric_id[heads].tolist(),
            hours[heads].tolist(),
            added[0].astype(np.int64).tolist(),
            added[1].astype(np.int64).tolist(),
            added[2].tolist(),
            strict=True,
        )
    )
