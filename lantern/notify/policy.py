"""How the outbox treats a row: which states are still owed, when to try again, when to give up.

Shared by the flush of all lanes (`notify.outbox`), their driver (`notify.driver`) and
the Slack lane (`notify.delivery`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from lantern.config import Settings
from lantern.notify.base import Notifier

MAX_ATTEMPTS = 20  # with the backoff below: about fifteen hours of trying
# How far back a reconcile looks before the row was queued (clocks differ).
RECONCILE_MARGIN = timedelta(minutes=5)
UNDELIVERED = ("pending", "sending")


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try: 1, 2, 4 … minutes, at most an hour."""
    return timedelta(minutes=min(60, 2 ** max(0, min(attempts, 7) - 1)))


@dataclass
class FlushResult:
    """What one flush did."""

    sent: int = 0
    failed: int = 0
    retrying: int = 0
    reconciled: int = 0
    skipped: int = 0
    held: int = 0  # waiting for the end of the workspace's quiet hours

    def add(self, other: FlushResult) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


NotifierFactory = Callable[[str, Settings], Notifier]


def quiet_until(
    now: datetime, *, time_zone: str, start: int | None, end: int | None
) -> datetime | None:
    """The end (UTC) of the quiet hours `now` is in, or None when it is not in them.

    Quiet hours run from the local hour `start` to the local hour `end` of `time_zone`,
    across midnight when `start` > `end` (22 to 7); none when either is None.
    """
    if start is None or end is None or start == end:
        return None
    zone = ZoneInfo(time_zone)
    local = now.astimezone(zone)
    hour = local.hour
    inside = start <= hour < end if start < end else hour >= start or hour < end
    if not inside:
        return None
    day = local.date()
    ends = datetime(day.year, day.month, day.day, end, tzinfo=zone)
    if ends <= local:
        day += timedelta(days=1)
        ends = datetime(day.year, day.month, day.day, end, tzinfo=zone)
    return ends.astimezone(now.tzinfo)
