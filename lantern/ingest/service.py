"""Accepted events become committed bucket increments, exactly once per message id."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import Connection

from lantern.breakdowns.dimensions import Spec
from lantern.breakdowns.service import add_breakdown_rows, refuse_dimensions, value_ids
from lantern.config import Settings
from lantern.db.dialect import fetch_all, insert_for
from lantern.db.session import write_serialized
from lantern.ingest.breakdowns import BreakdownCells, find_refusals
from lantern.ingest.dedupe import seen_second
from lantern.ingest.events import Limits, Verdict, Window, judge_in, merge_batch_fields
from lantern.ingest.models import DebugEvent, DebugMinute
from lantern.ingest.postgres import write_at_once
from lantern.ingest.protocol import Payload
from lantern.ingest.types import IngestResult, Judged
from lantern.metrics.keys import MetricKey
from lantern.metrics.models import FlagChange, FlagVersion
from lantern.metrics.service import Resolved, add_to_buckets, metric_ids, resolve_metrics
from lantern.workspaces.models import Source

# How many events of each verdict one request may add to the debug view.
DEBUG_PER_REQUEST = 5
# Rows per INSERT of message digests on SQLite, three bound values each: SQLite allows
# 32,766 values per statement.
SQLITE_ROWS_PER_INSERT = 5000


def limits_for(settings: Settings, *, history: bool) -> Limits:
    """The time window for live calls, or the wider one for `/v1/import`."""
    late = settings.import_horizon_days if history else settings.late_horizon_days
    return Limits(late=timedelta(days=late), future=timedelta(minutes=settings.future_skew_minutes))


def judge_payload(
    payload: Payload, *, received_at: datetime, limits: Limits, spec: Spec | None = None
) -> list[Verdict]:
    """A verdict for every event of a request, batch-level fields merged in; `spec` names
    the source's breakdown dimensions."""
    window = Window.of(received_at=received_at, batch_sent_at=payload.sent_at, limits=limits)
    context, integrations = payload.context, payload.integrations
    if context is None and integrations is None:
        return [judge_in(event, window, spec) for event in payload.events]
    return [
        judge_in(merge_batch_fields(event, context, integrations), window, spec)
        for event in payload.events
    ]


def _new_digests(
    connection: Connection, source_id: int, digests: list[int], now: datetime
) -> set[int]:
    """Record message digests; return those not seen before (the others are repeats).

    This runs for every event, so it is one statement written for each engine rather
    than a compiled multi-row INSERT, which costs more to build than to run.
    """
    if not digests:
        return set()
    stamp = seen_second(now)
    if connection.dialect.name == "postgresql":
        rows = fetch_all(
            connection,
            "INSERT INTO seen_messages (source_id, digest, seen_second) "
            "SELECT %s, d, %s FROM unnest(%s::bigint[]) AS d "
            "ON CONFLICT DO NOTHING RETURNING digest",
            (source_id, stamp, digests),
        )
        return {row[0] for row in rows}
    fresh: set[int] = set()
    for start in range(0, len(digests), SQLITE_ROWS_PER_INSERT):
        chunk = digests[start : start + SQLITE_ROWS_PER_INSERT]
        values = ",".join(["(?, ?, ?)"] * len(chunk))
        params: list[object] = []
        for digest in chunk:
            params += (source_id, digest, stamp)
        rows = fetch_all(
            connection,
            f"INSERT INTO seen_messages (source_id, digest, seen_second) VALUES {values} "
            "ON CONFLICT DO NOTHING RETURNING digest",
            tuple(params),
        )
        fresh.update(row[0] for row in rows)
    return fresh


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


def store(engine: Engine, *, requests: list[Judged]) -> list[IngestResult]:
    """Commit several requests in one transaction, each counted as if it came alone.

    Requests are taken in order: a message id that an earlier request of the group (or
    any earlier transaction) carried is a duplicate. One transaction for many requests
    is what lets ingest keep up: its cost is mostly per transaction, not per event. On
    PostgreSQL, when all the group's metrics are known, the transaction is one statement
    (`lantern.ingest.postgres`).
    """
    results = [IngestResult() for _ in requests]
    # Repeats inside the group count once, like repeats across requests.
    unique: list[list[Verdict]] = []
    digests: dict[int, set[int]] = defaultdict(set)
    for request, result in zip(requests, results, strict=True):
        claimed = digests[request.source_id]
        kept: list[Verdict] = []
        for index, verdict in enumerate(request.verdicts):
            if not verdict.accepted:
                result.rejected.append({"index": index, "reason": verdict.reason})
            elif verdict.digest is None:
                kept.append(verdict)
            elif verdict.digest in claimed:
                result.duplicates += 1
            else:
                claimed.add(verdict.digest)
                kept.append(verdict)
        unique.append(kept)
    url = str(engine.url)
    # A property refused for its data is recorded by the general path, which also skips it.
    refusals = find_refusals(requests, unique)
    if engine.dialect.name == "postgresql" and not refusals:
        written = write_at_once(
            engine,
            requests=requests,
            results=results,
            unique=unique,
            per_request=DEBUG_PER_REQUEST,
        )
        if written is not None:
            _count(requests, results, unique, written)
            return results
    committed: list[tuple[int, Resolved, int]] = []
    split = BreakdownCells()
    seen_at = max(request.received_at for request in requests)
    if refusals:
        # Committed on its own, first: what a refused property counted is deleted even if
        # the group fails, and no row lock of the deletion is held while buckets are locked.
        with write_serialized(engine), engine.begin() as connection:
            refuse_dimensions(connection, reasons=refusals, now=seen_at)
    with write_serialized(engine), engine.begin() as connection:
        repeated = {
            source_id: found - _new_digests(connection, source_id, sorted(found), seen_at)
            for source_id, found in digests.items()
        }
        counted_per_request = _count(requests, results, unique, repeated)
        # The group's increments summed per source, metric key and hour, in one pass over
        # the events; metric ids are looked up once per key, not once per event.
        cells: dict[int, dict[tuple[MetricKey, int], list[float]]] = {}
        caps: dict[int, int] = {}
        flags: dict[int, list[tuple[str, int, datetime]]] = defaultdict(list)
        for request, counted in zip(requests, counted_per_request, strict=True):
            caps.setdefault(request.source_id, request.metric_cap)
            summed = cells.get(request.source_id)
            if summed is None:
                summed = cells[request.source_id] = defaultdict(lambda: [0, 0.0, 0.0])
            for verdict in counted:
                hour = verdict.hour
                for key, value in verdict.increments:
                    cell = summed[(key, hour)]
                    cell[0] += 1
                    if value is not None:
                        cell[1] += value
                        cell[2] += value * value
                if verdict.flag is not None:
                    flags[request.source_id].append(verdict.flag)
                split.add(request.source_id, verdict)
        increments: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        for source_id, summed in cells.items():
            found = resolve_metrics(
                connection,
                source_id=source_id,
                keys={key for key, _ in summed},
                cap=caps[source_id],
            )
            ids = found.ids
            for (key, hour), (count, value_sum, value_sq) in summed.items():
                cell = increments[(ids[key], hour)]
                cell[0] += count
                cell[1] += value_sum
                cell[2] += value_sq
            if found.over_cap:
                _count_over_cap(requests, results, counted_per_request, source_id, found)
            committed.append((source_id, found, caps[source_id]))
        add_to_buckets(
            connection, {k: (int(c), float(v), float(q)) for k, (c, v, q) in increments.items()}
        )
        split_rows, learned = split.increments(
            connection,
            metric_ids={source_id: found.ids for source_id, found, _ in committed},
            refused=set(refusals),
        )
        add_breakdown_rows(connection, split_rows)
        for source_id in sorted(flags):
            _record_flags(connection, source_id, flags[source_id])
        _record_debug(connection, requests, counted_per_request, results)
    value_ids.remember(url, learned)
    for source_id, found, cap in committed:
        overflow = found.ids.get(next(iter(found.over_cap))) if found.over_cap else None
        metric_ids.remember(
            url,
            source_id,
            {k: v for k, v in found.ids.items() if k not in found.over_cap},
            over_cap=found.over_cap,
            cap=cap,
            overflow_id=overflow,
        )
    return results


def _count_over_cap(
    requests: list[Judged],
    results: list[IngestResult],
    counted_per_request: list[list[Verdict]],
    source_id: int,
    found: Resolved,
) -> None:
    """Count, for each request of the source, the increments that fell past the cap."""
    over_cap = found.over_cap
    for request, result, counted in zip(requests, results, counted_per_request, strict=True):
        if request.source_id == source_id:
            result.over_cap += sum(
                1 for verdict in counted for key, _ in verdict.increments if key in over_cap
            )


def _count(
    requests: list[Judged],
    results: list[IngestResult],
    unique: list[list[Verdict]],
    repeated: dict[int, set[int]],
) -> list[list[Verdict]]:
    """Each request's counted events: no message id, or one not seen before; the rest repeat."""
    counted_per_request = []
    for request, result, kept in zip(requests, results, unique, strict=True):
        again = repeated.get(request.source_id)
        counted = [v for v in kept if v.digest not in again] if again else kept
        result.duplicates += len(kept) - len(counted)
        result.accepted = len(counted)
        counted_per_request.append(counted)
    return counted_per_request


def _record_debug(
    connection: Connection,
    requests: list[Judged],
    counted: list[list[Verdict]],
    results: list[IngestResult],
) -> None:
    """Per-minute counts, and the last few stripped events of each verdict of each request.

    Plain statements with the rows bound as the driver takes them: the debug events are a
    few rows per request, each of which SQLAlchemy would otherwise compile and process.
    """
    minutes: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    shown: list[tuple[Any, ...]] = []
    # The column's own conversion (naive UTC; SQLite's text form), done once per request.
    stored_time = DebugEvent.__table__.c.received_at.type.bind_processor(connection.dialect)
    for request, result, kept in zip(requests, results, counted, strict=True):
        cell = minutes[(request.source_id, int(request.received_at.timestamp() // 60))]
        cell[0] += result.accepted
        cell[1] += len(result.rejected)
        cell[2] += result.duplicates
        cell[3] += result.over_cap
        rejected = [v for v in request.verdicts if not v.accepted][-DEBUG_PER_REQUEST:]
        received = (
            stored_time(request.received_at) if stored_time is not None else request.received_at
        )
        shown.extend(
            (
                request.source_id,
                received,
                v.accepted,
                v.reason,
                orjson.dumps(v.summary).decode(),
            )
            for v in kept[-DEBUG_PER_REQUEST:] + rejected
        )
    postgres = connection.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    connection.exec_driver_sql(
        "INSERT INTO debug_minutes (source_id, minute, accepted, rejected, duplicates, over_cap) "
        f"VALUES ({', '.join([mark] * 6)}) ON CONFLICT (source_id, minute) DO UPDATE SET "
        "accepted = debug_minutes.accepted + excluded.accepted, "
        "rejected = debug_minutes.rejected + excluded.rejected, "
        "duplicates = debug_minutes.duplicates + excluded.duplicates, "
        "over_cap = debug_minutes.over_cap + excluded.over_cap",
        [(source_id, minute, *counts) for (source_id, minute), counts in sorted(minutes.items())],
    )
    if shown:
        event = "%s::json" if postgres else "?"
        connection.exec_driver_sql(
            "INSERT INTO debug_events (source_id, received_at, accepted, reason, event) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}, {event})",
            shown,
        )


def source_exists(engine: Engine, *, source_id: int) -> bool:
    """Whether the source still exists (another process may have deleted it)."""
    with engine.connect() as connection:
        found = connection.scalar(select(Source.id).where(Source.id == source_id))
    return found is not None


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
