"""The one gate every series passes before detection, and the training countdown."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

SeriesKind = Literal["count", "value", "mean"]

DAY, WEEK = 24, 168  # hours
TRAINING_DAYS = 7
HOUR = pd.Timedelta(hours=1)
TRAINING = pd.Timedelta(days=TRAINING_DAYS)


class SeriesError(ValueError):
    """A series that detection cannot read: says what is wrong and how to fix it."""


def validate_series(series: pd.Series, *, kind: SeriesKind = "count") -> pd.Series:
    """Check a metric's hourly series and return it as float64 with gaps filled.

    The index must be a tz-aware UTC ``DatetimeIndex`` of whole hours, sorted, without
    duplicates, whose steps are multiples of one hour. Missing hours are filled: with 0 for
    counts (an hour without events is a real zero) and with NaN for values (an hour
    without a value says nothing). Counts must be non-negative.
    """
    if kind not in ("count", "value", "mean"):
        raise SeriesError(f"kind must be 'count', 'value' or 'mean', not {kind!r}")
    if not isinstance(series, pd.Series):
        raise SeriesError(f"expected a pandas Series, got {type(series).__name__}")
    index = series.index
    if not isinstance(index, pd.DatetimeIndex):
        raise SeriesError(f"the index must be a DatetimeIndex of hours, got {type(index).__name__}")
    if index.tz is None:
        raise SeriesError("timestamps have no time zone: localize them to UTC first")
    if str(index.tz) not in ("UTC", "utc", "UTC+00:00"):
        raise SeriesError(f"timestamps are in {index.tz}, not UTC: convert them with tz_convert")
    if len(index) == 0:
        raise SeriesError("the series is empty")
    if index.has_duplicates:
        first = index[index.duplicated()][0]
        raise SeriesError(f"duplicate timestamp {first.isoformat()}: one value per hour")
    if not index.is_monotonic_increasing:
        raise SeriesError("timestamps are not sorted: sort the series by time")
    off_hour = index[(index != index.floor("h"))]
    if len(off_hour):
        raise SeriesError(
            f"timestamp {off_hour[0].isoformat()} is not on the hour: bucket by hour first"
        )
    values = pd.to_numeric(series, errors="coerce").astype("float64")
    bad = values.isna() & series.notna()
    if bad.any():
        raise SeriesError(f"value at {index[bad.to_numpy()][0].isoformat()} is not a number")
    if kind == "count":
        if values.isna().any():
            raise SeriesError(
                f"count at {index[values.isna().to_numpy()][0].isoformat()} is missing: "
                "a count series has a number for every hour it lists"
            )
        if (values < 0).any():
            raise SeriesError(
                f"count at {index[(values < 0).to_numpy()][0].isoformat()} is negative"
            )
    if not np.isfinite(values.dropna().to_numpy()).all():
        raise SeriesError("the series holds an infinite value")
    full = pd.date_range(index[0], index[-1], freq="h", tz="UTC", name=series.index.name)
    filled = values.reindex(full, fill_value=0.0 if kind == "count" else np.nan)
    filled.name = series.name
    return filled


def validate_counts(
    values: pd.Series, counts: pd.Series, within: pd.Series | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The events behind each hour of a mean, and the variance of their values within the
    hour, as arrays aligned to ``values`` (a series `validate_series` returned).

    Both pass the same checks of their index as a series does; an hour they do not list is
    unknown (NaN), as is an hour of ``values`` without an average. A count must be
    non-negative, and at least one where the hour has an average (an average of no event
    is a contradiction); a variance must be non-negative.
    """
    index = values.index
    n = validate_series(counts, kind="mean").reindex(index).to_numpy()
    if (n < 0).any():
        raise SeriesError(f"count at {index[n < 0][0].isoformat()} is negative")
    has_value = np.isfinite(values.to_numpy())
    empty = has_value & (n < 1)
    if empty.any():
        raise SeriesError(
            f"count at {index[empty][0].isoformat()} is {n[empty][0]:g} but the hour has an "
            "average: an average needs at least one event"
        )
    n = np.where(has_value, n, np.nan)
    if within is None:
        return n, None
    spread = validate_series(within, kind="mean").reindex(index).to_numpy()
    if (spread < 0).any():
        raise SeriesError(f"variance at {index[spread < 0][0].isoformat()} is negative")
    return n, np.where(has_value, spread, np.nan)


def training_remaining(first_hour: pd.Timestamp, now: pd.Timestamp) -> pd.Timedelta:
    """Time until a metric first seen at ``first_hour`` has 7 full days of data (never < 0)."""
    left = _utc(first_hour) + TRAINING - _utc(now)
    return max(left, pd.Timedelta(0))


def _utc(stamp: pd.Timestamp) -> pd.Timestamp:
    """A timestamp as UTC; a naive one is rejected rather than guessed."""
    stamp = pd.Timestamp(stamp)
    if stamp.tzinfo is None:
        raise SeriesError(f"timestamp {stamp} has no time zone: use a UTC timestamp")
    return stamp.tz_convert("UTC")
