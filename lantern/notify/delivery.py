"""One workspace's turn of the outbox: its due rows, oldest first, each reconciled or sent.

See `notify.outbox` for the guarantee. Every failure is caught here and written down on
the row (and on the connection when a person must act), never raised to the flush.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from lantern.config import Settings
from lantern.db.session import session_scope
from lantern.insights.models import Insight
from lantern.notify.base import (
    Notifier,
    NotifyError,
    PermanentNotifyError,
    RateLimited,
    SentMessage,
    TransientNotifyError,
    UnknownOutcome,
    WorkspaceNotifyError,
)
from lantern.notify.digest import close_digest, digest_message, for_digest, queue_digest
from lantern.notify.message import build_message
from lantern.notify.models import Notification, SlackConnection
from lantern.notify.policy import (
    MAX_ATTEMPTS,
    RECONCILE_MARGIN,
    UNDELIVERED,
    AfterSend,
    FlushResult,
    NotifierFactory,
    backoff,
    quiet_until,
)
from lantern.notify.slack import is_channel_id
from lantern.notify.types import InsightMessage
from lantern.workspaces.models import Workspace

log = logging.getLogger(__name__)

# Rows one workspace sends in one flush at most; the rest go at the next one.
MAX_ROWS_PER_FLUSH = 500


def flush_workspace(
    engine: Engine,
    settings: Settings,
    *,
    workspace_id: int,
    now: datetime,
    notifier_factory: NotifierFactory,
    after_send: AfterSend | None,
) -> FlushResult:
    """Deliver the workspace's due rows until done or until its Slack says stop."""
    result = FlushResult()
    with session_scope(engine) as session:
        connection = session.get(SlackConnection, workspace_id)
        if connection is None:
            return result
        token = connection.bot_token
    notifier = notifier_factory(token, settings)
    channel = _channel_id(engine, notifier, workspace_id, now)
    if channel is None:
        return result
    queue_digest(engine, workspace_id=workspace_id, now=now)
    cursor = 0
    for _ in range(MAX_ROWS_PER_FLUSH):
        with session_scope(engine) as session:
            row_id = session.scalar(
                select(Notification.id)
                .where(
                    Notification.workspace_id == workspace_id,
                    Notification.id > cursor,
                    Notification.status.in_(UNDELIVERED),
                    Notification.next_attempt_at <= now,
                )
                .order_by(Notification.id)
                .limit(1)
            )
        if row_id is None:
            break
        cursor = row_id
        go_on = _deliver(
            engine,
            settings,
            notifier,
            workspace_id=workspace_id,
            row_id=row_id,
            channel=channel,
            now=now,
            after_send=after_send,
            result=result,
        )
        if not go_on:
            break
    return result


def _channel_id(engine: Engine, notifier: Notifier, workspace_id: int, now: datetime) -> str | None:
    """The connection's channel id; a channel stored by name (older versions) is resolved once."""
    with session_scope(engine) as session:
        connection = session.get(SlackConnection, workspace_id)
        assert connection is not None
        channel = connection.channel
    if is_channel_id(channel):
        return channel
    try:
        channel_id, name = notifier.resolve_channel(channel)
    except NotifyError as exc:
        _pause_workspace(engine, workspace_id, str(exc), now + backoff(1), person=True)
        return None
    with session_scope(engine) as session:
        connection = session.get(SlackConnection, workspace_id)
        assert connection is not None
        connection.channel, connection.channel_name = channel_id, name
    return channel_id


def _held(session: Session, row: Notification, now: datetime) -> bool:
    """Whether the workspace's policy holds this row: for the daily digest, or quiet hours."""
    workspace = session.get(Workspace, row.workspace_id)
    if workspace is None:
        return False
    if for_digest(session, workspace, row):
        row.status = "digest"
        row.error = f"in the daily digest at {workspace.digest_hour:02d}:00 {workspace.time_zone}"
        return True
    held = _quiet_until(session, row, now)
    if held is None:
        return False
    local = held.astimezone(ZoneInfo(workspace.time_zone))
    row.next_attempt_at = held
    row.error = f"held for the workspace's quiet hours, until {local:%H:%M} {workspace.time_zone}"
    return True


def _quiet_until(session: Session, row: Notification, now: datetime) -> datetime | None:
    """When a row due in the workspace's quiet hours may go; None if it may go now.

    Everything waits (alerts, their charts and replies, in order) but high-severity
    outages, unless the workspace holds those too.
    """
    workspace = session.get(Workspace, row.workspace_id)
    if workspace is None or workspace.quiet_start is None or workspace.quiet_end is None:
        return None
    if not workspace.quiet_holds_outages:
        insight = session.get(Insight, row.insight_id)
        if insight is not None and insight.kind == "outage" and insight.severity == "high":
            return None
    return quiet_until(
        now,
        time_zone=workspace.time_zone,
        start=workspace.quiet_start,
        end=workspace.quiet_end,
    )


def _alert_of(session: Session, row: Notification) -> Notification | None:
    return session.scalars(
        select(Notification)
        .where(Notification.insight_id == row.insight_id, Notification.purpose == "alert")
        .order_by(Notification.id)
        .limit(1)
    ).first()


def _deliver(
    engine: Engine,
    settings: Settings,
    notifier: Notifier,
    *,
    workspace_id: int,
    row_id: int,
    channel: str,
    now: datetime,
    after_send: AfterSend | None,
    result: FlushResult,
) -> bool:
    """Reconcile or send one row; False when the workspace should wait for a later flush."""
    started = time.perf_counter()
    claimed = False
    try:
        with session_scope(engine) as session:
            row = session.get(Notification, row_id)
            if row is None or row.status not in UNDELIVERED or row.next_attempt_at > now:
                return True
            purpose, insight_id, attempts = row.purpose, row.insight_id, row.attempts
            if row.status == "pending" and _held(session, row, now):
                result.held += 1
                return True
            thread_ts: str | None = None
            target = row.channel if row.status == "sending" and row.channel else channel
            if purpose not in ("alert", "digest"):
                alert = _alert_of(session, row)
                if alert is None or alert.status == "skipped":
                    row.status, row.error = "skipped", "the alert for this insight was not sent"
                    result.skipped += 1
                    return True
                if alert.status == "failed":
                    row.status = "failed"
                    row.error = "the alert for this insight could not be delivered"
                    result.failed += 1
                    return True
                if alert.status != "sent" or not alert.ts:
                    return True  # the alert goes first; this waits for its thread
                thread_ts, target = alert.ts, alert.channel or channel
            uncertain = row.status == "sending"
            since = row.created_at - RECONCILE_MARGIN
            file_id = row.file_id
        if not is_channel_id(target):
            # Older versions recorded the channel by name; Slack's reading methods want its id.
            target = notifier.resolve_channel(target)[0]
        if uncertain:
            found = notifier.find_sent(
                channel=target,
                notification_id=row_id,
                since=since,
                thread_ts=thread_ts,
                chart=purpose == "chart",
            )
            if found is not None:
                # an alert posted with its chart's file id showed the chart itself
                shown = purpose == "alert" and file_id is not None
                _record_sent(engine, row_id, SentMessage(target, found, shown), now)
                result.reconciled += 1
                _log_delivered(
                    row_id, workspace_id, insight_id, purpose, "reconciled", attempts, started
                )
                return True
        with session_scope(engine) as session:
            row = session.get(Notification, row_id)
            assert row is not None
            pictured = purpose == "chart" or (purpose == "alert" and row.file_id is None)
            digest: tuple[str, list[dict[str, Any]]] | None = None
            if purpose == "digest":
                digest = digest_message(session, row, settings)
                if digest is None:
                    row.status, row.error = "skipped", "nothing left for this digest"
                    result.skipped += 1
                    return True
            else:
                message, chart = build_message(session, row, settings, with_chart=pictured)
            row.status, row.sending_since, row.channel = "sending", now, target
            row.attempts += 1
            attempts = row.attempts
        claimed = True
        if digest is not None:
            sent = notifier.post_digest(*digest, channel=target, notification_id=row_id)
        elif purpose == "alert":
            sent = _post_alert(engine, notifier, message, chart, channel=target, row_id=row_id)
        elif purpose == "chart":
            assert chart is not None and thread_ts is not None
            sent = notifier.upload_chart(
                chart,
                channel=target,
                thread_ts=thread_ts,
                notification_id=row_id,
                title=f"{message.metric_name}: last 7 days",
            )
        else:
            assert thread_ts is not None
            sent = notifier.post_reply(
                message, channel=target, thread_ts=thread_ts, notification_id=row_id
            )
        if after_send is not None:
            with session_scope(engine) as session:
                stored = session.get(Notification, row_id)
                assert stored is not None
                after_send(stored)
        _record_sent(engine, row_id, sent, now)
        result.sent += 1
        _log_delivered(row_id, workspace_id, insight_id, purpose, "sent", attempts, started)
        return True
    except RateLimited as exc:
        until = now + timedelta(seconds=exc.retry_after)
        back = "pending" if claimed else None
        _retry_later(engine, row_id, str(exc), now, until=until, status=back, tried=not claimed)
        _pause_workspace(engine, workspace_id, None, until)
        result.retrying += 1
        return False
    except UnknownOutcome as exc:
        _retry_later(engine, row_id, str(exc), now, status="sending")
        result.retrying += 1
        return False
    except WorkspaceNotifyError as exc:
        until = _retry_later(
            engine, row_id, str(exc), now, status="pending" if claimed else None, give_up=False
        )
        _pause_workspace(engine, workspace_id, str(exc), until, person=True)
        result.retrying += 1
        return False
    except PermanentNotifyError as exc:
        _fail(engine, row_id, str(exc))
        result.failed += 1
        return True
    except TransientNotifyError as exc:
        back = "pending" if claimed else None
        _retry_later(engine, row_id, str(exc), now, status=back, tried=not claimed)
        result.retrying += 1
        return False
    except Exception as exc:  # a row that cannot be built or read never stops the others
        log.exception("notification %s could not be delivered", row_id)
        _retry_later(
            engine,
            row_id,
            f"Lantern could not prepare this notification ({exc.__class__.__name__}: {exc}); "
            "will retry",
            now,
            status="sending" if claimed else None,
            tried=not claimed,
        )
        result.retrying += 1
        return True


def _post_alert(
    engine: Engine,
    notifier: Notifier,
    message: InsightMessage,
    chart: bytes | None,
    *,
    channel: str,
    row_id: int,
) -> SentMessage:
    """The alert with its chart in it: the chart is uploaded first (once), then shown.

    If Slack refuses the layout with the image (a file it has not finished processing),
    the alert goes without it, and its chart follows in its thread as before.
    """
    file_id = message.chart_file
    if file_id is None and chart is not None:
        file_id = notifier.upload_image(
            chart, notification_id=row_id, title=f"{message.metric_name}: last 7 days"
        )
        with session_scope(engine) as session:
            row = session.get(Notification, row_id)
            assert row is not None
            row.file_id = file_id
    if file_id is None:
        return notifier.post_alert(message, channel=channel, notification_id=row_id)
    try:
        sent = notifier.post_alert(
            replace(message, chart_file=file_id), channel=channel, notification_id=row_id
        )
    except PermanentNotifyError as exc:
        if exc.code != "invalid_blocks":
            raise
        log.warning("alert %s: Slack refused its chart (%s); sending it without", row_id, exc)
        with session_scope(engine) as session:
            row = session.get(Notification, row_id)
            assert row is not None
            row.file_id = None
        return notifier.post_alert(message, channel=channel, notification_id=row_id)
    return SentMessage(sent.channel, sent.ts, chart_shown=True)


def _log_delivered(
    row_id: int,
    workspace_id: int,
    insight_id: int,
    purpose: str,
    outcome: str,
    attempts: int,
    started: float,
) -> None:
    """One line per notification that reached Slack: ids, purpose, how, and how long it took.

    `outcome` is `sent`, or `reconciled` when an earlier try's message was found in Slack.
    """
    log.info(
        "notification delivered: id=%d workspace=%d insight=%d purpose=%s outcome=%s "
        "attempts=%d ms=%.1f",
        row_id,
        workspace_id,
        insight_id,
        purpose,
        outcome,
        attempts,
        (time.perf_counter() - started) * 1000,
    )


def _record_sent(engine: Engine, row_id: int, sent: SentMessage, now: datetime) -> None:
    """The row is in Slack: record it, clear the workspace's error, queue an alert's chart."""
    with session_scope(engine) as session:
        row = session.get(Notification, row_id)
        assert row is not None
        row.status, row.ts, row.channel, row.sent_at, row.error = (
            "sent",
            sent.ts,
            sent.channel,
            now,
            None,
        )
        connection = session.get(SlackConnection, row.workspace_id)
        if connection is not None:
            connection.error = None
        if row.purpose == "digest":
            close_digest(session, row)
        if row.purpose == "alert" and not sent.chart_shown:
            queued = session.scalar(
                select(Notification.id).where(
                    Notification.insight_id == row.insight_id, Notification.purpose == "chart"
                )
            )
            if queued is None:
                session.add(
                    Notification(
                        workspace_id=row.workspace_id,
                        insight_id=row.insight_id,
                        purpose="chart",
                        sequence=1,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )


def _fail(engine: Engine, row_id: int, error: str) -> None:
    with session_scope(engine) as session:
        row = session.get(Notification, row_id)
        assert row is not None
        row.status, row.error = "failed", error
    log.warning("notification %s failed: %s", row_id, error)


def _retry_later(
    engine: Engine,
    row_id: int,
    error: str,
    now: datetime,
    *,
    until: datetime | None = None,
    status: str | None = None,
    give_up: bool = True,
    tried: bool = False,
) -> datetime:
    """Write the reason, and when to try again; past MAX_ATTEMPTS the row is given up.

    `tried` counts a try that failed before any post (a reconcile, the message's
    preparation), so that its backoff grows too.
    """
    with session_scope(engine) as session:
        row = session.get(Notification, row_id)
        assert row is not None
        row.error = error
        if tried:
            row.attempts += 1
        if status is not None:
            row.status = status
        row.next_attempt_at = until or now + backoff(row.attempts)
        if give_up and row.attempts >= MAX_ATTEMPTS:
            row.status = "failed"
            log.warning("notification %s gave up after %s tries: %s", row_id, row.attempts, error)
        else:
            log.info(
                "notification %s will be retried at %s: %s", row_id, row.next_attempt_at, error
            )
        return row.next_attempt_at


def _pause_workspace(
    engine: Engine, workspace_id: int, error: str | None, until: datetime, *, person: bool = False
) -> None:
    """Nothing more for this workspace before `until`; `error` is shown if a person must act."""
    with session_scope(engine) as session:
        connection = session.get(SlackConnection, workspace_id)
        if connection is None:
            return
        connection.paused_until = until
        if person:
            connection.error = error
    if person:
        log.warning(
            "Slack delivery for workspace %s paused until %s: %s", workspace_id, until, error
        )
