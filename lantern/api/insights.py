"""Insights: the newsfeed, one insight in full, feedback, and muting from an insight."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from lantern.api.deps import API_DEPENDENCIES, SessionDep, WorkspaceDep
from lantern.api.schemas import (
    ERRORS,
    DetectorKind,
    FeedbackCount,
    FeedbackIn,
    Id,
    InsightOut,
    InsightPage,
    MetricOut,
    Moment,
    MuteIn,
)
from lantern.dashboard.feed import (
    InsightStatus,
    Page,
    feedback_by_kind,
    give_feedback,
    insight_detail,
    list_insights,
    silence_metric_of,
)
from lantern.dashboard.status import MetricItem
from lantern.db.base import utcnow

router = APIRouter(
    prefix="/api/v1/insights", tags=["insights"], responses=ERRORS, dependencies=API_DEPENDENCIES
)

OptionalId = Annotated[int | None, Query(ge=1, le=2_147_483_647)]


@router.get("", response_model=InsightPage, summary="The newsfeed of insights")
def newsfeed(
    workspace: WorkspaceDep,
    session: SessionDep,
    status: InsightStatus | None = None,
    kind: DetectorKind | None = None,
    source_id: OptionalId = None,
    metric_id: Annotated[
        int | None, Query(ge=1, le=2_147_483_647, description="every insight of this metric")
    ] = None,
    since: Annotated[Moment | None, Query(description="detected at or after")] = None,
    until: Annotated[Moment | None, Query(description="detected before")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, pattern=r"^[^\x00]*$", description="a next_cursor")
    ] = None,
) -> Page:
    """Insights newest first, a page at a time; grouped ones only under `metric_id`."""
    return list_insights(
        session,
        workspace_id=workspace.id,
        status=status,
        kind=kind,
        source_id=source_id,
        metric_id=metric_id,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@router.get("/feedback", response_model=list[FeedbackCount], summary="Feedback per detector kind")
def feedback_counts(workspace: WorkspaceDep, session: SessionDep) -> list[dict[str, Any]]:
    """How many insights of each detector kind were marked useful and not useful."""
    return feedback_by_kind(session, workspace_id=workspace.id)


@router.get("/{insight_id}", response_model=InsightOut, summary="One insight in full")
def one_insight(insight_id: Id, workspace: WorkspaceDep, session: SessionDep) -> dict[str, Any]:
    """An insight with its possible causes, grouped insights, notifications and metric."""
    return insight_detail(session, workspace_id=workspace.id, insight_id=insight_id, now=utcnow())


@router.post(
    "/{insight_id}/feedback", response_model=InsightOut, summary="Say whether it was useful"
)
def feedback(
    insight_id: Id, body: FeedbackIn, workspace: WorkspaceDep, session: SessionDep
) -> dict[str, Any]:
    """Record whether the insight was useful; the latest answer counts."""
    return give_feedback(
        session,
        workspace_id=workspace.id,
        insight_id=insight_id,
        useful=body.useful,
        now=utcnow(),
    )


@router.post("/{insight_id}/mute", response_model=MetricOut, summary="Mute or snooze its metric")
def mute(insight_id: Id, body: MuteIn, workspace: WorkspaceDep, session: SessionDep) -> MetricItem:
    """Mute the insight's metric (`until` null) or snooze it until a future time."""
    return silence_metric_of(
        session, workspace_id=workspace.id, insight_id=insight_id, until=body.until, now=utcnow()
    )
