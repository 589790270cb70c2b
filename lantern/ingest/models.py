"""Tables ingest writes besides buckets: seen message ids and the debug view's data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lantern.db.base import Base, UTCDateTime


class SeenMessage(Base):
    """A message id already counted for a source, kept for the dedupe horizon.

    Only a digest of the id is stored, a 64-bit integer (`events.digest_of`): ids are
    opaque and could carry anything. A row is written for every event, so it is kept
    small: an integer key rather than a 16-byte string (migration 0018), and the second it
    was first seen (since the Unix epoch, a 4-byte integer on SQLite) rather than a
    timestamp; the hourly purge (`lantern.ingest.dedupe`) walks the index on it from its
    oldest end.
    """

    __tablename__ = "seen_messages"
    # Clustered on the primary key on SQLite: one B-tree to write instead of two.
    __table_args__ = {"sqlite_with_rowid": False}

    source_id: Mapped[int] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seen_second: Mapped[int] = mapped_column(BigInteger, index=True)


class DebugEvent(Base):
    """A recent event as the debug view shows it: stripped of everything personal."""

    __tablename__ = "debug_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(300))
    event: Mapped[dict[str, Any]] = mapped_column(JSON)


class DebugMinute(Base):
    """Accepted and rejected event counts for one source and one minute."""

    __tablename__ = "debug_minutes"
    # Clustered on the primary key on SQLite: one B-tree to write instead of two.
    __table_args__ = {"sqlite_with_rowid": False}

    source_id: Mapped[int] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    over_cap: Mapped[int] = mapped_column(Integer, default=0)
