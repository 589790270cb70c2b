"""How the outbox treats a row: which states are still owed, when to try again, when to give up.

Shared by the flush of all workspaces (`notify.outbox`) and one workspace's turn
(`notify.delivery`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import timedelta

from lantern.config import Settings
from lantern.notify.base import Notifier
from lantern.notify.models import Notification

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

    def add(self, other: FlushResult) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


NotifierFactory = Callable[[str, Settings], Notifier]
AfterSend = Callable[[Notification], None]
