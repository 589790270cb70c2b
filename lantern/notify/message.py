"""From an outbox row to what Slack is sent: the message facts and, for alerts, the chart."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from lantern.config import Settings
from lantern.detect.kinds import DetectionKind, phrase
from lantern.insights.incidents import story_incident
from lantern.insights.models import Insight
from lantern.insights.service import insight_causes
from lantern.insights.tracking import describe
from lantern.metrics.keys import label, measure
from lantern.metrics.models import Metric
from lantern.metrics.service import epoch_hour, hour_index, load_series
from lantern.notify.blocks import stopped
from lantern.notify.interactivity import interactive
from lantern.notify.models import Notification, SlackAction, SlackConnection
from lantern.notify.types import (
    ActionTaken,
    ChartData,
    FlagChangeCause,
    InsightMessage,
    SpanFigures,
)
from lantern.workspaces.models import Source

CHART_DAYS = 7
# The chart's y axis, by what an hour of the metric holds.
UNITS = {
    "count": "events per hour",
    "sum": "sum of values per hour",
    "average": "average value per hour",
}


def build_message(
    session: Session, row: Notification, settings: Settings, *, with_chart: bool
) -> tuple[InsightMessage, bytes | None]:
    """The facts of the notification's insight, and a PNG chart when asked for.

    An alert's figures (its start, observed and expected, the range) and its chart come
    from the same data (`span_figures`), and only causes before the end of the first hour
    that moved are listed (`possible_causes`).
    """
    insight = session.get(Insight, row.insight_id)
    assert insight is not None
    metric = session.get(Metric, insight.metric_id)
    assert metric is not None
    source = session.get(Source, metric.source_id)
    assert source is not None
    fitted = alert_series(session, insight, metric) if row.purpose in ("alert", "chart") else None
    span = None
    if fitted is not None:
        span = span_figures(
            *fitted,
            start=insight.start,
            detected_at=insight.detected_at,
            direction=insight.direction,
        )
    start = span.start if span is not None else insight.start
    causes = possible_causes(insight_causes(session, insight_id=insight.id), start=start)
    incident = story_incident(session, insight)
    related = _related(session, insight, incident=incident is not None)
    message = InsightMessage(
        insight_id=insight.id,
        metric_name=metric.name,
        metric_kind=kind_label(session, metric),
        measure=measure(metric.kind),
        source_name=source.name,
        kind=insight.kind,
        direction=insight.direction,
        relative_change=insight.relative_change,
        observed=insight.observed,
        expected=insight.expected,
        lower=insight.lower,
        upper=insight.upper,
        start=insight.start,
        detected_at=insight.detected_at,
        status=insight.status,
        severity=insight.severity,
        score=insight.score,
        causes=tuple(
            FlagChangeCause(flag_key=k, old_version=o, new_version=n, changed_at=at)
            for k, o, n, at in causes
        ),
        dashboard_url=f"{settings.resolved_public_url.rstrip('/')}/insights/{insight.id}",
        ended_at=insight.ended_at,
        related=tuple(line for _, line in related),
        related_by_source=_by_source(related),
        chart_file=row.file_id if row.purpose == "alert" else None,
        owner=metric.owner,
        note=metric.note,
        span=span,
        tracking_break=(
            None if insight.tracking_break is None else describe(insight.tracking_break)
        ),
        interactive=interactive(session.get(SlackConnection, row.workspace_id), settings),
        actions=actions_taken(session, insight_id=insight.id),
        root_cause=(insight.root_cause or {}).get("text"),
        incident=incident,
    )
    if not with_chart or fitted is None:
        return message, None
    return message, _chart(insight, fitted, message)


def kind_label(session: Session, metric: Metric) -> str:
    """What kind of metric it is, as a person reads it ("track event"); a breakdown value's
    metric is its parent's kind: "Checkout — OS Android (track event)"."""
    if metric.parent_id is not None:
        parent = session.get(Metric, metric.parent_id)
        if parent is not None:
            return label(parent.kind, parent.name)
    return label(metric.kind, metric.name)


def possible_causes(causes: Sequence[Any], *, start: datetime) -> list[Any]:
    """The flag changes that may have caused a move that began in the hour `start`.

    A change after the end of that hour came after the move: it is not listed, so no
    cause shown ever postdates the stated start's hour.
    """
    end = pd.Timestamp(start) + pd.Timedelta(hours=1)
    return [cause for cause in causes if pd.Timestamp(cause[3]) < end]


def span_figures(
    index: pd.DatetimeIndex,
    observed: np.ndarray,
    expected: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    start: datetime,
    detected_at: datetime,
    direction: str,
) -> SpanFigures | None:
    """The alert's figures over one span: where the move began, and what it was there.

    The start is the detector's estimate moved on to the first hour, up to the detection,
    whose observation is outside the band in the insight's direction (the detector may
    date a drop an hour or two early; the chart shows when it began). Observed and
    expected are averaged over the same hours, from that start to the detection, and the
    range is the one for such an average: one hour's band narrowed by the square root of
    the hours (independent hours), so the figures never contradict one another.
    """
    first, last = pd.Timestamp(start), pd.Timestamp(detected_at)
    inside = (index >= first) & (index <= last)
    if not inside.any():
        return None
    seen, wanted = observed[inside], expected[inside]
    low, high = lower[inside], upper[inside]
    off = seen < low if direction == "down" else seen > high
    off &= np.isfinite(seen)
    begin = int(np.argmax(off)) if off.any() else 0
    seen, wanted, low, high = seen[begin:], wanted[begin:], low[begin:], high[begin:]
    valid = np.isfinite(seen) & np.isfinite(wanted)
    if not valid.any():
        return None
    hours = int(valid.sum())
    mean_expected = float(np.mean(wanted[valid]))
    hour_lower, hour_upper = float(np.mean(low[valid])), float(np.mean(high[valid]))
    narrow = 1 / np.sqrt(hours)
    return SpanFigures(
        start=pd.Timestamp(index[inside][begin]).to_pydatetime(),
        hours=hours,
        observed=float(np.mean(seen[valid])),
        expected=mean_expected,
        lower=mean_expected - (mean_expected - hour_lower) * narrow,
        upper=mean_expected + (hour_upper - mean_expected) * narrow,
        hour_lower=hour_lower,
        hour_upper=hour_upper,
    )


def actions_taken(session: Session, *, insight_id: int) -> tuple[ActionTaken, ...]:
    """The buttons clicked on the insight's alert, oldest first."""
    rows = session.scalars(
        select(SlackAction).where(SlackAction.insight_id == insight_id).order_by(SlackAction.id)
    ).all()
    return tuple(
        ActionTaken(
            action=row.action, slack_user_id=row.slack_user_id, at=row.created_at, until=row.until
        )
        for row in rows
    )


def _related(session: Session, insight: Insight, *, incident: bool) -> tuple[tuple[str, str], ...]:
    """The insights of the story the insight leads, oldest first, each as its source's name
    and a line: "Checkout (track event) down 40%"; an incident's without the metrics of
    breakdown values (it counts the sources' metrics, and each value moved with its own)."""
    parent = aliased(Metric)  # a breakdown value's metric reads as its parent's kind
    query = (
        select(
            Source.name,
            Metric.name,
            func.coalesce(parent.kind, Metric.kind),
            func.coalesce(parent.name, Metric.name),
            Insight.relative_change,
            Insight.kind,
        )
        .join(Metric, Metric.id == Insight.metric_id)
        .join(Source, Source.id == Metric.source_id)
        .outerjoin(parent, parent.id == Metric.parent_id)
        .where(Insight.parent_id == insight.id)
        .order_by(Insight.id)
    )
    if incident:
        query = query.where(Metric.parent_id.is_(None))
    rows = session.execute(query).all()
    return tuple(
        (
            source,
            f"{name} ({label(kind, of)}) {phrase(found)}"
            if found == DetectionKind.OUTAGE
            or (found == DetectionKind.TRACKING_BREAK and stopped(change))
            else f"{name} ({label(kind, of)}) {'up' if change > 0 else 'down'} {abs(change):.0%}",
        )
        for source, name, kind, of, change, found in rows
    )


def _by_source(related: tuple[tuple[str, str], ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The story's lines grouped by source, in the order each source first comes."""
    grouped: dict[str, list[str]] = {}
    for source, line in related:
        grouped.setdefault(source, []).append(line)
    return tuple((source, tuple(lines)) for source, lines in grouped.items())


def anomaly_span(start: datetime, last_hour: datetime) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The hours to shade: from the start to the end of the last anomalous hour's bucket.

    An hour's bucket runs to the next hour, so a spike or an outage detected in the hour it
    began is one hour wide, never a line.
    """
    first = pd.Timestamp(start)
    return first, max(pd.Timestamp(last_hour), first) + pd.Timedelta(hours=1)


Fitted = tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def alert_series(session: Session, insight: Insight, metric: Metric) -> Fitted:
    """The chart's last days: the index, observed, and what the detector expected.

    The expectation is the one the hourly pass stored when it judged each hour, read as
    the dashboard's chart reads it (`insights.expectations.expected_band`, which replays
    the detector for hours without a stored row), so the alert's chart, its figures, the
    dashboard and the verdict agree. A series the detector cannot fit has no band.
    """
    from lantern.insights.expectations import expected_band
    from lantern.workspaces.models import Workspace

    end = pd.Timestamp(insight.detected_at) + pd.Timedelta(hours=1)
    first = metric.first_hour
    begin = end - pd.Timedelta(days=CHART_DAYS)
    if first is None:
        first = epoch_hour(begin)
    begin = max(begin, hour_index(first))
    connection = session.connection()
    series = load_series(
        connection,
        metric_ids=[metric.id],
        start=begin,
        end=end,
        kinds={metric.id: metric.kind},
    )[metric.id]
    workspace = session.get(Workspace, insight.workspace_id)
    band = expected_band(
        connection,
        metric_id=metric.id,
        metric_kind=metric.kind,
        first_hour=first,
        start=begin,
        stop=end,
        sensitivity=workspace.sensitivity if workspace else "medium",
    )
    expected, lower, upper = (part.to_numpy(dtype=float) for part in band)
    return (
        pd.DatetimeIndex(series.index),
        series.to_numpy(dtype=float),
        expected,
        lower,
        upper,
    )


def _chart(insight: Insight, fitted: Fitted, message: InsightMessage) -> bytes:
    from lantern.notify.chart import render_chart

    start = message.span.start if message.span is not None else insight.start
    span = anomaly_span(start, insight.ended_at or insight.detected_at)
    index, observed, expected, lower, upper = fitted
    chart = ChartData(
        index=index,
        observed=observed,
        expected=expected,
        lower=lower,
        upper=upper,
        anomaly_start=span[0],
        anomaly_end=span[1],
        unit=UNITS[message.measure],
    )
    title = f"{message.metric_name} ({message.metric_kind}, {message.source_name})"
    return render_chart(chart, title)
