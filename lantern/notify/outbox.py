"""The outbox: each notification reaches Slack exactly once, per workspace, under every fault.

A row is one step owed to Slack: an alert (its chart uploaded just before and shown in
it; shared into its thread instead, as a `chart` row, only if Slack refused the image),
an update or a resolution (replies in that thread), or a workspace's daily `digest`
(`notify.digest`). The workspace's policy may hold a row: for its quiet hours
(`next_attempt_at` moves to their end) or, a low-severity alert, for the digest. The same
rows are fanned out to the workspace's webhooks (`notify.webhooks`), each with its own
delivery, retried with the same backoff.

Exactly once. A row is claimed (`sending`, committed) before the Slack call and recorded
(`sent`, with the ts) after it. Every message carries the row's id in its metadata, and
every chart the row's id in its file name. When the outcome is unknown - Slack answered
5xx or did not answer in time, or the process died between the call and the record - the
row stays `sending`, and before anything is sent again the channel is read
(`conversations.history` for alerts, `conversations.replies` of the alert's thread for
replies and charts): found, the row is recorded as sent; not found, it is sent. Nothing
is ever sent blindly twice; slack-sdk's own retries are off (see `notify.slack`).

Per workspace. Each workspace is flushed on its own thread, and every failure stays with
its row or its workspace: a reconcile that fails, a revoked token, a missing channel, a
rate limit (`Retry-After` becomes the workspace's `paused_until`, nobody sleeps), a
timeout. The row keeps the reason in `error` and a `next_attempt_at` with backoff; the
workspace's connection keeps what needs a person in `error`; Settings and
`GET /api/v1/slack` show both while they last (`connection.connection_status`). A row
is given up (`failed`) only when Slack refuses that message itself, or after
MAX_ATTEMPTS; reconnecting Slack puts a workspace's recent failed rows back in line.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy import Engine, exists, or_, select, update
from sqlalchemy.orm import Session

from lantern.config import Settings
from lantern.db.session import session_scope
from lantern.notify.base import Notifier
from lantern.notify.delivery import flush_workspace
from lantern.notify.models import Notification, SlackConnection
from lantern.notify.policy import UNDELIVERED, AfterSend, FlushResult, NotifierFactory

log = logging.getLogger(__name__)

# Rows of a workspace without Slack wait this long for it to be connected.
HOLD = timedelta(days=7)
# Workspaces flushed at once; each has its own thread, so one slow Slack delays no other.
WORKSPACE_THREADS = 8
NOT_CONNECTED = "Slack is not connected for this workspace: waiting for it to be connected"


def _notifier(token: str, settings: Settings) -> Notifier:
    from lantern.notify.slack import SlackNotifier

    return SlackNotifier(token, base_url=settings.slack_base_url)


def _hold_unconnected(engine: Engine, now: datetime) -> int:
    """Rows of workspaces without Slack wait, saying so; past HOLD they are dropped."""
    connected = exists().where(SlackConnection.workspace_id == Notification.workspace_id)
    with session_scope(engine) as session:
        session.execute(
            update(Notification)
            .where(
                Notification.status.in_(UNDELIVERED),
                ~connected,
                Notification.error.is_(None),
            )
            .values(error=NOT_CONNECTED)
        )
        dropped = session.execute(
            update(Notification)
            .where(
                Notification.status.in_(UNDELIVERED),
                ~connected,
                Notification.created_at < now - HOLD,
            )
            .values(status="skipped", error="not sent: Slack was not connected within a week")
        )
    return int(dropped.rowcount or 0)  # type: ignore[attr-defined]


def _due_workspaces(engine: Engine, now: datetime) -> list[int]:
    awake = or_(SlackConnection.paused_until.is_(None), SlackConnection.paused_until <= now)
    with session_scope(engine) as session:
        return list(
            session.scalars(
                select(Notification.workspace_id)
                .join(SlackConnection, SlackConnection.workspace_id == Notification.workspace_id)
                .where(
                    or_(
                        Notification.status.in_(UNDELIVERED)
                        & (Notification.next_attempt_at <= now),
                        Notification.status == "digest",  # its digest may be due
                    ),
                    awake,
                )
                .distinct()
                .order_by(Notification.workspace_id)
            ).all()
        )


def flush_outbox(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    notifier_factory: NotifierFactory = _notifier,
    after_send: AfterSend | None = None,
) -> FlushResult:
    """Deliver every due row, each workspace on its own; `after_send` is a test hook for crashes."""
    result = FlushResult(skipped=_hold_unconnected(engine, now))
    workspaces = _due_workspaces(engine, now)

    def one(workspace_id: int) -> FlushResult:
        try:
            return flush_workspace(
                engine,
                settings,
                workspace_id=workspace_id,
                now=now,
                notifier_factory=notifier_factory,
                after_send=after_send,
            )
        except Exception:  # never lets one workspace stop the others
            log.exception("flushing the outbox of workspace %s failed", workspace_id)
            return FlushResult()

    if len(workspaces) <= 1:
        outcomes = [one(w) for w in workspaces]
    else:
        with ThreadPoolExecutor(
            max_workers=min(WORKSPACE_THREADS, len(workspaces)), thread_name_prefix="outbox"
        ) as pool:
            outcomes = list(pool.map(one, workspaces))
    for outcome in outcomes:
        result.add(outcome)
    from lantern.notify.webhooks import flush_webhooks

    result.add(flush_webhooks(engine, settings, now=now))  # the other channel, same rows
    return result


def requeue_after_reconnect(session: Session, *, workspace_id: int, now: datetime) -> int:
    """Put a workspace's undelivered and recently failed rows back in line, due now.

    A row that ever reached Slack's door goes back as `sending`, so it is reconciled
    before it can be posted again.
    """
    session.execute(
        update(SlackConnection)
        .where(SlackConnection.workspace_id == workspace_id)
        .values(paused_until=None, error=None)
    )
    rows = session.scalars(
        select(Notification).where(
            Notification.workspace_id == workspace_id,
            or_(
                Notification.status.in_(UNDELIVERED),
                (Notification.status == "failed") & (Notification.created_at >= now - HOLD),
            ),
        )
    ).all()
    for row in rows:
        if row.status == "failed":
            row.status = "sending" if row.attempts else "pending"
        row.attempts = 0  # a fresh start: the backoff begins again at a minute
        if row.error == NOT_CONNECTED:
            row.error = None
        row.next_attempt_at = now
    session.flush()
    return len(rows)
