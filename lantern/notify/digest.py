"""The daily digest: a workspace's low-severity alerts told once a day, in one message.

With a digest hour set (Settings, `PUT /api/v1/settings`), the alert of a low-severity
insight is not posted: its outbox row waits as `digest` (its replies, which would have
gone to its thread, are then skipped). From the digest hour on (local time), the first
flush of the day queues one `digest` row for the workspace (its `sequence` is the local
day, so a day has one digest, whatever the number of processes), which goes through the
outbox like an alert, exactly once (reconciled by its metadata). It lists each held
insight with its change and a link, grouped by source; once it is in Slack, those rows
are closed as `skipped`, "told in the daily digest".
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from lantern.config import Settings
from lantern.db.dialect import insert_for
from lantern.db.session import session_scope
from lantern.insights.models import Insight
from lantern.metrics.keys import display_name
from lantern.metrics.models import Metric
from lantern.notify.blocks import digest_blocks
from lantern.notify.models import Notification
from lantern.workspaces.models import Source, Workspace

TOLD = "told in the daily digest"


def for_digest(session: Session, workspace: Workspace, row: Notification) -> bool:
    """Whether this alert waits for the digest: a low-severity insight, a digest hour set."""
    if workspace.digest_hour is None or row.purpose != "alert":
        return False
    insight = session.get(Insight, row.insight_id)
    return insight is not None and insight.severity == "low"


def queue_digest(engine: Engine, *, workspace_id: int, now: datetime) -> None:
    """From the digest hour on, queue today's digest if alerts wait for one and none is queued."""
    with session_scope(engine) as session:
        workspace = session.get(Workspace, workspace_id)
        if workspace is None or workspace.digest_hour is None:
            return
        local = now.astimezone(ZoneInfo(workspace.time_zone))
        if local.hour < workspace.digest_hour:
            return
        first = session.scalars(
            select(Notification)
            .where(Notification.workspace_id == workspace_id, Notification.status == "digest")
            .order_by(Notification.id)
            .limit(1)
        ).first()
        if first is None:
            return
        # one digest a local day: the unique (insight, purpose, sequence) of its first row
        # would let a second through for another first row, so look for the day's first
        day = local.date().toordinal()
        done = session.scalar(
            select(Notification.id).where(
                Notification.workspace_id == workspace_id,
                Notification.purpose == "digest",
                Notification.sequence == day,
            )
        )
        if done is not None:
            return
        queue_roundup(session, first, purpose="digest", sequence=day, now=now)


def queue_roundup(
    session: Session, first: Notification, *, purpose: str, sequence: int, now: datetime
) -> None:
    """Queue one message telling held alerts (the digest, the summary of the quiet hours),
    keyed on its first held row's insight and ``sequence``: every process queues the same
    row, and a second is a conflict that does nothing."""
    session.execute(
        insert_for(session.connection(), Notification)
        .values(
            workspace_id=first.workspace_id,
            insight_id=first.insight_id,
            purpose=purpose,
            sequence=sequence,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing()
    )


def _held(session: Session, digest: Notification) -> list[Notification]:
    return list(
        session.scalars(
            select(Notification)
            .where(
                Notification.workspace_id == digest.workspace_id,
                Notification.status == "digest",
                Notification.id < digest.id,
            )
            .order_by(Notification.id)
        ).all()
    )


Listing = dict[str, list[tuple[str, float, str, str, str]]]


def by_source(session: Session, rows: list[Notification], settings: Settings) -> Listing:
    """Each row's insight as a listing tells it (metric, change, kind, direction, link), by source.

    Sources are in name order, insights in the order of their rows; shared by the daily
    digest and the summary of the quiet hours (`notify.summary`).
    """
    base = settings.resolved_public_url.rstrip("/")
    items = {
        insight.id: (insight, kind, name, source)
        for insight, kind, name, source in session.execute(
            select(Insight, Metric.kind, Metric.name, Source.name)
            .join(Metric, Metric.id == Insight.metric_id)
            .join(Source, Source.id == Metric.source_id)
            .where(Insight.id.in_({row.insight_id for row in rows}))
        )
    }
    found: Listing = defaultdict(list)
    for row in rows:
        item = items.get(row.insight_id)
        if item is None:
            continue
        insight, kind, name, source = item
        found[source].append(
            (
                display_name(kind, name),
                insight.relative_change,
                insight.kind,
                insight.direction,
                f"{base}/insights/{insight.id}",
            )
        )
    return dict(sorted(found.items()))


def digest_message(
    session: Session, digest: Notification, settings: Settings
) -> tuple[str, list[dict[str, Any]]] | None:
    """The digest's text and blocks: each held insight's change and link, by source."""
    listing = by_source(session, _held(session, digest), settings)
    if not listing:
        return None
    workspace = session.get(Workspace, digest.workspace_id)
    zone = workspace.time_zone if workspace is not None else "UTC"
    day = datetime.fromordinal(digest.sequence).date()
    return digest_blocks(listing, day=day, time_zone=zone)


def close_digest(session: Session, digest: Notification) -> None:
    """The digest is in Slack: the alerts it told are done."""
    for row in _held(session, digest):
        row.status, row.error = "skipped", TOLD
