"""APScheduler wiring only: which job runs when. The jobs are pipeline functions.

- detection: every hour at minute `detection_grace_minutes` (5), scoring each closed hour
  not yet scored, in order, so hours missed while Lantern was down are caught up once each;
- notifications: every minute, the outbox is flushed;
- message ids: every hour at minute 35 (and at start-up), the digests seen only before
  the dedupe horizon (`dedupe_hours`) go, so the table holds one horizon of ids;
- partitions: every hour at minute 50 (and at start-up), on PostgreSQL, the bucket
  partitions of this week and the next four are made to exist, and hours that landed in
  the default partition get theirs (`lantern/metrics/partitions.py`);
- clean-up: daily at 03:15 UTC (and at start-up), buckets past the retention
  (`retention_days`), old debug rows, OAuth states and sessions go.

Each job takes a database lock first, so with several processes on one PostgreSQL
exactly one of them runs a job at a time; the others skip that tick.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from lantern.config import Settings
from lantern.db.base import utcnow
from lantern.db.locks import job_lock

log = logging.getLogger(__name__)


def worker_name() -> str:
    """Who claims a detection run: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def detection_tick(engine: Engine, settings: Settings, now: datetime | None = None) -> None:
    """Score every closed hour still due, then send what it raised."""
    from lantern.pipeline import run_due_hours

    now = now or utcnow()
    with job_lock(engine, "detection") as held:
        if not held:
            return
        run_due_hours(engine, settings, now=now, worker=worker_name())
    notification_tick(engine, settings, now)


def notification_tick(engine: Engine, settings: Settings, now: datetime | None = None) -> None:
    """Flush the outbox."""
    from lantern.notify.outbox import flush_outbox

    with job_lock(engine, "notifications") as held:
        if held:
            flush_outbox(engine, settings, now=now or utcnow())


def dedupe_tick(engine: Engine, settings: Settings, now: datetime | None = None) -> None:
    """Forget message ids past the dedupe horizon."""
    from lantern.pipeline import forget_message_ids

    with job_lock(engine, "dedupe") as held:
        if held:
            forget_message_ids(engine, settings, now=now or utcnow())


def partitions_tick(engine: Engine, settings: Settings, now: datetime | None = None) -> None:
    """Create the bucket partitions ahead."""
    from lantern.pipeline import prepare_partitions

    with job_lock(engine, "partitions") as held:
        if held:
            prepare_partitions(engine, settings, now=now or utcnow())


def cleanup_tick(engine: Engine, settings: Settings, now: datetime | None = None) -> None:
    """Drop expired rows."""
    from lantern.pipeline import clean_up

    with job_lock(engine, "cleanup") as held:
        if held:
            clean_up(engine, settings, now=now or utcnow())


def _safely(job: str, function: object, engine: Engine, settings: Settings) -> None:
    try:
        function(engine, settings)  # type: ignore[operator]
    except Exception:  # a failing tick is logged; the next tick tries again
        log.exception("scheduled job %s failed", job)


def build_scheduler(settings: Settings, engine: Engine) -> BackgroundScheduler:
    """The scheduler with Lantern's five jobs, not yet started."""
    scheduler = BackgroundScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    grace = int(settings.detection_grace_minutes)
    jobs = (
        ("detection", detection_tick, CronTrigger(minute=grace % 60, timezone="UTC")),
        ("notifications", notification_tick, IntervalTrigger(minutes=1)),
        ("dedupe", dedupe_tick, CronTrigger(minute=35, timezone="UTC")),
        ("partitions", partitions_tick, CronTrigger(minute=50, timezone="UTC")),
        ("cleanup", cleanup_tick, CronTrigger(hour=3, minute=15, timezone="UTC")),
    )
    for name, function, trigger in jobs:
        scheduler.add_job(
            _safely,
            trigger,
            args=(name, function, engine, settings),
            id=name,
            name=name,
            next_run_time=utcnow(),  # catch up at start-up, then on schedule
        )
    return scheduler


def start_scheduler(settings: Settings, engine: Engine) -> BackgroundScheduler:
    """Build and start the scheduler in a background thread."""
    scheduler = build_scheduler(settings, engine)
    scheduler.start()
    return scheduler
