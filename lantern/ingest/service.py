"""Accepted events become committed bucket increments, exactly once per message id."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import Connection

from lantern.config import Settings
from lantern.db.dialect import insert_for
from lantern.db.session import write_serialized
from lantern.ingest.events import Limits, Verdict, judge, merge_batch_fields
from lantern.ingest.models import DebugEvent, DebugMinute, SeenMessage
from lantern.ingest.protocol import Payload
from lantern.metrics.keys import MetricKey
from lantern.metrics.models import FlagChange, FlagVersion
from lantern.metrics.service import add_to_buckets, metric_ids, resolve_metrics

# How many events of each verdict one request may add to the debug view.
DEBUG_PER_REQUEST = 5


@dataclass(slots=True)
class IngestResult:
    """What a request did: counts, and each rejected event's position and reason."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    over_cap: int = 0


def limits_for(settings: Settings, *, history: bool) -> Limits:
    """The time window for live calls, or the wider one for `/v1/import`."""
    late = settings.import_horizon_days if history else settings.late_horizon_days
    return Limits(late=timedelta(days=late), future=timedelta(minutes=settings.future_skew_minutes))


def judge_payload(payload: Payload, *, received_at: datetime, limits: Limits) -> list[Verdict]:
    """A verdict for every event of a request, batch-level fields merged in."""
    return [
        judge(
            merge_batch_fields(event, payload.context, payload.integrations),
            received_at=received_at,
            batch_sent_at=payload.sent_at,
            limits=limits,
        )
        for event in payload.events
    ]


def _new_digests(
    connection: Connection, source_id: int, digests: list[bytes], now: datetime
) -> set[bytes]:
    """Record message digests; return those not seen before (the others are repeats).

    This runs for every event, so it is one statement written for each engine rather
    than a compiled multi-row INSERT, which costs more to build than to run.
    """
    if not digests:
        return set()
    seen_at = now.astimezone(UTC).replace(tzinfo=None)
    if connection.dialect.name == "postgresql":
        rows = connection.exec_driver_sql(
            "INSERT INTO seen_messages (source_id, digest, seen_at) "
            "SELECT %s, d, %s FROM unnest(%s::bytea[]) AS d "
            "ON CONFLICT DO NOTHING RETURNING digest",
            (source_id, seen_at, digests),
        )
    else:
        stamp = seen_at.strftime("%Y-%m-%d %H:%M:%S.%f")
        values = ",".join(["(?, ?, ?)"] * len(digests))
        params: list[object] = []
        for digest in digests:
            params += (source_id, digest, stamp)
        rows = connection.exec_driver_sql(
            f"INSERT INTO seen_messages (source_id, digest, seen_at) VALUES {values} "
            "ON CONFLICT DO NOTHING RETURNING digest",
            tuple(params),
        )
    return {bytes(row[0]) for row in rows}


def _record_flags(
    connection: Connection, source_id: int, seen: list[tuple[str, int, datetime]]
) -> None:
    """Keep each flag's latest version; every change of version is recorded with its time."""
    by_flag: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for key, version, at in seen:
        by_flag[key].append((at, version))
    for key in sorted(by_flag):
        current = connection.execute(
            select(FlagVersion.version, FlagVersion.seen_at).where(
                FlagVersion.source_id == source_id, FlagVersion.flag_key == key
            )
        ).first()
        state = (current[0], current[1]) if current is not None else None
        changes = []
        for at, version in sorted(by_flag[key]):
            if state is None:
                state = (version, at)
            elif at >= state[1]:
                if version != state[0]:
                    changes.append(
                        {
                            "source_id": source_id,
                            "flag_key": key,
                            "old_version": state[0],
                            "new_version": version,
                            "changed_at": at,
                        }
                    )
                state = (version, at)
        assert state is not None
        if current is None:
            connection.execute(
                insert_for(connection, FlagVersion)
                .values(source_id=source_id, flag_key=key, version=state[0], seen_at=state[1])
                .on_conflict_do_nothing()
            )
        elif state != (current[0], current[1]):
            connection.execute(
                update(FlagVersion)
                .where(FlagVersion.source_id == source_id, FlagVersion.flag_key == key)
                .values(version=state[0], seen_at=state[1])
            )
        if changes:
            connection.execute(insert(FlagChange), changes)


def store(
    engine: Engine,
    *,
    source_id: int,
    verdicts: list[Verdict],
    received_at: datetime,
    metric_cap: int,
) -> IngestResult:
    """Commit a request's increments, debug rows and seen ids in one transaction."""
    result = IngestResult()
    for index, verdict in enumerate(verdicts):
        if not verdict.accepted:
            result.rejected.append({"index": index, "reason": verdict.reason})
    accepted = [v for v in verdicts if v.accepted]
    resolved_ids: dict[MetricKey, int] = {}
    with write_serialized(engine), engine.begin() as connection:
        # Repeats inside one request count once, like repeats across requests.
        unique: list[Verdict] = []
        local: set[bytes] = set()
        for verdict in accepted:
            if verdict.digest is not None:
                if verdict.digest in local:
                    result.duplicates += 1
                    continue
                local.add(verdict.digest)
            unique.append(verdict)
        fresh = _new_digests(connection, source_id, sorted(local), received_at)
        counted = [v for v in unique if v.digest is None or v.digest in fresh]
        result.duplicates += len(unique) - len(counted)
        result.accepted = len(counted)

        keys = {key for v in counted for key, _ in v.increments}
        resolved = resolve_metrics(connection, source_id=source_id, keys=keys, cap=metric_cap)
        resolved_ids = {k: v for k, v in resolved.ids.items() if k not in resolved.over_cap}
        increments: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0, 0.0])
        flags: list[tuple[str, int, datetime]] = []
        for verdict in counted:
            for key, value in verdict.increments:
                if key in resolved.over_cap:
                    result.over_cap += 1
                cell = increments[(resolved.ids[key], verdict.hour)]
                cell[0] += 1
                if value is not None:
                    cell[1] += value
            if verdict.flag is not None:
                flags.append(verdict.flag)
        add_to_buckets(connection, {k: (int(c), float(v)) for k, (c, v) in increments.items()})
        if flags:
            _record_flags(connection, source_id, flags)
        _record_debug(connection, source_id, verdicts, counted, result, received_at)
    metric_ids.remember(str(engine.url), source_id, resolved_ids)
    return result


def _record_debug(
    connection: Connection,
    source_id: int,
    verdicts: list[Verdict],
    counted: list[Verdict],
    result: IngestResult,
    received_at: datetime,
) -> None:
    """Per-minute counts, and the last few stripped events of each verdict."""
    minute = int(received_at.timestamp() // 60)
    mark = "%s" if connection.dialect.name == "postgresql" else "?"
    connection.exec_driver_sql(
        "INSERT INTO debug_minutes (source_id, minute, accepted, rejected, duplicates, over_cap) "
        f"VALUES ({', '.join([mark] * 6)}) ON CONFLICT (source_id, minute) DO UPDATE SET "
        "accepted = debug_minutes.accepted + excluded.accepted, "
        "rejected = debug_minutes.rejected + excluded.rejected, "
        "duplicates = debug_minutes.duplicates + excluded.duplicates, "
        "over_cap = debug_minutes.over_cap + excluded.over_cap",
        (
            source_id,
            minute,
            result.accepted,
            len(result.rejected),
            result.duplicates,
            result.over_cap,
        ),
    )
    rejected = [v for v in verdicts if not v.accepted][-DEBUG_PER_REQUEST:]
    shown = counted[-DEBUG_PER_REQUEST:] + rejected
    if shown:
        connection.execute(
            insert(DebugEvent),
            [
                {
                    "source_id": source_id,
                    "received_at": received_at,
                    "accepted": v.accepted,
                    "reason": v.reason,
                    "event": v.summary,
                }
                for v in shown
            ],
        )


def purge_seen_messages(engine: Engine, *, before: datetime) -> int:
    """Forget message ids first seen before `before`; returns how many were dropped."""
    with engine.begin() as connection:
        deleted = connection.execute(delete(SeenMessage).where(SeenMessage.seen_at < before))
        return deleted.rowcount or 0


def purge_debug(engine: Engine, *, keep: int, minutes_before: int) -> None:
    """Keep only the last `keep` debug events of each verdict per source, and recent minutes."""
    with engine.begin() as connection:
        connection.execute(delete(DebugMinute).where(DebugMinute.minute < minutes_before))
        sources = connection.scalars(select(DebugEvent.source_id).distinct()).all()
        for source_id in sources:
            for accepted in (True, False):
                cutoff = connection.scalar(
                    select(DebugEvent.id)
                    .where(DebugEvent.source_id == source_id, DebugEvent.accepted == accepted)
                    .order_by(DebugEvent.id.desc())
                    .offset(keep)
                    .limit(1)
                )
                if cutoff is not None:
                    connection.execute(
                        delete(DebugEvent).where(
                            DebugEvent.source_id == source_id,
                            DebugEvent.accepted == accepted,
                            DebugEvent.id <= cutoff,
                        )
                    )
