"""The notifier seam: what the outbox needs from any way of telling people.

The errors say what the outbox may do next:

    NotifyError
    ├── PermanentNotifyError      this message is refused for good: mark it failed
    │   └── WorkspaceNotifyError  the workspace cannot receive anything (token, channel)
    └── TransientNotifyError      not sent; try again later
        ├── RateLimited           not sent; Slack says when to come back
        └── UnknownOutcome        maybe sent (5xx, timeout): look before sending again
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from lantern.notify.types import InsightMessage


class NotifyError(Exception):
    """Delivery failed; the message says why in words a person can act on."""

    def __init__(self, message: str, code: str | None = None, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code  # Slack's error code, when Slack gave one
        # what went wrong, without what the outbox will do about it ("will retry")
        self.reason = reason or message


class PermanentNotifyError(NotifyError):
    """Trying this message again will not help (too long, refused layout): mark it failed."""


class WorkspaceNotifyError(PermanentNotifyError):
    """Nothing can reach this workspace until someone acts (revoked token, missing channel)."""


class TransientNotifyError(NotifyError):
    """Not sent, and worth trying again later."""


class RateLimited(TransientNotifyError):
    """Slack refused the call for now and said how many seconds to wait."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnknownOutcome(TransientNotifyError):
    """Slack may have done it (server error, timeout): reconcile before doing it again."""


@dataclass(frozen=True)
class SentMessage:
    """Where a message landed: the channel id and the message's ts."""

    channel: str
    ts: str
    chart_shown: bool = False  # an alert that shows its chart itself (no thread chart owed)


class Notifier(Protocol):
    def post_alert(
        self, message: InsightMessage, *, channel: str, notification_id: int
    ) -> SentMessage: ...

    def post_reply(
        self, message: InsightMessage, *, channel: str, thread_ts: str, notification_id: int
    ) -> SentMessage: ...

    def post_digest(
        self, text: str, blocks: list[dict[str, Any]], *, channel: str, notification_id: int
    ) -> SentMessage: ...

    def upload_chart(
        self, png: bytes, *, channel: str, thread_ts: str, notification_id: int, title: str
    ) -> SentMessage: ...

    def upload_image(self, png: bytes, *, notification_id: int, title: str) -> str: ...

    def update_alert(
        self, message: InsightMessage, *, channel: str, ts: str, notification_id: int
    ) -> None: ...

    def find_sent(
        self,
        *,
        channel: str,
        notification_id: int,
        since: datetime,
        thread_ts: str | None = None,
        chart: bool = False,
    ) -> str | None: ...

    def resolve_channel(self, channel: str) -> tuple[str, str]: ...

    def send_test(self, channel: str) -> SentMessage: ...
