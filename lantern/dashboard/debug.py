"""The debug view's data: what a source sent lately, and what became of it."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Connection

from lantern.breakdowns.read import dimensions_seen
from lantern.ingest.models import DebugEvent, DebugMinute
from lantern.metrics.keys import MetricKind
from lantern.metrics.models import Bucket, Metric


def debug_view(
    connection: Connection, *, source_id: int, now: datetime, limit: int = 50
) -> dict[str, Any]:
    """Recent accepted and rejected events, per-minute counts for the last hour, overflow,
    and the breakdown dimensions with the values seen in the last 24 hours."""

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
    per_minute = [
        {
            "minute": datetime.fromtimestamp(m * 60, tz=now.tzinfo),
            "accepted": a,
            "rejected": r,
            "duplicates": d,
            "over_cap": o,
        }
        for m, a, r, d, o in minutes
    ]
    return {
        "accepted": recent(True),
        "rejected": rejected,
        "rejection_reasons": reasons,
        "per_minute": per_minute,
        "over_cap_latest_hour": int(overflow or 0),
        "over_cap_last_hour": sum(m["over_cap"] for m in per_minute),
        "over_cap": over_cap_names(connection, source_id=source_id) if overflow else [],
        "dimensions": [
            asdict(seen) for seen in dimensions_seen(connection, source_id=source_id, now=now)
        ],
    }


def over_cap_names(connection: Connection, *, source_id: int, scan: int = 500) -> list[str]:
    """Names in the source's recent events that have no metric of their own: over the cap.

    Read back from the debug view's recent events, so it names what was sent lately, not
    every name ever counted into the overflow metric.
    """
    events = connection.scalars(
        select(DebugEvent.event)
        .where(DebugEvent.source_id == source_id, DebugEvent.accepted.is_(True))
        .order_by(DebugEvent.id.desc())
        .limit(scan)
    )
    keys: set[tuple[str, str]] = set()
    for event in events:
        key = _metric_key(event)
        if key is not None:
            keys.add(key)
    if not keys:
        return []
    known = connection.execute(
        select(Metric.kind, Metric.name).where(
            Metric.source_id == source_id, tuple_(Metric.kind, Metric.name).in_(sorted(keys))
        )
    )
    return sorted({name for _, name in keys - {(k, n) for k, n in known}})


def _metric_key(event: dict[str, Any]) -> tuple[str, str] | None:
    """The capped metric a stripped event fed (see `ingest.events.judge`)."""
    kind = event.get("type")
    launchdarkly = event.get("launchdarkly")
    if kind == "track" and isinstance(launchdarkly, dict):
        feature = launchdarkly.get("kind") == "feature"
        ld_kind = MetricKind.FLAG if feature else MetricKind.EXPERIMENT
        return (ld_kind.value, str(launchdarkly.get("key")))
    if kind == "track" and isinstance(event.get("event"), str):
        return (MetricKind.TRACK.value, event["event"])
    if kind in ("page", "screen") and isinstance(event.get("name"), str):
        return (str(kind), event["name"])
    return None
