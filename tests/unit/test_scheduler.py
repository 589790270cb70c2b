"""The scheduler runs each job when the documentation says it does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine

from lantern.config import Settings
from lantern.scheduler import build_scheduler

DOCS = Path(__file__).resolve().parents[2] / "docs" / "how-it-works.md"


def fire_times(job: str, start: datetime, count: int) -> list[datetime]:
    scheduler = build_scheduler(Settings(scheduler_enabled=False), create_engine("sqlite://"))
    trigger = scheduler.get_job(job).trigger
    times: list[datetime] = []
    previous = None
    for _ in range(count):
        # after a fire time, the trigger looks from just past it
        previous = trigger.get_next_fire_time(previous, previous or start)
        times.append(previous)
    return times


def test_clean_up_runs_daily_at_03_15_utc_as_how_it_works_says() -> None:
    times = fire_times("cleanup", datetime(2026, 11, 29, 10, 0, tzinfo=UTC), 3)
    assert [t.astimezone(UTC).strftime("%d %H:%M") for t in times] == [
        "30 03:15",
        "01 03:15",
        "02 03:15",
    ]
    assert "daily at 03:15 UTC" in " ".join(DOCS.read_text().split())


def test_the_bucket_partitions_are_checked_every_hour_at_minute_50_as_how_it_works_says() -> None:
    times = fire_times("partitions", datetime(2026, 11, 29, 10, 55, tzinfo=UTC), 3)
    assert [t.astimezone(UTC).strftime("%H:%M") for t in times] == ["11:50", "12:50", "13:50"]
    assert "every hour at minute 50" in " ".join(DOCS.read_text().split())
