"""A group's breakdown cells spread over their dimension values: the rows a loop would add."""

from __future__ import annotations

import random

from lantern.ingest.breakdowns import Dims, spread
from lantern.metrics.keys import MetricKey


def spread_one_by_one(
    cells: dict[int, dict[tuple[MetricKey, Dims, int], list[float]]],
    metric_ids: dict[int, dict[MetricKey, int]],
    value_ids: dict[tuple[int, str], int],
) -> list[tuple[int, int, int, int, int, float]]:
    """Each cell added to each of its values' rows in turn, the way it reads."""
    rows: dict[tuple[int, int, int], list[float]] = {}
    for source_id, summed in cells.items():
        for (key, dims, hour), (count, valued, value_sum) in summed.items():
            for pair in dims:
                if pair in value_ids:
                    row = rows.setdefault(
                        (value_ids[pair], metric_ids[source_id][key], hour), [0, 0, 0.0]
                    )
                    row[0] += count
                    row[1] += valued
                    row[2] += value_sum
    return [(*key, int(c), int(n), v) for key, (c, n, v) in sorted(rows.items())]


def random_cells(
    seed: int,
) -> tuple[
    dict[int, dict[tuple[MetricKey, Dims, int], list[float]]],
    dict[int, dict[MetricKey, int]],
    dict[tuple[int, str], int],
]:
    rng = random.Random(seed)
    values = {(dimension, f"v{n}"): dimension * 10 + n for dimension in (1, 2, 3) for n in range(4)}
    contexts: list[Dims] = [
        tuple((d, f"v{rng.randrange(5)}") for d in (1, 2, 3) if rng.random() < 0.8)
        for _ in range(12)
    ]
    cells: dict[int, dict[tuple[MetricKey, Dims, int], list[float]]] = {}
    metric_ids: dict[int, dict[MetricKey, int]] = {}
    for source_id in (1, 2):
        keys: list[MetricKey] = [("track", f"E{n}") for n in range(5)] + [("total", "track")]
        metric_ids[source_id] = {key: source_id * 100 + n for n, key in enumerate(keys)}
        summed = cells[source_id] = {}
        for _ in range(60):
            cell = (rng.choice(keys), rng.choice(contexts), 490_000 + rng.randrange(3))
            count = rng.randrange(1, 9)
            summed[cell] = [count, rng.randrange(count + 1), rng.uniform(-1e6, 1e6) / 7]
    return cells, metric_ids, values


def test_each_value_row_sums_its_cells_exactly_as_adding_them_in_turn_would() -> None:
    for seed in range(20):
        cells, metric_ids, values = random_cells(seed)
        assert spread(cells, metric_ids=metric_ids, value_ids=values) == spread_one_by_one(
            cells, metric_ids, values
        )


def test_cells_whose_values_have_no_row_add_nothing() -> None:
    dims: Dims = ((1, "unknown"),)
    cells: dict[int, dict[tuple[MetricKey, Dims, int], list[float]]] = {
        1: {(("track", "E"), dims, 490_000): [3, 0, 0.0]}
    }
    assert spread(cells, metric_ids={1: {("track", "E"): 7}}, value_ids={}) == []
    assert spread({}, metric_ids={}, value_ids={}) == []
