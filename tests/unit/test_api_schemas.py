"""The API's enumerations are the ones the rest of Lantern uses."""

from __future__ import annotations

from typing import get_args

from lantern.api.schemas import DetectorKind, Sensitivity
from lantern.dashboard.feed import INSIGHT_STATUSES, InsightStatus
from lantern.dashboard.status import STATUSES, Status
from lantern.detect import KINDS, SENSITIVITY


def test_the_api_accepts_exactly_the_detector_kinds_sensitivities_and_statuses_there_are() -> None:
    assert set(get_args(DetectorKind)) == set(KINDS)
    assert set(get_args(Sensitivity)) == set(SENSITIVITY)
    assert get_args(InsightStatus) == INSIGHT_STATUSES
    assert get_args(Status) == STATUSES
