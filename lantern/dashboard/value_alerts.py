"""A metric's alerts per breakdown value as the dashboard shows and sets them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from lantern.breakdowns.alerts import (
    AlertDimension,
    alert_dimensions,
    set_breakdown_alerts,
    unavailable,
    value_metric_ids,
)
from lantern.dashboard.status import MetricItem, get_metric_item, metric_items
from lantern.metrics.models import Metric


@dataclass(frozen=True, slots=True)
class ValueAlerts:
    """Which dimensions' values of a metric are watched, and the metrics of those values."""

    metric_id: int
    unavailable: str | None  # why the metric cannot be split; None when it can
    dimensions: list[AlertDimension]
    metrics: list[MetricItem]


def value_alerts(
    session: Session, *, workspace_id: int, metric_id: int, now: datetime
) -> ValueAlerts:
    """A metric's alerts per value: its source's dimensions, and its values' metrics."""
    get_metric_item(session, workspace_id=workspace_id, metric_id=metric_id, now=now)
    metric = session.get(Metric, metric_id)
    assert metric is not None
    reason = unavailable(metric.kind)
    ids = value_metric_ids(session, parent_id=metric_id)
    found = {
        item.id: item
        for item in metric_items(session, workspace_id=workspace_id, now=now, metric_ids=ids)
    }
    return ValueAlerts(
        metric_id=metric_id,
        unavailable=reason,
        dimensions=[] if reason is not None else alert_dimensions(session, metric=metric),
        metrics=[found[i] for i in ids if i in found],
    )


def set_value_alerts(
    session: Session, *, workspace_id: int, metric_id: int, names: Sequence[str], now: datetime
) -> ValueAlerts:
    """Watch the values of `names` of one of the workspace's metrics, and only those."""
    get_metric_item(session, workspace_id=workspace_id, metric_id=metric_id, now=now)
    metric = session.get(Metric, metric_id)
    assert metric is not None
    set_breakdown_alerts(session, metric=metric, names=names)
    return value_alerts(session, workspace_id=workspace_id, metric_id=metric_id, now=now)
