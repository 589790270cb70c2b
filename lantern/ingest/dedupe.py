"""The message-id table: the hour each digest is stamped with, and the hourly purge.

Each source's message ids are remembered for the dedupe horizon (`dedupe_hours`, 24 by
default), so a retried event is acknowledged but counted once. A digest is stamped with
the second it was first seen (an integer, not a 26-character timestamp); once an hour,
rows seen before `now - horizon` are deleted. A repeat is therefore recognised for at
least the horizon and at most an hour more (until the next purge), and the table holds
one horizon of ids, not the day and more that a daily purge let it grow to. The stamp
grows with each commit, so the index on it is appended to, as the purge walks it from
its oldest end; a coarser stamp (the hour) shared by a whole hour's digests made each
commit write all over the index.

The purge deletes in chunks, each one statement in its own transaction, taken in turn
with ingest's writers (`write_serialized` on SQLite), so a large purge never holds ingest
up for long. Each chunk is a statement alone (autocommit): inside an explicit
transaction SQLite would also keep a statement journal, in memory, of every page the
chunk touches, and random digests touch about a page per row.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta

from sqlalchemy import Engine

from lantern.db.session import write_serialized

# Rows deleted per transaction: about a tenth of a second of writing on SQLite.
PURGE_CHUNK_ROWS = 5_000
# A pause between chunks, so the writers queued meanwhile take their turn first.
PURGE_PAUSE_SECONDS = 0.02

PURGE_CHUNK = (
    "DELETE FROM seen_messages WHERE (source_id, digest) IN ("
    "SELECT source_id, digest FROM seen_messages WHERE seen_second < {mark} LIMIT {limit})"
)


def seen_second(at: datetime) -> int:
    """The stamp of a digest first seen at `at`: seconds since the Unix epoch."""
    return math.floor(at.timestamp())


def oldest_kept_second(now: datetime, *, horizon_hours: float) -> int:
    """The first second whose digests are still kept: `now - horizon`."""
    return seen_second(now - timedelta(hours=horizon_hours))


def purge_seen_messages(engine: Engine, *, now: datetime, horizon_hours: float) -> int:
    """Forget message ids seen only before the dedupe horizon; returns how many went."""
    mark = "%s" if engine.dialect.name == "postgresql" else "?"
    statement = PURGE_CHUNK.format(mark=mark, limit=PURGE_CHUNK_ROWS)
    keep_from = oldest_kept_second(now, horizon_hours=horizon_hours)
    dropped = 0
    while True:
        with write_serialized(engine), engine.connect() as connection:
            alone = connection.execution_options(isolation_level="AUTOCOMMIT")
            deleted = alone.exec_driver_sql(statement, (keep_from,)).rowcount or 0
        dropped += deleted
        if deleted < PURGE_CHUNK_ROWS:
            return dropped
        time.sleep(PURGE_PAUSE_SECONDS)
