"""A group of ingest requests written to PostgreSQL in one statement, one round trip.

The statement is its own transaction: it records the message digests, and from the ones
that were new it adds the bucket increments (moving back the first hour of a metric whose
new bucket comes before it), the breakdown increments, the debug view's minute counts and
its recent events. It locks rows in the order the general path does (digests, buckets by
key, metrics whose first hour moves by id, breakdowns by key, then minutes), so writers in
several processes wait for each other but never deadlock. Each round trip (BEGIN, each
INSERT, COMMIT) would cost a wake-up of the server and of the writer thread, while the
bucket rows it locks wait for the commit. `store` takes this path when every metric the
group names is already known, and every breakdown value its events carry has its row; new
metrics, new breakdown values, the metric cap and LaunchDarkly flag versions take the
general one.

The increments do not travel one row per event and metric: most events of a group
increment the same few sets of metrics (an event name's count, value and average, and
its type's total), so each distinct set is sent once, as a shape, and each event as its
shape, hour and value. The statement joins the counted events to their shapes, which
gives the same rows the per-increment arrays gave, in a fifth of the parameters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import orjson
from sqlalchemy import Engine

from lantern.breakdowns.service import breakdown_upsert, value_ids
from lantern.db.arrays import BoolArray, Float8Array, Int4Array, Int8Array, packed
from lantern.db.dialect import fetch_all
from lantern.ingest.breakdowns import CARRY_VALUE, NOT_SPLIT
from lantern.ingest.dedupe import seen_second
from lantern.ingest.events import Verdict
from lantern.ingest.types import IngestResult, Judged
from lantern.metrics.keys import MetricKey
from lantern.metrics.service import (
    CREATED_FIRST_HOURS,
    bucket_upsert,
    first_hour_update,
    metric_ids,
)

NAN = float("nan")
# The arrays describing the events offered to the debug view, one value per event.
SHOWN_COLUMNS = ("request", "pos", "source", "digest", "received", "accepted", "reason", "event")
# How many of a request's last events are offered to the debug view, of which the last
# five it counts are kept (the others were repeats).
SHOWN_CANDIDATES = 10

# %(name)b: binary parameters, which psycopg packs without escaping each array element.
STATEMENT = (
    """
WITH offered AS MATERIALIZED (
    SELECT * FROM unnest(%(seen_source)b::int[], %(seen_digest)b::bigint[]) AS t(s, d)
),
fresh AS (
    INSERT INTO seen_messages (source_id, digest, seen_second)
    SELECT s, d, %(seen_second)s FROM offered
    ORDER BY s, d
    ON CONFLICT DO NOTHING
    RETURNING source_id, digest
),
-- An event without a message id comes with `named` false (its digest is a 0 read as
-- none), and one without a value with NaN (no value is: ingest refuses NaN).
candidates AS (
    SELECT c.source_id, c.minute, c.shape, c.combo, c.hour, nullif(c.value, 'NaN') AS value,
        NOT c.named OR (c.source_id, c.digest) IN (SELECT source_id, digest FROM fresh)
        AS counted
    FROM unnest(
        %(cand_source)b::int[], %(cand_minute)b::int[], %(cand_named)b::bool[],
        %(cand_digest)b::bigint[], %(cand_shape)b::int[], %(cand_combo)b::int[],
        %(cand_hour)b::int[], %(cand_value)b::float8[]
    ) AS c(source_id, minute, named, digest, shape, combo, hour, value)
),
shape_rows AS MATERIALIZED (
    SELECT * FROM unnest(
        %(shape_number)b::int[], %(shape_metric)b::int[], %(shape_valued)b::bool[],
        %(shape_split)b::bool[], %(shape_carries)b::bool[]
    ) AS p(shape, metric_id, valued, split, carries)
),
-- Materialized: summed by hashing, then only the sums are sorted for the upsert's key
-- order (inlined, the planner sorted every event's rows to group them).
increments AS MATERIALIZED (
    SELECT p.metric_id, c.hour, count(*) AS n,
        coalesce(sum(c.value) FILTER (WHERE p.valued), 0) AS v,
        coalesce(sum(c.value * c.value) FILTER (WHERE p.valued), 0) AS q
    FROM candidates AS c
    JOIN shape_rows AS p ON p.shape = c.shape
    WHERE c.counted
    GROUP BY p.metric_id, c.hour
),
bucket_rows AS (
    {BUCKET_ROWS}
    RETURNING metric_id, hour, count
),
first_rows AS (
    {FIRST_ROWS}
    RETURNING 1
),
-- Each counted event with dimension values, once per metric it splits and per value.
breakdown_increments AS MATERIALIZED (
    SELECT d.value_id, p.metric_id, c.hour, count(*) AS n,
        count(c.value) FILTER (WHERE p.carries) AS k,
        coalesce(sum(c.value) FILTER (WHERE p.carries), 0) AS v
    FROM candidates AS c
    JOIN shape_rows AS p ON p.shape = c.shape AND p.split
    JOIN unnest(%(combo_number)b::int[], %(combo_value)b::int[]) AS d(combo, value_id)
        ON d.combo = c.combo
    WHERE c.counted
    GROUP BY d.value_id, p.metric_id, c.hour
),
breakdown_rows AS (
    {BREAKDOWN_ROWS}
    RETURNING 1
),
minute_rows AS (
    INSERT INTO debug_minutes (source_id, minute, accepted, rejected, duplicates, over_cap)
    SELECT source_id, minute, sum(accepted), sum(rejected), sum(duplicates), 0
    FROM (
        SELECT source_id, minute, counted::int AS accepted, 0 AS rejected,
            (NOT counted)::int AS duplicates
        FROM candidates
        UNION ALL
        SELECT source_id, minute, 0, rejected, duplicates
        FROM unnest(
            %(req_source)b::int[], %(req_minute)b::int[], %(req_rejected)b::int[],
            %(req_duplicates)b::int[]
        ) AS r(source_id, minute, rejected, duplicates)
    ) AS m
    -- Buckets, then first hours, then breakdowns, then minutes, as every ingest
    -- transaction locks them: no deadlock.
    WHERE (SELECT count(*) FROM breakdown_rows) >= 0
    GROUP BY source_id, minute
    ORDER BY source_id, minute
    ON CONFLICT (source_id, minute) DO UPDATE SET
        accepted = debug_minutes.accepted + excluded.accepted,
        rejected = debug_minutes.rejected + excluded.rejected,
        duplicates = debug_minutes.duplicates + excluded.duplicates
),
shown_rows AS (
    INSERT INTO debug_events (source_id, received_at, accepted, reason, event)
    SELECT source_id, received_at, accepted, reason, event::json
    FROM (
        SELECT e.*, row_number() OVER (PARTITION BY e.request, e.accepted ORDER BY e.pos DESC)
            AS recent
        FROM unnest(
            %(shown_request)b::int[], %(shown_pos)b::int[], %(shown_source)b::int[],
            %(shown_digest)b::bigint[], %(shown_received)b::timestamp[],
            %(shown_accepted)b::bool[], %(shown_reason)b::text[], %(shown_event)b::text[]
        ) AS e(request, pos, source_id, digest, received_at, accepted, reason, event)
        WHERE NOT e.accepted OR e.digest IS NULL
            OR (e.source_id, e.digest) IN (SELECT source_id, digest FROM fresh)
    ) AS kept
    WHERE recent <= %(per_request)s
    ORDER BY request, NOT accepted, pos
)
-- The repeats: usually none, where the new ids were one row each to read; looked for
-- only when fewer ids were new than were offered.
SELECT s, d FROM offered
WHERE (SELECT count(*) FROM fresh) < (SELECT count(*) FROM offered)
    AND (s, d) NOT IN (SELECT source_id, digest FROM fresh)
""".replace(
        "{BUCKET_ROWS}",
        bucket_upsert("SELECT metric_id, hour, n, v, q FROM increments ORDER BY metric_id, hour"),
    )
    .replace(
        # after the buckets, whose new rows it reads: every writer locks a metric's row after
        # its buckets
        "{FIRST_ROWS}",
        first_hour_update(CREATED_FIRST_HOURS),
    )
    .replace(
        "{BREAKDOWN_ROWS}",
        breakdown_upsert(
            "SELECT value_id, metric_id, hour, n, k, v FROM breakdown_increments "
            "WHERE (SELECT count(*) FROM first_rows) >= 0 ORDER BY value_id, metric_id, hour"
        ),
    )
)


@dataclass(slots=True)
class Shapes:
    """The distinct sets of metrics a group's events increment, numbered from 1.

    Each shape is its metrics' ids, each marked if it takes the event's value; `of`
    gives the number of a (source, increments' keys and valued marks).
    """

    of: dict[tuple[int, tuple[tuple[MetricKey, bool], ...]], int] = field(default_factory=dict)
    number: list[int] = field(default_factory=list)
    metric: list[int] = field(default_factory=list)
    valued: list[bool] = field(default_factory=list)
    split: list[bool] = field(default_factory=list)  # whether breakdowns count it
    carries: list[bool] = field(default_factory=list)  # ... with the event's value


@dataclass(slots=True)
class Combos:
    """The distinct sets of dimension values a group's events carry, numbered from 1: each
    is its values' ids (`combo_of` gives the number of one; 0 is no value at all)."""

    of: dict[tuple[tuple[int, str], ...], int] = field(default_factory=dict)
    number: list[int] = field(default_factory=list)
    value: list[int] = field(default_factory=list)


def combo_of(url: str, combos: Combos, dims: tuple[tuple[int, str], ...]) -> int | None:
    """The number of an event's dimension values; None if one needs the general path (a
    value not yet admitted, or a dimension this process has not read yet)."""
    if not dims:
        return 0
    number = combos.of.get(dims)
    if number is not None:
        return number
    ids: list[int] = []
    for dimension_id, value in dims:
        known = value_ids.get(url, dimension_id)
        if known is None:
            return None
        if known.refused:
            continue
        value_id = known.lookup(value)
        if value_id is None:
            return None
        ids.append(value_id)
    number = len(combos.of) + 1
    combos.of[dims] = number
    combos.number.extend([number] * len(ids))
    combos.value.extend(ids)
    return number


def shape_of(
    url: str, shapes: Shapes, source: int, verdict: Verdict
) -> tuple[int, float | None] | None:
    """(shape number, value) of an event; None if it needs the general path.

    That is an event with a flag version, one naming a metric not yet known, or one
    whose increments carry different values (no event does today; a shape has one).
    """
    if verdict.flag is not None:
        return None
    value: float | None = None
    marks: list[tuple[MetricKey, bool]] = []
    for key, given in verdict.increments:
        if given is None:
            marks.append((key, False))
        else:
            marks.append((key, True))
            if value is None:
                value = given
            elif given != value:
                return None
    found = (source, tuple(marks))
    number = shapes.of.get(found)
    if number is None:
        number = len(shapes.of) + 1
        for key, valued in marks:
            metric_id = metric_ids.get(url, source, key)
            if metric_id is None:
                return None
            shapes.number.append(number)
            shapes.metric.append(metric_id)
            shapes.valued.append(valued)
            shapes.split.append(key[0] not in NOT_SPLIT)
            shapes.carries.append(key[0] in CARRY_VALUE)
        shapes.of[found] = number
    return number, value


def write_at_once(
    engine: Engine,
    *,
    requests: Sequence[Judged],
    results: Sequence[IngestResult],
    unique: Sequence[list[Verdict]],
    per_request: int,
) -> dict[int, set[int]] | None:
    """Write a group in one statement; returns the digests already remembered (the
    repeats), per source.

    `unique` holds each request's accepted events without repeats inside the group.
    Returns None, having written nothing, when an event needs the general path
    (`shape_of`).
    """
    url = str(engine.url)
    shapes = Shapes()
    combos = Combos()
    cand_combo: list[int] = []
    seen_source: list[int] = []
    seen_digest: list[int] = []
    cand_source: list[int] = []
    cand_minute: list[int] = []
    cand_named: list[bool] = []
    cand_digest: list[int] = []
    cand_shape: list[int] = []
    cand_hour: list[int] = []
    cand_value: list[float] = []
    req: dict[str, list[int]] = {"source": [], "minute": [], "rejected": [], "duplicates": []}
    shown: dict[str, list[Any]] = defaultdict(list)
    for number, (request, result, kept) in enumerate(zip(requests, results, unique, strict=True)):
        source = request.source_id
        minute = int(request.received_at.timestamp() // 60)
        for name, count in (
            ("source", source),
            ("minute", minute),
            ("rejected", len(result.rejected)),
            ("duplicates", result.duplicates),
        ):
            req[name].append(count)
        for verdict in kept:
            shaped = shape_of(url, shapes, source, verdict)
            if shaped is None:
                return None
            combo = combo_of(url, combos, verdict.dims)
            if combo is None:
                return None
            cand_combo.append(combo)
            digest = verdict.digest
            if digest is not None:
                seen_source.append(source)
                seen_digest.append(digest)
                cand_named.append(True)
                cand_digest.append(digest)
            else:
                cand_named.append(False)
                cand_digest.append(0)
            cand_source.append(source)
            cand_minute.append(minute)
            cand_shape.append(shaped[0])
            cand_hour.append(verdict.hour)
            value = shaped[1]
            cand_value.append(NAN if value is None else value)
        received = request.received_at.astimezone(UTC).replace(tzinfo=None)
        rejected = [(i, v) for i, v in enumerate(request.verdicts) if not v.accepted]
        for pos, verdict in list(enumerate(kept))[-SHOWN_CANDIDATES:] + rejected[-per_request:]:
            shown["request"].append(number)
            shown["pos"].append(pos)
            shown["source"].append(source)
            shown["digest"].append(verdict.digest if verdict.accepted else None)
            shown["received"].append(received)
            shown["accepted"].append(verdict.accepted)
            shown["reason"].append(verdict.reason)
            shown["event"].append(orjson.dumps(verdict.summary).decode())
    params: dict[str, Any] = {
        "seen_second": seen_second(max(r.received_at for r in requests)),
        "per_request": per_request,
        "seen_source": packed(Int4Array, seen_source),
        "seen_digest": packed(Int8Array, seen_digest),
        "cand_source": packed(Int4Array, cand_source),
        "cand_minute": packed(Int4Array, cand_minute),
        "cand_named": packed(BoolArray, cand_named),
        "cand_digest": packed(Int8Array, cand_digest),
        "cand_shape": packed(Int4Array, cand_shape),
        "cand_hour": packed(Int4Array, cand_hour),
        "cand_value": packed(Float8Array, cand_value),
        "shape_number": shapes.number,
        "shape_metric": shapes.metric,
        "shape_valued": shapes.valued,
        "shape_split": shapes.split,
        "shape_carries": shapes.carries,
        "cand_combo": packed(Int4Array, cand_combo),
        "combo_number": combos.number,
        "combo_value": combos.value,
        **{f"req_{name}": values for name, values in req.items()},
        **{f"shown_{name}": shown[name] for name in SHOWN_COLUMNS},
    }
    with engine.connect() as connection:
        rows = fetch_all(
            connection.execution_options(isolation_level="AUTOCOMMIT"), STATEMENT, params
        )
    repeated: dict[int, set[int]] = {request.source_id: set() for request in requests}
    for source, digest in rows:
        repeated[source].add(digest)
    return repeated
