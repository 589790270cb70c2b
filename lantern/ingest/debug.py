"""The debug view's data: what a source sent lately, and what became of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from lantern.ingest.models import DebugEvent, DebugMinute
from lantern.metrics.keys import MetricKind
from lantern.metrics.models import Bucket, Metric


def debug_view(
    connection: Connection, *, source_id: int, now: datetime, limit: int = 50
) -> dict[str, Any]:
    """Recent accepted and rejected events, per-minute counts for the last hour, overflow."""

    def recent(accepted: bool) -> list[dict[str, Any]]:
        rows = connection.execute(
            select(DebugEvent.received_at, DebugEvent.reason, DebugEvent.event)
            .where(DebugEvent.source_id == source_id, DebugEvent.accepted == accepted)
            .order_by(DebugEvent.id.desc())
            .limit(limit)
        )
        return [
            {"received_at": at, **({"reason": reason} if not accepted else {}), "event": event}
            for at, reason, event in rows
        ]

    last_minute = int(now.timestamp() // 60)
    minutes = connection.execute(
        select(
            DebugMinute.minute,
            DebugMinute.accepted,
            DebugMinute.rejected,
            DebugMinute.duplicates,
            DebugMinute.over_cap,
        )
        .where(DebugMinute.source_id == source_id, DebugMinute.minute > last_minute - 60)
        .order_by(DebugMinute.minute)
    ).all()
    overflow = connection.scalar(
        select(Bucket.count)
        .join(Metric, Metric.id == Bucket.metric_id)
        .where(Metric.source_id == source_id, Metric.kind == MetricKind.OVERFLOW)
        .order_by(Bucket.hour.desc())
        .limit(1)
    )
    rejected = recent(False)
    reasons: dict[str, int] = {}
    for item in rejected:
        reasons[item["reason"]] = reasons.get(item["reason"], 0) + 1
    return {
        "accepted": recent(True),
        "rejected": rejected,
        "rejection_reasons": reasons,
        "per_minute": [
            {
                "minute": datetime.fromtimestamp(m * 60, tz=now.tzinfo),
                "accepted": a,
                "rejected": r,
                "duplicates": d,
                "over_cap": o,
            }
            for m, a, r, d, o in minutes
        ],
        "over_cap_latest_hour": int(overflow or 0),
    }
