"""The trend test's hinge fits: the weighted least squares they rest on, and their ties."""

from __future__ import annotations

import numpy as np

from lantern.detect.detectors.trend import (
    _BENDS,
    _DAYS,
    _REGRESSORS,
    TIE,
    TREND_DAYS,
    _strongest,
    _wls_last,
)


def _reference(regressor: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, ...]:
    """(coefficient, standard error, residual sum of squares) of one weighted fit on
    (intercept, day, regressor), by a plain least-squares solve of the weighted rows; (0,
    inf, inf) where the weighted days cannot determine it (a step after the last of them)."""
    design = np.stack([np.ones(TREND_DAYS), _DAYS, regressor], axis=1)
    if np.linalg.matrix_rank(design[w > 0]) < 3:
        return 0.0, np.inf, np.inf
    root = np.sqrt(w)
    beta, *_ = np.linalg.lstsq(design * root[:, None], y * root, rcond=None)
    rss = float((w * (y - design @ beta) ** 2).sum())
    dof = max(int((w > 0).sum()) - 3, 1)
    cov = np.linalg.inv(design.T @ (design * w[:, None]))
    return float(beta[-1]), float(np.sqrt(cov[-1, -1] * max(rss / dof, 1.0))), rss


def test_each_hinge_and_step_fit_is_the_weighted_least_squares_fit() -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        hours = 24
        # daily log ratios with a level, a drift and noise of many scales, weighted as the
        # detector weighs them, with up to two missing days an hour
        y = (
            rng.normal(size=hours)
            + _DAYS[:, None] * rng.normal(scale=0.05, size=hours)
            + rng.normal(scale=rng.uniform(0.01, 1.0), size=(TREND_DAYS, hours))
        )
        w = 1.0 / (rng.uniform(1e-4, 0.1, size=(TREND_DAYS, hours)) + 0.015**2)
        for j in range(hours):
            w[rng.choice(TREND_DAYS, size=int(rng.integers(0, 3)), replace=False), j] = 0.0
        c, se, rss, _ = _wls_last(_REGRESSORS, y, w)
        for m, regressor in enumerate(_REGRESSORS):
            for j in range(hours):
                want = _reference(regressor, y[:, j], w[:, j])
                got = (c[m, j], se[m, j], rss[m, j])
                np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-10)


def test_a_fit_the_weights_cannot_determine_has_no_slope_and_no_error_bound() -> None:
    y = np.linspace(0.0, 1.0, TREND_DAYS)[:, None]
    w = np.zeros((TREND_DAYS, 1))
    w[:2] = 1000.0  # two days cannot fix three coefficients
    c, se, rss, _ = _wls_last(_REGRESSORS, y, w)
    assert (c == 0.0).all()
    assert np.isinf(se).all() and np.isinf(rss).all()


def test_hinges_missing_days_give_the_same_fit_tie_and_the_newest_is_taken() -> None:
    # with the two days after the newest hinge missing, it and the one before fit the days left as
    # well: their z are equal up to rounding
    newest = int(_BENDS[-1])
    y = np.where(newest - 1 < _DAYS, 0.4 * (_DAYS - newest + 1), 0.0)[:, None]
    y = y + np.random.default_rng(3).normal(scale=0.01, size=y.shape)
    w = np.full((TREND_DAYS, 1), 900.0)
    w[newest : newest + 2] = 0.0
    c, se, _, _ = _wls_last(_REGRESSORS, y, w)
    z = c[: len(_BENDS)] / se[: len(_BENDS)]
    older, newer = len(_BENDS) - 2, len(_BENDS) - 1
    assert abs(abs(z[older, 0]) - abs(z[newer, 0])) <= TIE * np.abs(z).max()
    assert _strongest(z)[0] == newer
    # whichever way the rounding falls, the newest of the tied hinges is taken; a hinge
    # clearly stronger is taken wherever it is
    tied = np.array([[1.0, 3.0], [3.0, 3.0 * (1 + 1e-15)], [3.0 * (1 + 1e-15), 3.0], [2.0, -3.5]])
    assert list(_strongest(tied)) == [2, 3]
    assert list(_strongest(-tied)) == [2, 3]
    assert list(_strongest(tied[[0, 2, 1, 3]])) == [2, 3]
