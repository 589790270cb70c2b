"""Tables for metrics, hourly buckets and LaunchDarkly flag versions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lantern.db.base import Base, UTCDateTime, utcnow


class Metric(Base):
    """A series Lantern watches, discovered the first time an event names it.

    `kind` is one of the names in `lantern.metrics.keys.MetricKind`; `name` is the event,
    page or screen name (or the call type for totals, the flag key for flags).

    `first_hour` is the earliest hour (epoch hours) any of its buckets was written for,
    NULL until one is: every write of buckets keeps it (`add_to_buckets` and ingest's
    PostgreSQL statement move it back when late or imported events come before it). The
    hourly pass's training gate and a new metric's origin read it here instead of taking
    the minimum over all of the metric's buckets. When the retention drops a metric's
    oldest buckets it stays where it was: the metric has had its training week whatever
    is kept (the retention is at least 30 days, so it was trained and scored before). When
    it drops all of them the clean-up clears it (`partitions.expire_buckets`).

    A metric of kind `breakdown` is one value of a breakdown of its `parent_id`, watched
    because the team asked for alerts per value (`lantern.breakdowns.alerts`): its buckets
    are the parent's events that carried `breakdown_value_id`, copied from the breakdown
    counts by the hourly pass. It goes with its parent's alert and with its value (a
    dimension removed or refused takes its values with it).
    """

    __tablename__ = "metrics"
    __table_args__ = (
        UniqueConstraint("source_id", "kind", "name"),
        # one metric per parent and value; NULLs (every discovered metric) are distinct
        Index("ix_metrics_parent_id", "parent_id", "breakdown_value_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Who its alerts mention (a Slack user U… or user group S…), and what to check first.
    owner: Mapped[str | None] = mapped_column(String(50), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    first_hour: Mapped[int | None] = mapped_column(Integer, default=None)
    # Plain integers rather than foreign keys: SQLite adds a column's foreign key to a table
    # only by copying the table, and a copied metrics table would cascade its drop to every
    # bucket. Whatever deletes a breakdown value or an alert deletes its metrics
    # (`lantern.breakdowns.service.drop_value_metrics`), and the hourly pass sweeps any left.
    parent_id: Mapped[int | None] = mapped_column(Integer, default=None)
    breakdown_value_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)


class Bucket(Base):
    """One metric's increments for one UTC hour (`hour` counts hours since the Unix epoch).

    `count` is the hour's events (for a value or an average metric, the events that carried
    a value), `value_sum` the sum of their values and `value_sq` the sum of their squares:
    enough for an average and its spread. `value_sq` is NULL where it was never kept (hours
    written before the average metrics existed).
    """

    __tablename__ = "buckets"
    __table_args__ = {
        # Clustered on the primary key on SQLite: one B-tree to write instead of two.
        "sqlite_with_rowid": False,
        # A partition a week on PostgreSQL (lantern/metrics/partitions.py, migration 0011).
        "postgresql_partition_by": "RANGE (hour)",
    }

    metric_id: Mapped[int] = mapped_column(
        ForeignKey("metrics.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    value_sum: Mapped[float] = mapped_column(Float, default=0.0)
    value_sq: Mapped[float | None] = mapped_column(Float, default=0.0)


class FlagVersion(Base):
    """The latest `flagVersion` seen for a LaunchDarkly flag in a source."""

    __tablename__ = "flag_versions"

    source_id: Mapped[int] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    flag_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FlagChange(Base):
    """A change of a flag's version, kept as a possible cause of later insights."""

    __tablename__ = "flag_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    flag_key: Mapped[str] = mapped_column(String(200))
    old_version: Mapped[int | None] = mapped_column(Integer)
    new_version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
