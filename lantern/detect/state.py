"""What detection remembers of a metric between hourly passes, and the events it tells.

A `MetricState` is small, frozen and kept as JSON bytes (`MetricState.to_bytes`) between
passes; `EpisodeEvent` is one step of an episode's life (``opened`` is the alert). Hours
are counted as hour numbers, hours since the epoch (`hour_number`, `hour_stamp`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import pandas as pd

from lantern.detect.detectors import SENSITIVITY
from lantern.detect.model import Baseline
from lantern.detect.series import SeriesKind
from lantern.detect.verdicts import Detection

Status = Literal["opened", "updated", "resolved", "accepted"]
Sensitivity = Literal["low", "medium", "high"]
# settings from the most sensitive up: an episode found at one is told at those it clears
LEVELS: tuple[Sensitivity, ...] = ("high", "medium", "low")
_NS_PER_HOUR = 3_600_000_000_000


@dataclass(frozen=True)
class EpisodeEvent:
    """A step in an episode's life: ``opened`` is the alert; the others follow it."""

    status: Status
    at: pd.Timestamp  # start of the hour whose data caused the event
    detection: Detection


@dataclass(frozen=True)
class MetricState:
    """Everything detection remembers about one metric between hourly passes."""

    first_hour: int  # hours since the epoch of the metric's first data
    kind: SeriesKind = "count"
    sensitivity: Sensitivity = "medium"
    stagger: int = 0  # hour of day (UTC) of the daily refit
    last_hour: int | None = None  # the last hour judged
    model: Baseline | None = None
    anchor: int | None = None  # first hour of the current normal
    reshaped: bool = False  # whether the cycle is relearned from the anchor on
    prior_slope: float | None = None
    # whether a trend change has been accepted: from then on, a week into each new normal,
    # the hours before it are stood in for along the model's slope (`hours.stand_in`)
    trending: bool = False
    refit_due: bool = False
    quiet_until: int = 0  # before this hour only outages are reported (kept for old states)
    settled_until: int = 0  # before this hour no lasting change is reported
    masks: tuple[tuple[int, int], ...] = ()  # episodes' hours, kept out of fits and windows
    # the last short episode: (direction, its last abnormal hour, its size); see `_repeat`
    last_short: tuple[str, int, float] | None = None
    outages: tuple[tuple[int, int], ...] = ()  # past outages' hours (`Evidence.calm`)
    # the team's feedback: (kind, settings) by which the bar to tell that kind is raised
    # from the metric's own setting towards `low` (`feedback_bar`)
    raised: tuple[tuple[str, int], ...] = ()
    episode: dict[str, Any] | None = field(default=None)
    # set by the service for a pass while the metric's episode belongs to a source-wide
    # incident (most of its source down together): a lasting change is not adopted as the
    # new normal while it is set, so a day the whole source is low teaches no new level
    holding: bool = False
    # the normal before the last adopted lasting change, while a return to it would still
    # be that change's end (`Run._back_to_former`): its model (`Baseline.to_dict`), anchor,
    # cycle, slope and trend flags, the accepted episode and the hour it stops counting
    former: dict[str, Any] | None = None

    def to_bytes(self) -> bytes:
        """JSON bytes, for the service to keep between passes.

        The model is left out of `asdict`'s walk, which would copy its every value only to
        be replaced by `Baseline.to_dict` (half the hourly pass's own time went there), and
        so is the former normal (plain JSON already), which is written only when there is
        one: a state without it reads as it did before the field existed.
        """
        data = asdict(replace(self, model=None, former=None))
        data["model"] = self.model.to_dict() if self.model else None
        del data["former"]
        if self.former is not None:
            data["former"] = self.former
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> MetricState:
        """Inverse of `to_bytes`."""
        data = json.loads(raw)
        data["model"] = Baseline.from_dict(data["model"]) if data["model"] else None
        data["masks"] = tuple(tuple(m) for m in data["masks"])
        data["outages"] = tuple(tuple(m) for m in data.get("outages", ()))
        data["raised"] = tuple(tuple(one) for one in data.get("raised", ()))
        if data.get("last_short") is not None:
            data["last_short"] = tuple(data["last_short"])
        return cls(**data)


def hour_number(stamp: pd.Timestamp) -> int:
    """Hours since the epoch of a UTC timestamp."""
    return int(pd.Timestamp(stamp).value // _NS_PER_HOUR)


def hour_stamp(number: int) -> pd.Timestamp:
    """The UTC timestamp of an hour number."""
    return pd.Timestamp(number * _NS_PER_HOUR, tz="UTC")


def new_state(
    first_hour: pd.Timestamp,
    *,
    kind: SeriesKind = "count",
    sensitivity: Sensitivity = "medium",
    stagger: int = 0,
) -> MetricState:
    """A fresh state for a metric first seen at ``first_hour``."""
    if sensitivity not in SENSITIVITY:
        raise ValueError(f"sensitivity must be one of {sorted(SENSITIVITY)}, not {sensitivity!r}")
    return MetricState(
        first_hour=hour_number(first_hour), kind=kind, sensitivity=sensitivity, stagger=stagger % 24
    )


def feedback_bar(
    not_useful: Mapping[str, int], useful: Mapping[str, int]
) -> tuple[tuple[str, int], ...]:
    """The raise of each kind's bar from a team's feedback on its alerts: one setting for
    each "not useful" more than "useful" (`MetricState.raised`; `Run._level_of` keeps it
    within the presets, so a metric at `medium` is raised to `low` at most)."""
    kinds = sorted(set(not_useful) | set(useful))
    net = ((kind, not_useful.get(kind, 0) - useful.get(kind, 0)) for kind in kinds)
    return tuple((kind, count) for kind, count in net if count > 0)
