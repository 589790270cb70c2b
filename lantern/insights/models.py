"""Tables for insights, their possible causes, detector state, what the detector expected of
each hour it judged, and hourly detection runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lantern.db.base import Base, UTCDateTime, utcnow


class Insight(Base):
    """One anomaly episode of one metric: open → updated → resolved, or accepted."""

    __tablename__ = "insights"
    __table_args__ = (
        Index("ix_insights_workspace_detected", "workspace_id", "detected_at"),
        UniqueConstraint("metric_id", "kind", "direction", "start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    metric_id: Mapped[int] = mapped_column(ForeignKey("metrics.id", ondelete="CASCADE"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="open")
    severity: Mapped[str] = mapped_column(String(8))
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    observed: Mapped[float] = mapped_column(Float)
    expected: Mapped[float] = mapped_column(Float)
    lower: Mapped[float] = mapped_column(Float)
    upper: Mapped[float] = mapped_column(Float)
    relative_change: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    muted: Mapped[bool] = mapped_column(Boolean, default=False)
    # Insights of one source that open in the same hour in the same direction are one
    # story: the first is told, the others point at it and are listed in its message.
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("insights.id", ondelete="SET NULL"), default=None
    )
    useful: Mapped[bool | None] = mapped_column(Boolean, default=None)
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The breakdown values that explain the change, or that it is broad, as it stood when
    # the insight opened (`lantern.breakdowns.rootcause`); None without breakdown data.
    root_cause: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Why an outage or a drop is told as a tracking break (kind "tracking_break"): the
    # kind the detector found, what kept sending, the name that may have replaced the
    # event (`lantern.insights.tracking`); None for every other insight.
    tracking_break: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class InsightCause(Base):
    """A flag change shortly before an insight's start: a possible cause."""

    __tablename__ = "insight_causes"

    insight_id: Mapped[int] = mapped_column(
        ForeignKey("insights.id", ondelete="CASCADE"), primary_key=True
    )
    flag_change_id: Mapped[int] = mapped_column(
        ForeignKey("flag_changes.id", ondelete="CASCADE"), primary_key=True
    )


class MetricWatch(Base):
    """How a metric is watched: muted, snoozed, and the detector's saved state."""

    __tablename__ = "metric_watch"

    metric_id: Mapped[int] = mapped_column(
        ForeignKey("metrics.id", ondelete="CASCADE"), primary_key=True
    )
    muted: Mapped[bool] = mapped_column(Boolean, default=False)
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    state: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    scored_hour: Mapped[int | None] = mapped_column(Integer, default=None)


class HourExpectation(Base):
    """What the detector expected of one metric's hour when the hourly pass judged it.

    `hour` counts hours since the Unix epoch, as a bucket's does; `expected` is in the
    metric's own unit, and `lower`/`upper` are the band insights report (three sigmas).
    NULL where the model gave no finite value. Written once, by the pass that judged the
    hour, and read by every chart (`lantern.insights.expectations`).
    """

    __tablename__ = "expectations"
    # Clustered on the primary key on SQLite, as buckets are: one B-tree to write.
    __table_args__ = {"sqlite_with_rowid": False}

    metric_id: Mapped[int] = mapped_column(
        ForeignKey("metrics.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    expected: Mapped[float | None] = mapped_column(Float, default=None)
    lower: Mapped[float | None] = mapped_column(Float, default=None)
    upper: Mapped[float | None] = mapped_column(Float, default=None)


class DetectionRun(Base):
    """One hourly detection pass; the row is the claim that makes it run exactly once."""

    __tablename__ = "detection_runs"

    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    claimed_by: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    metrics: Mapped[int] = mapped_column(Integer, default=0)
    insights: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
