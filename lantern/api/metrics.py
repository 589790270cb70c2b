"""Metrics: list and filter, one metric, its chart, muting or snoozing it, and alerts per
breakdown value."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from lantern.api.deps import API_DEPENDENCIES, SessionDep, WorkspaceDep
from lantern.api.schemas import (
    ERRORS,
    ErrorOut,
    Id,
    MetricOut,
    MetricPageOut,
    Moment,
    OwnerIn,
    SeriesOut,
    ValueAlertsIn,
    ValueAlertsOut,
    WatchIn,
)
from lantern.dashboard.chart import Chart, Step, metric_chart
from lantern.dashboard.status import (
    MAX_PAGE_LIMIT,
    PAGE_LIMIT,
    MetricItem,
    MetricPage,
    Status,
    get_metric_item,
    metric_page,
    reset_feedback,
    set_owner,
    watch_metric,
)
from lantern.dashboard.value_alerts import ValueAlerts, set_value_alerts, value_alerts
from lantern.db.base import utcnow

router = APIRouter(
    prefix="/api/v1/metrics", tags=["metrics"], responses=ERRORS, dependencies=API_DEPENDENCIES
)


@router.get("", response_model=MetricPageOut, summary="List metrics")
def list_metrics(
    workspace: WorkspaceDep,
    session: SessionDep,
    source_id: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
    status: Status | None = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=r"^[^\x00]*$",
            description="text in the label or the source name, in any case",
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_LIMIT, description="metrics a page")
    ] = PAGE_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=200, pattern=r"^[^\x00]*$", description="a next_cursor")
    ] = None,
) -> MetricPage:
    """The workspace's metrics with status, training countdown, latest value and volume, by
    source and label, a page at a time; `total` counts every metric the filters match."""
    return metric_page(
        session,
        workspace_id=workspace.id,
        now=utcnow(),
        source_id=source_id,
        status=status,
        q=q,
        limit=limit,
        cursor=cursor,
    )


@router.get("/{metric_id}", response_model=MetricOut, summary="One metric")
def one_metric(metric_id: Id, workspace: WorkspaceDep, session: SessionDep) -> MetricItem:
    """A metric with its status, training countdown, latest value and volume."""
    return get_metric_item(session, workspace_id=workspace.id, metric_id=metric_id, now=utcnow())


@router.get("/{metric_id}/series", response_model=SeriesOut, summary="A metric's chart")
def metric_series(
    metric_id: Id,
    workspace: WorkspaceDep,
    session: SessionDep,
    start: Annotated[Moment | None, Query(description="default: end - 7 days")] = None,
    end: Annotated[Moment | None, Query(description="default: now, to the hour")] = None,
    step: Annotated[
        Step,
        Query(description="hour, or day: each day's hourly figures averaged (long ranges)"),
    ] = "hour",
) -> Chart:
    """Observed against expected with its band (none in training), and anomalies.

    A range ending after the last closed hour ends with the hour under way, marked partial.
    """
    return metric_chart(
        session,
        workspace_id=workspace.id,
        metric_id=metric_id,
        start=start,
        end=end,
        sensitivity=workspace.sensitivity,
        now=utcnow(),
        step=step,
    )


@router.put("/{metric_id}/watch", response_model=MetricOut, summary="Mute or snooze a metric")
def watch(metric_id: Id, body: WatchIn, workspace: WorkspaceDep, session: SessionDep) -> MetricItem:
    """Set whether the metric is muted and until when it is snoozed (still scored)."""
    return watch_metric(
        session,
        workspace_id=workspace.id,
        metric_id=metric_id,
        muted=body.muted,
        snoozed_until=body.snoozed_until,
        now=utcnow(),
    )


@router.put("/{metric_id}/owner", response_model=MetricOut, summary="Who its alerts mention")
def owner(metric_id: Id, body: OwnerIn, workspace: WorkspaceDep, session: SessionDep) -> MetricItem:
    """Set the Slack user or group its alerts mention, and a note of what to check first."""
    return set_owner(
        session,
        workspace_id=workspace.id,
        metric_id=metric_id,
        owner=body.owner,
        note=body.note,
        now=utcnow(),
    )


@router.delete(
    "/{metric_id}/feedback", response_model=MetricOut, summary="Forget the team's feedback"
)
def forget_feedback(metric_id: Id, workspace: WorkspaceDep, session: SessionDep) -> MetricItem:
    """Forget every "useful" / "not useful" said of the metric's insights: its bars go back
    to the workspace's sensitivity at the next hourly pass."""
    return reset_feedback(session, workspace_id=workspace.id, metric_id=metric_id, now=utcnow())


@router.get(
    "/{metric_id}/breakdown-alerts",
    response_model=ValueAlertsOut,
    summary="A metric's alerts per breakdown value",
)
def read_value_alerts(metric_id: Id, workspace: WorkspaceDep, session: SessionDep) -> ValueAlerts:
    """The source's dimensions, which of them have each value watched as a metric, and
    the metrics of those values."""
    return value_alerts(session, workspace_id=workspace.id, metric_id=metric_id, now=utcnow())


@router.put(
    "/{metric_id}/breakdown-alerts",
    response_model=ValueAlertsOut,
    summary="Choose the dimensions whose values are watched",
    responses={400: {"model": ErrorOut, "description": "A dimension or a metric not split"}},
)
def write_value_alerts(
    metric_id: Id, body: ValueAlertsIn, workspace: WorkspaceDep, session: SessionDep
) -> ValueAlerts:
    """Set the whole list: each value of each dimension gets a metric of its own, trained
    on the history its breakdowns hold; a dimension left out deletes its values' metrics."""
    return set_value_alerts(
        session,
        workspace_id=workspace.id,
        metric_id=metric_id,
        names=body.dimensions,
        now=utcnow(),
    )
