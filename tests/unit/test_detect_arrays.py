"""The small-array helpers of detection return numpy's own results, to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from lantern.detect import arrays


def _samples(seed: int, count: int = 2000) -> list[np.ndarray]:
    """Seeded arrays of many sizes and scales, some rounded so that values tie."""
    rng = np.random.default_rng(seed)
    out = []
    for index in range(count):
        values = rng.standard_normal(int(rng.integers(1, 400))) * 10.0 ** rng.integers(-6, 6)
        if index % 4 == 0:
            values = np.round(values)
        out.append(values)
    return out


def _bits(value: float) -> bytes:
    return np.float64(value).tobytes()


def test_the_median_and_mean_are_numpys_to_the_bit() -> None:
    for values in _samples(1):
        assert _bits(arrays.median(values)) == _bits(np.median(values))
        assert _bits(arrays.mean(values)) == _bits(np.mean(values))


def test_a_median_with_a_missing_value_is_missing() -> None:
    values = np.array([1.0, np.nan, 3.0, 2.0])
    assert np.isnan(arrays.median(values))


def test_the_median_and_mean_of_nothing_are_missing() -> None:
    assert np.isnan(arrays.median(np.array([])))
    assert np.isnan(arrays.mean(np.array([])))


@pytest.mark.parametrize("q", [0.05, 0.5, 0.9, 0.95, 1.0])
def test_the_quantile_is_numpys(q: float) -> None:
    for values in _samples(2, count=500):
        assert arrays.quantile(values, q) == float(np.quantile(values, q))


def test_row_means_are_numpys_to_the_bit() -> None:
    grid = np.random.default_rng(3).standard_normal((7, 24)) * 1e3
    assert arrays.row_means(grid).tobytes() == grid.mean(axis=1).tobytes()
