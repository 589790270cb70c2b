"""The summary of the quiet hours: the alerts they held, told in one message when they end.

A workspace whose `quiet_hours_delivery` is `summary` (Settings, `PUT /api/v1/settings`)
does not get each alert held in its quiet hours on its own: the alert's outbox row waits
as `summary` until they end (`notify.delivery`). At the first flush after their end, one
`summary` row is queued for the workspace (its `sequence` is the id of the first row it
tells, so every process queues the same one); it lists each held insight with its change
and a link, grouped by source, as the daily digest does, and goes through the outbox like
an alert, exactly once (reconciled by its metadata).

Once it is in Slack, each alert it told is recorded as sent *at the summary's ts*: the
summary's thread is the thread of each of those insights, so their later updates and ends
reply there (each reply names its metric), in order. No chart follows in that thread: the
link opens the insight's page, with its chart. High-severity outages are never held (unless
the workspace holds them too), so they never wait for a summary.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from lantern.config import Settings
from lantern.db.session import session_scope
from lantern.notify.blocks import summary_blocks
from lantern.notify.digest import by_source, queue_roundup
from lantern.notify.models import Notification
from lantern.notify.policy import UNDELIVERED, quiet_until
from lantern.workspaces.models import Workspace

HOLD_STATUS = "summary"


def queue_summary(engine: Engine, *, workspace_id: int, now: datetime) -> None:
    """Once the quiet hours are over, queue their summary if alerts wait for one."""
    with session_scope(engine) as session:
        workspace = session.get(Workspace, workspace_id)
        if workspace is None:
            return
        if quiet_until(
            now, time_zone=workspace.time_zone, start=workspace.quiet_start, end=workspace.quiet_end
        ):
            return  # still (or again) quiet
        first = session.scalars(
            select(Notification)
            .where(
                Notification.workspace_id == workspace_id,
                Notification.status == HOLD_STATUS,
                Notification.next_attempt_at <= now,
            )
            .order_by(Notification.id)
            .limit(1)
        ).first()
        if first is None:
            return
        waiting = session.scalar(
            select(Notification.id).where(
                Notification.workspace_id == workspace_id,
                Notification.purpose == "summary",
                Notification.status.in_(UNDELIVERED),
            )
        )
        if waiting is not None:
            return  # one summary at a time: it tells every alert held when it was queued
        queue_roundup(session, first, purpose="summary", sequence=first.id, now=now)


def _told(session: Session, summary: Notification) -> list[Notification]:
    """The alerts the summary tells: held until the quiet hours' end, before it was queued."""
    return list(
        session.scalars(
            select(Notification)
            .where(
                Notification.workspace_id == summary.workspace_id,
                Notification.status == HOLD_STATUS,
                Notification.next_attempt_at <= summary.created_at,
            )
            .order_by(Notification.id)
        ).all()
    )


def summary_message(
    session: Session, summary: Notification, settings: Settings
) -> tuple[str, list[dict[str, Any]]] | None:
    """The summary's text and blocks: each held insight's change and link, by source."""
    listing = by_source(session, _told(session, summary), settings)
    if not listing:
        return None
    workspace = session.get(Workspace, summary.workspace_id)
    if workspace is None:
        return None
    return summary_blocks(
        listing,
        start=workspace.quiet_start,
        end=workspace.quiet_end,
        time_zone=workspace.time_zone,
    )


def close_summary(session: Session, summary: Notification, now: datetime) -> None:
    """The summary is in Slack: each alert it told is sent, its thread the summary's."""
    for row in _told(session, summary):
        row.status, row.ts, row.channel, row.sent_at, row.error = (
            "sent",
            summary.ts,
            summary.channel,
            now,
            None,
        )
