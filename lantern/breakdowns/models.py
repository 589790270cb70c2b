"""Tables for breakdowns: a source's dimensions, their values, and hourly counts per value."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lantern.db.base import Base, UTCDateTime, utcnow


class BreakdownDimension(Base):
    """A dimension a source's metrics are split by: a default, or `properties.<key>`.

    `refused` says why it no longer records (its values looked personal); its values and
    counts are deleted when it is refused, and it records nothing while it stays so.
    """

    __tablename__ = "breakdown_dimensions"
    __table_args__ = (UniqueConstraint("source_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    refused: Mapped[str | None] = mapped_column(String(300), default=None)
    refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class BreakdownValue(Base):
    """A value of a dimension that has counts of its own: the first ones seen, up to the cap.

    The empty string is the dimension's "other": every value seen once the cap was full.
    """

    __tablename__ = "breakdown_values"
    __table_args__ = (UniqueConstraint("dimension_id", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dimension_id: Mapped[int] = mapped_column(
        ForeignKey("breakdown_dimensions.id", ondelete="CASCADE")
    )
    value: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BreakdownBucket(Base):
    """One metric's events with one dimension value in one UTC hour (epoch hours).

    `count` is the events; `valued` those of them that carried a value and `value_sum`
    its sum. Value and average metrics have no rows of their own: their event's count
    metric (a track event, a LaunchDarkly experiment) carries their count and sum.
    """

    __tablename__ = "breakdown_buckets"
    # Clustered on the primary key on SQLite: one B-tree to write instead of two.
    __table_args__ = {"sqlite_with_rowid": False}

    # Keyed by value first: a dimension's rows (read per value, deleted with a refused
    # dimension's values, expired value by value) are reached through the primary key.
    value_id: Mapped[int] = mapped_column(
        ForeignKey("breakdown_values.id", ondelete="CASCADE"), primary_key=True
    )
    metric_id: Mapped[int] = mapped_column(
        ForeignKey("metrics.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    valued: Mapped[int] = mapped_column(BigInteger, default=0)
    value_sum: Mapped[float] = mapped_column(Float, default=0.0)


class BreakdownAlert(Base):
    """A metric whose values of one dimension are each watched as a metric of their own.

    Opt-in, per metric and dimension (`lantern.breakdowns.alerts`): each value the
    dimension counts on its own (not "other") gets a metric of kind `breakdown`, trained,
    scored and told like any metric, so a value that drops is caught even when its
    metric's total barely moves.
    """

    __tablename__ = "breakdown_alerts"
    __table_args__ = (UniqueConstraint("metric_id", "dimension_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    metric_id: Mapped[int] = mapped_column(ForeignKey("metrics.id", ondelete="CASCADE"))
    dimension_id: Mapped[int] = mapped_column(
        ForeignKey("breakdown_dimensions.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
