"""The notifier seam: what the outbox needs from any way of telling people.

A **channel** (Slack, a webhook) delivers one step about an insight - its alert, an
update, its end, or a message that lists several - by a delivery id that is the same on
every try, and says how it went: it returns where the step landed (sent), or raises one of
the errors below (failed, retry, retry after so many seconds, maybe sent). It can also be
asked whether an earlier try whose outcome is unknown did land (`find`); a channel that
cannot look answers None, and the step is sent again with the same delivery id, which
its receiver uses to act once.

A **lane** is one ordered queue of such steps to one destination (a workspace's Slack
channel, one webhook): it keeps the steps' rows, decides what a row says and whether the
workspace's policy holds it, and what follows a sent one. `notify.driver` drives every
lane the same way: claim, send or reconcile, record, retry with backoff, give up.

The errors say what the outbox may do next:

    NotifyError
    ├── PermanentNotifyError      this message is refused for good: mark it failed
    │   └── WorkspaceNotifyError  the workspace cannot receive anything (token, channel)
    └── TransientNotifyError      not sent; try again later
        ├── RateLimited           not sent; Slack says when to come back
        └── UnknownOutcome        maybe sent (5xx, timeout): look before sending again
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from lantern.notify.types import InsightMessage

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from lantern.notify.models import DeliveryState


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
    """The channel refused the call for now and said how many seconds to wait."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnknownOutcome(TransientNotifyError):
    """The channel may have done it (server error, timeout): reconcile before doing it again."""


@dataclass(frozen=True)
class SentMessage:
    """Where a step landed: for Slack the channel id and the message's ts."""

    channel: str
    ts: str
    chart_shown: bool = False  # an alert that shows its chart itself (no thread chart owed)


StepT = TypeVar("StepT")
StepT_contra = TypeVar("StepT_contra", contravariant=True)
RowT = TypeVar("RowT", bound="DeliveryState")
# Why a due row is not sent now, as the lane decided it (the row says more in its `error`):
# held by the workspace's policy, skipped or failed for good, or waiting for another row.
Settled = Literal["held", "skipped", "failed", "waiting"]


class Channel(Protocol[StepT_contra]):
    """A way of telling people, as the outbox drives it: Slack, a webhook."""

    def deliver(self, step: StepT_contra) -> SentMessage:
        """Send the step once, by its delivery id; raise a NotifyError when it did not land."""
        ...

    def find(self, step: StepT_contra) -> SentMessage | None:
        """Where an earlier try of this step landed; None if it did not, or cannot be told."""
        ...

    def close(self) -> None:
        """Let go of what the channel holds open (a webhook's HTTP client)."""
        ...


class Lane(Protocol[StepT, RowT]):
    """One ordered queue of steps to one destination, and the rows that keep them."""

    name: str  # for logs: "Slack of workspace 3", "webhook 2"
    noun: str  # what its log lines call a row: "notification", "webhook"
    log: logging.Logger  # where its rows' deliveries, retries and failures are logged
    model: type[RowT]  # the table of its rows

    def open(self, now: datetime) -> Channel[StepT] | None:
        """Ready the lane for a flush (fan out, resolve); None when it has nothing to do."""
        ...

    def next_due(self, session: Session, *, after: int, now: datetime) -> int | None:
        """The id of the next row to try after `after`, in the lane's order."""
        ...

    def prepare(self, session: Session, row: RowT, now: datetime) -> StepT | Settled:
        """The step a due row owes, or why it is not sent now (held, skipped: the row says)."""
        ...

    def sent(self, session: Session, row: RowT, where: SentMessage, now: datetime) -> None:
        """Record what follows a sent row (the row's own state is the driver's)."""
        ...

    def pause(self, until: datetime, error: str | None) -> None:
        """Nothing more through this lane before `until`; `error` if a person must act."""
        ...

    def describe(self, row: RowT) -> str:
        """The row's ids for a log line: "workspace=2 insight=9 purpose=alert"."""
        ...


class Notifier(Protocol):
    """Slack's calls, as `notify.slack.SlackNotifier` makes them (the Slack lane's client)."""

    def post_alert(
        self, message: InsightMessage, *, channel: str, notification_id: int
    ) -> SentMessage: ...

    def post_reply(
        self, message: InsightMessage, *, channel: str, thread_ts: str, notification_id: int
    ) -> SentMessage: ...

    def post_incident(
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
