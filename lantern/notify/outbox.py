"""The outbox: each notification reaches Slack once, and a crash never sends it twice.

The guarantee. A notification is claimed (`sending`, committed) before the Slack call
and recorded (`sent`, with the message ts) after it. Every alert carries the
notification's id in its Slack message metadata. If the process dies between the call
and the record, the next flush finds the row still `sending` and, before anything is
sent again, looks for a message with that id in the channel's recent history: found,
the row is recorded as sent; not found, it is sent. So a message is posted at most
once unless Slack loses track of one it accepted, and at least once unless Slack
refuses it for good (revoked token, missing channel), which marks the row `failed` with
the reason for the dashboard. Transient failures (429 after its Retry-After retries,
5xx, timeouts) back off and try again, up to MAX_ATTEMPTS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from lantern.config import Settings
from lantern.db.session import session_scope
from lantern.notify.message import build_message
from lantern.notify.models import Notification, SlackConnection

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
RECONCILE_MARGIN = timedelta(minutes=5)


@dataclass
class FlushResult:
    """What one flush did."""

    sent: int = 0
    failed: int = 0
    retrying: int = 0
    reconciled: int = 0
    skipped: int = 0


NotifierFactory = Callable[[str, Settings], object]


def _notifier(token: str, settings: Settings) -> object:
    from lantern.notify.slack import SlackNotifier

    return SlackNotifier(token, base_url=settings.slack_base_url)


def _backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(60, 2 ** max(0, attempts - 1)))


def _reconcile(
    engine: Engine, settings: Settings, factory: NotifierFactory, result: FlushResult
) -> None:
    """Rows left `sending` by a crash: recorded if Slack has the message, else sent again."""
    with session_scope(engine) as session:
        stuck = session.scalars(select(Notification).where(Notification.status == "sending")).all()
        for row in stuck:
            connection = session.get(SlackConnection, row.workspace_id)
            found = None
            if connection is not None and row.channel:
                notifier = factory(connection.bot_token, settings)
                since = (row.sending_since or row.created_at) - RECONCILE_MARGIN
                found = notifier.find_sent(  # type: ignore[attr-defined]
                    channel=row.channel, notification_id=row.id, since=since
                )
            if found is not None:
                row.status, row.ts, row.sent_at = "sent", found, row.sending_since
                result.reconciled += 1
            else:
                row.status = "pending"


def _thread_of(session: Session, row: Notification) -> tuple[str | None, str | None]:
    """(ts of the insight's alert, its status) for replies."""
    alert = session.scalars(
        select(Notification)
        .where(Notification.insight_id == row.insight_id, Notification.purpose == "alert")
        .order_by(Notification.id)
        .limit(1)
    ).first()
    if alert is None:
        return None, None
    return alert.ts, alert.status


def flush_outbox(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    notifier_factory: NotifierFactory = _notifier,
    after_send: Callable[[Notification], None] | None = None,
) -> FlushResult:
    """Send every due notification, oldest first; `after_send` is a test hook for crashes."""
    from lantern.notify.base import PermanentNotifyError, TransientNotifyError

    result = FlushResult()
    _reconcile(engine, settings, notifier_factory, result)
    with session_scope(engine) as session:
        due = session.scalars(
            select(Notification.id)
            .where(Notification.status == "pending", Notification.next_attempt_at <= now)
            .order_by(Notification.id)
        ).all()
    for notification_id in due:
        with session_scope(engine) as session:
            row = session.get(Notification, notification_id)
            if row is None or row.status != "pending":
                continue
            connection = session.get(SlackConnection, row.workspace_id)
            if connection is None or not connection.channel:
                row.status, row.error = "skipped", "Slack is not connected for this workspace"
                result.skipped += 1
                continue
            thread_ts = None
            if row.purpose != "alert":
                thread_ts, alert_status = _thread_of(session, row)
                if alert_status in ("pending", "sending"):
                    continue  # the alert goes first; the reply waits for its thread
                if thread_ts is None:
                    row.status, row.error = "skipped", "the alert for this insight was not sent"
                    result.skipped += 1
                    continue
            message, chart = build_message(
                session, row, settings, with_chart=row.purpose == "alert"
            )
            token, channel = connection.bot_token, connection.channel
            row.status, row.sending_since, row.channel = "sending", now, channel
            row.attempts += 1
        notifier = notifier_factory(token, settings)
        try:
            if thread_ts is None:
                sent = notifier.send_alert(  # type: ignore[attr-defined]
                    message, chart, channel=channel, notification_id=notification_id
                )
            else:
                sent = notifier.send_reply(  # type: ignore[attr-defined]
                    message, channel=channel, thread_ts=thread_ts, notification_id=notification_id
                )
        except PermanentNotifyError as exc:
            _finish(engine, notification_id, status="failed", error=str(exc), connection_error=True)
            result.failed += 1
            continue
        except TransientNotifyError as exc:
            _retry_later(engine, notification_id, error=str(exc), now=now)
            result.retrying += 1
            continue
        if after_send is not None:
            with session_scope(engine) as session:
                stored = session.get(Notification, notification_id)
                assert stored is not None
                after_send(stored)
        _finish(engine, notification_id, status="sent", ts=sent.ts, sent_at=now)
        result.sent += 1
    return result


def _finish(
    engine: Engine,
    notification_id: int,
    *,
    status: str,
    error: str | None = None,
    ts: str | None = None,
    sent_at: datetime | None = None,
    connection_error: bool = False,
) -> None:
    with session_scope(engine) as session:
        row = session.get(Notification, notification_id)
        assert row is not None
        row.status, row.error, row.ts, row.sent_at = status, error, ts, sent_at
        if connection_error:
            connection = session.get(SlackConnection, row.workspace_id)
            if connection is not None:
                connection.error = error
        if status == "failed":
            log.warning("notification %s failed: %s", notification_id, error)


def _retry_later(engine: Engine, notification_id: int, *, error: str, now: datetime) -> None:
    with session_scope(engine) as session:
        row = session.get(Notification, notification_id)
        assert row is not None
        row.error = error
        if row.attempts >= MAX_ATTEMPTS:
            row.status = "failed"
            log.warning(
                "notification %s gave up after %s attempts: %s",
                notification_id,
                row.attempts,
                error,
            )
        else:
            row.status = "pending"
            row.next_attempt_at = now + _backoff(row.attempts)
