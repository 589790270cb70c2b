"""LANTERN_RETENTION_DAYS: whole days, long enough for the hourly pass, said plainly when wrong."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lantern.config import Settings


def test_buckets_are_kept_400_days_unless_told_otherwise() -> None:
    assert Settings().retention_days == 400


def test_a_retention_is_read_from_the_environment_as_whole_days(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LANTERN_RETENTION_DAYS", " 90 ")
    assert Settings().retention_days == 90


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("a year", "whole number of days"),
        ("12.5", "whole number of days"),
        ("", "whole number of days"),
        ("true", "whole number of days"),
        ("10", "from 30 days"),
        ("0", "from 30 days"),
        ("-400", "from 30 days"),
        ("100000", "to 36500"),
    ],
)
def test_a_retention_that_is_not_whole_days_or_too_short_or_too_long_is_refused(
    monkeypatch: pytest.MonkeyPatch, given: str, says: str
) -> None:
    monkeypatch.setenv("LANTERN_RETENTION_DAYS", given)
    with pytest.raises(ValidationError, match=says):
        Settings()


def test_a_shorter_retention_shortens_the_default_import_horizon_with_it() -> None:
    settings = Settings(retention_days=90)
    assert settings.import_horizon_days == 90
    assert Settings(retention_days=500).import_horizon_days == 400


def test_an_import_horizon_longer_than_the_retention_is_refused_with_both_named() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(retention_days=90, import_horizon_days=200)
    message = str(raised.value)
    assert "LANTERN_IMPORT_HORIZON_DAYS (200)" in message
    assert "LANTERN_RETENTION_DAYS (90)" in message
