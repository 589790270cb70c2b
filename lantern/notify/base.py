"""The notifier seam: what the outbox needs from any way of telling people."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lantern.notify.types import InsightMessage


class NotifyError(Exception):
    """Delivery failed; the message says why in words a person can act on."""


class PermanentNotifyError(NotifyError):
    """Trying again will not help (revoked token, missing channel): mark it failed."""


class TransientNotifyError(NotifyError):
    """Worth trying again later (rate limit, server error, timeout)."""


@dataclass(frozen=True)
class SentMessage:
    """Where a message landed: the channel id and the message's ts."""

    channel: str
    ts: str


class Notifier(Protocol):
    def send_alert(
        self,
        message: InsightMessage,
        chart_png: bytes | None,
        *,
        channel: str,
        notification_id: int,
    ) -> SentMessage: ...

    def send_reply(
        self, message: InsightMessage, *, channel: str, thread_ts: str, notification_id: int
    ) -> SentMessage: ...

    def find_sent(
        self, *, channel: str, notification_id: int, since: datetime, thread_ts: str | None = None
    ) -> str | None: ...

    def send_test(self, channel: str) -> SentMessage: ...
