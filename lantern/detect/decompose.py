"""The fitted decomposition of a series, index-aligned, for charts and notebooks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lantern.detect.model import FIT_DAYS, fit_baseline
from lantern.detect.series import WEEK, SeriesKind, validate_series
from lantern.detect.state import hour_number


@dataclass(frozen=True)
class Decomposition:
    """Observed, expected and its band, seasonal and trend parts, all on the series' index."""

    observed: pd.Series
    expected: pd.Series
    lower: pd.Series
    upper: pd.Series
    seasonal: pd.Series  # on the model's scale (log1p of counts, or of pseudo-counts)
    trend: pd.Series  # on the model's scale


def decompose(
    series: pd.Series, *, kind: SeriesKind = "count", width: float = 3.0
) -> Decomposition:
    """Fit the baseline on the last 28 days and describe every hour of ``series`` with it.

    Hours more than 28 days before the end are described by extrapolating the same fit,
    which is what a chart of "expected vs observed" of the recent past wants.
    """
    clean = validate_series(series, kind=kind)
    hours = hour_number(clean.index[0]) + np.arange(len(clean))
    end = int(hours[-1]) + 1
    recent = hours >= end - FIT_DAYS * 24
    values = clean.to_numpy()
    model = fit_baseline(
        hours[recent],
        values[recent],
        np.isfinite(values[recent]) | (kind == "value"),
        kind=kind,
        fit_hour=end,
    )
    expected = model.expected(hours)
    lower, upper = model.band(expected, width)
    profile = np.asarray(model.profile)[hours % WEEK]
    index = clean.index
    return Decomposition(
        observed=clean,
        expected=pd.Series(expected, index=index, name="expected"),
        lower=pd.Series(lower, index=index, name="lower"),
        upper=pd.Series(upper, index=index, name="upper"),
        seasonal=pd.Series(profile, index=index, name="seasonal"),
        trend=pd.Series(model.log_expected(hours) - profile, index=index, name="trend"),
    )
