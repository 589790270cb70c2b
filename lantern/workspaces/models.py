"""Tables for workspaces, sources and API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lantern.db.base import Base, UTCDateTime, utcnow


class Workspace(Base):
    """A team's space: every other object belongs to exactly one workspace."""

    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    sensitivity: Mapped[str] = mapped_column(String(10), default="medium")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Delivery policy: Slack messages wait out the quiet hours, local hours of `time_zone`
    # from `quiet_start` to `quiet_end` (none when either is null); high-severity outages
    # go at once unless `quiet_holds_outages`.
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    quiet_start: Mapped[int | None] = mapped_column(Integer, default=None)
    quiet_end: Mapped[int | None] = mapped_column(Integer, default=None)
    quiet_holds_outages: Mapped[bool] = mapped_column(Boolean, default=False)
    # How the alerts held in the quiet hours go when they end: `each` (one message per
    # insight) or `summary` (one message listing them; see `notify.summary`).
    quiet_hours_delivery: Mapped[str] = mapped_column(
        String(16), default="each", server_default="each"
    )
    # Low-severity alerts wait for one message a day at this local hour (none when null).
    digest_hour: Mapped[int | None] = mapped_column(Integer, default=None)


class Source(Base):
    """A stream of Segment calls, authenticated by its API key (stored hashed)."""

    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_hint: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class ApiToken(Base):
    """A bearer token for the dashboard API, scoped to one workspace (stored hashed)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
