"""Sources as the dashboard lists them: metrics, training countdown and recent traffic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lantern.dashboard.status import metric_status, training_ends
from lantern.errors import NotFound
from lantern.ingest.models import DebugEvent, DebugMinute
from lantern.metrics.keys import MetricKind
from lantern.metrics.models import Bucket, Metric
from lantern.metrics.service import epoch_hour, hour_index
from lantern.workspaces.models import Source


@dataclass(frozen=True, slots=True)
class SourceOverview:
    """A source with its metric counts, when its training ends, and its recent events."""

    id: int
    name: str
    key_hint: str
    created_at: datetime
    rotated_at: datetime | None
    metrics: int
    trained_metrics: int
    training_ends_at: datetime | None
    training_left_seconds: int | None
    events_last_hour: int  # received in the last 60 minutes, history sent to /v1/import too
    events_this_hour: int  # dated in the current UTC hour: the source's live traffic
    earlier_events_last_hour: int  # received in the last 60 minutes, dated before that
    last_event_at: datetime | None


def source_overviews(
    session: Session, *, workspace_id: int, now: datetime, source_id: int | None = None
) -> list[SourceOverview]:
    """A workspace's sources by name (or the one `source_id`), each with its overview."""
    query = select(Source).where(Source.workspace_id == workspace_id).order_by(Source.name)
    if source_id is not None:
        query = query.where(Source.id == source_id)
    sources = session.scalars(query).all()
    ids = [source.id for source in sources]
    if not ids:
        return []
    firsts: dict[int, list[datetime | None]] = {i: [] for i in ids}
    for sid, first in session.execute(
        select(Metric.source_id, Metric.first_hour).where(Metric.source_id.in_(ids))
    ):
        firsts[sid].append(hour_index(first).to_pydatetime() if first is not None else None)
    minute = int(now.timestamp() // 60)
    recent: dict[int, int] = {
        sid: count
        for sid, count in session.execute(
            select(DebugMinute.source_id, func.sum(DebugMinute.accepted))
            .where(DebugMinute.source_id.in_(ids), DebugMinute.minute > minute - 60)
            .group_by(DebugMinute.source_id)
        )
    }
    # the per-call-type totals count every event once, by the event's own time: what was
    # received in the last 60 minutes beyond this hour's and the last hour's events was
    # dated earlier (history sent to /v1/import, or late events)
    hour = epoch_hour(now)
    dated: dict[tuple[int, int], int] = {
        (sid, h): int(count or 0)
        for sid, h, count in session.execute(
            select(Metric.source_id, Bucket.hour, func.sum(Bucket.count))
            .join(Bucket, Bucket.metric_id == Metric.id)
            .where(
                Metric.source_id.in_(ids),
                Metric.kind == MetricKind.TOTAL,
                Bucket.hour >= hour - 1,
                Bucket.hour <= hour,
            )
            .group_by(Metric.source_id, Bucket.hour)
        )
    }
    last_seen: dict[int, datetime] = {
        sid: at
        for sid, at in session.execute(
            select(DebugEvent.source_id, func.max(DebugEvent.received_at))
            .where(DebugEvent.source_id.in_(ids), DebugEvent.accepted.is_(True))
            .group_by(DebugEvent.source_id)
        )
    }
    out = []
    for source in sources:
        known = [f for f in firsts[source.id] if f is not None]
        trained = sum(
            1
            for f in known
            if metric_status(first_hour=f, muted=False, snoozed_until=None, now=now)[0]
            != "training"
        )
        ends = training_ends(min(known)) if known else None
        last = last_seen.get(source.id)
        received = int(recent.get(source.id) or 0)
        this_hour = dated.get((source.id, hour), 0)
        recent_hours = this_hour + dated.get((source.id, hour - 1), 0)
        out.append(
            SourceOverview(
                id=source.id,
                name=source.name,
                key_hint=source.key_hint,
                created_at=source.created_at,
                rotated_at=source.rotated_at,
                metrics=len(firsts[source.id]),
                trained_metrics=trained,
                training_ends_at=ends,
                training_left_seconds=(
                    None if ends is None else max(0, int((ends - now).total_seconds()))
                ),
                events_last_hour=received,
                events_this_hour=this_hour,
                earlier_events_last_hour=max(0, received - recent_hours),
                last_event_at=last,
            )
        )
    return out


def source_overview(
    session: Session, *, workspace_id: int, source_id: int, now: datetime
) -> SourceOverview:
    """One of the workspace's sources with its overview, or NotFound."""
    found = source_overviews(session, workspace_id=workspace_id, now=now, source_id=source_id)
    if not found:
        raise NotFound(f"no source {source_id} in this workspace")
    return found[0]
