"""From an outbox row to what Slack is sent: the message facts and, for alerts, the chart."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from lantern.config import Settings
from lantern.insights.models import Insight
from lantern.insights.service import insight_causes
from lantern.metrics.keys import label, measure, series_kind
from lantern.metrics.models import Metric
from lantern.metrics.service import load_series
from lantern.notify.interactivity import interactive
from lantern.notify.models import Notification, SlackAction, SlackConnection
from lantern.notify.types import ActionTaken, ChartData, FlagChangeCause, InsightMessage
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
    """The facts of the notification's insight, and a PNG chart when asked for."""
    insight = session.get(Insight, row.insight_id)
    assert insight is not None
    metric = session.get(Metric, insight.metric_id)
    assert metric is not None
    source = session.get(Source, metric.source_id)
    assert source is not None
    causes = insight_causes(session, insight_id=insight.id)
    message = InsightMessage(
        insight_id=insight.id,
        metric_name=metric.name,
        metric_kind=label(metric.kind, metric.name),
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
        related=_related(session, insight),
        chart_file=row.file_id if row.purpose == "alert" else None,
        owner=metric.owner,
        note=metric.note,
        interactive=interactive(session.get(SlackConnection, row.workspace_id), settings),
        actions=actions_taken(session, insight_id=insight.id),
    )
    if not with_chart:
        return message, None
    return message, _chart(session, insight, metric, message)


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


def _related(session: Session, insight: Insight) -> tuple[str, ...]:
    rows = session.execute(
        select(Metric.kind, Metric.name, Insight.relative_change, Insight.kind)
        .join(Metric, Metric.id == Insight.metric_id)
        .where(Insight.parent_id == insight.id)
        .order_by(Insight.id)
    ).all()
    return tuple(
        f"{name} ({label(kind, name)}) {'up' if change > 0 else 'down'} {abs(change):.0%}"
        if found != "outage"
        else f"{name} ({label(kind, name)}) went silent"
        for kind, name, change, found in rows
    )


def anomaly_span(start: datetime, last_hour: datetime) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The hours to shade: from the start to the end of the last anomalous hour's bucket.

    An hour's bucket runs to the next hour, so a spike or an outage detected in the hour it
    began is one hour wide, never a line.
    """
    first = pd.Timestamp(start)
    return first, max(pd.Timestamp(last_hour), first) + pd.Timedelta(hours=1)


def _chart(session: Session, insight: Insight, metric: Metric, message: InsightMessage) -> bytes:
    from lantern.detect import SeriesKind, decompose
    from lantern.notify.chart import render_chart

    end = pd.Timestamp(insight.detected_at) + pd.Timedelta(hours=1)
    kind: SeriesKind = series_kind(metric.kind)
    series = load_series(
        session.connection(),
        metric_ids=[metric.id],
        start=end - pd.Timedelta(days=35),
        end=end,
        kinds={metric.id: metric.kind},
    )[metric.id]
    fitted = decompose(series, kind=kind)
    window = series.index >= end - pd.Timedelta(days=CHART_DAYS)
    span = anomaly_span(insight.start, insight.ended_at or insight.detected_at)
    chart = ChartData(
        index=pd.DatetimeIndex(series.index[window]),
        observed=fitted.observed[window].to_numpy(),
        expected=fitted.expected[window].to_numpy(),
        lower=fitted.lower[window].to_numpy(),
        upper=fitted.upper[window].to_numpy(),
        anomaly_start=span[0],
        anomaly_end=span[1],
        unit=UNITS[message.measure],
    )
    title = f"{message.metric_name} ({message.metric_kind}, {message.source_name})"
    return render_chart(chart, title)
