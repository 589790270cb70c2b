"""Small-array arithmetic for the hot paths of detection.

A refit and a judged day make tens of thousands of numpy calls on arrays of a few dozen to
a few hundred values, where the general functions' own overhead (argument handling, axis
logic, warnings) costs more than the arithmetic. These return what numpy's would, to the
bit, for the one case detection uses: a 1-D float array.
"""

from __future__ import annotations

import math

import numpy as np


def _sum(values: np.ndarray) -> float:
    """The sum `np.mean` takes (its reduction with ``where``, which starts from zero)."""
    return float(np.add.reduce(values, axis=None, where=True))


def mean(values: np.ndarray) -> float:
    """`np.mean` of a 1-D float array (the same sum, divided by the count); NaN if empty."""
    if values.size == 0:
        return float("nan")
    return _sum(values) / values.size


def median(values: np.ndarray) -> float:
    """`np.median` of a 1-D float array: NaN if it is empty or any value is NaN.

    The middle order statistics come from one partition, as numpy's own do, and the two
    of an even count are averaged as its mean would (their sum over two).
    """
    n = values.size
    if n == 0:
        return float("nan")
    half = n // 2
    if n % 2:
        part = np.partition(values, (half, n - 1))
        middle = _sum(part[half : half + 1])
    else:
        part = np.partition(values, (half - 1, half, n - 1))
        middle = _sum(part[half - 1 : half + 1]) / 2
    return float("nan") if np.isnan(part[-1]) else middle


def row_means(grid: np.ndarray) -> np.ndarray:
    """``grid.mean(axis=1)`` of a 2-D float array, by the same sums."""
    return np.add.reduce(grid, axis=1, where=True) / grid.shape[1]


def quantile(values: np.ndarray, q: float) -> float:
    """`np.quantile` (its default, linear method) of a non-empty 1-D array without NaN.

    The two order statistics about the virtual index ``(n - 1) q`` come from one partition,
    and are interpolated as numpy's ``_lerp`` does (from the nearer one). Where they are
    zeros of both signs the sign of a zero result may differ from numpy's, which equal
    comparisons and sums do not see.
    """
    n = values.size
    virtual = (n - 1) * q
    below = math.floor(virtual)
    if below >= n - 1:
        return float(np.max(values))
    part = np.partition(values, (below, below + 1))
    low, high = float(part[below]), float(part[below + 1])
    gamma = virtual - below
    step = high - low
    return high - step * (1 - gamma) if gamma >= 0.5 else low + step * gamma
