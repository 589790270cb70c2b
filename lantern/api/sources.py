"""Sources: list with training countdown, create, rotate the key, delete, debug view,
breakdowns."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from lantern.api.deps import API_DEPENDENCIES, EngineDep, SessionDep, WorkspaceDep
from lantern.api.schemas import (
    ERRORS,
    DebugOut,
    DimensionsIn,
    DimensionsOut,
    ErrorOut,
    Id,
    SourceIn,
    SourceKeyOut,
    SourceOut,
)
from lantern.breakdowns.read import dimensions_seen
from lantern.breakdowns.service import VALUES_PER_DIMENSION, add_default_dimensions, set_dimensions
from lantern.dashboard.debug import debug_view
from lantern.dashboard.overview import SourceOverview, source_overview, source_overviews
from lantern.db.base import utcnow
from lantern.workspaces.models import Source
from lantern.workspaces.service import create_source, delete_source, get_source, rotate_source_key

router = APIRouter(
    prefix="/api/v1/sources", tags=["sources"], responses=ERRORS, dependencies=API_DEPENDENCIES
)


def _with_key(source: Source, key: str) -> dict[str, Any]:
    return {
        "id": source.id,
        "name": source.name,
        "key_hint": source.key_hint,
        "created_at": source.created_at,
        "rotated_at": source.rotated_at,
        "api_key": key,
    }


@router.get("", response_model=list[SourceOut], summary="List sources")
def list_sources(workspace: WorkspaceDep, session: SessionDep) -> list[SourceOverview]:
    """The workspace's sources with their metrics, training countdown and recent events."""
    return source_overviews(session, workspace_id=workspace.id, now=utcnow())


@router.post(
    "",
    response_model=SourceKeyOut,
    status_code=201,
    summary="Create a source",
    responses={409: {"model": ErrorOut, "description": "The name is taken"}},
)
def add_source(body: SourceIn, workspace: WorkspaceDep, session: SessionDep) -> dict[str, Any]:
    """A new source and its API key, shown only in this response."""
    source, key = create_source(session, workspace=workspace, name=body.name)
    add_default_dimensions(session, source_id=source.id)
    return _with_key(source, key)


@router.get("/{source_id}", response_model=SourceOut, summary="One source")
def one_source(source_id: Id, workspace: WorkspaceDep, session: SessionDep) -> SourceOverview:
    """A source with its metrics, training countdown and recent events."""
    return source_overview(session, workspace_id=workspace.id, source_id=source_id, now=utcnow())


@router.post("/{source_id}/rotate", response_model=SourceKeyOut, summary="Rotate a source's key")
def rotate_key(source_id: Id, workspace: WorkspaceDep, session: SessionDep) -> dict[str, Any]:
    """Give the source a new API key; the old one stops working."""
    source = get_source(session, workspace_id=workspace.id, source_id=source_id)
    key = rotate_source_key(session, source=source)
    return _with_key(source, key)


@router.delete("/{source_id}", status_code=204, summary="Delete a source")
def remove_source(source_id: Id, workspace: WorkspaceDep, session: SessionDep) -> Response:
    """Delete the source with its metrics, buckets and insights; its key stops working."""
    source = get_source(session, workspace_id=workspace.id, source_id=source_id)
    delete_source(session, source=source)
    return Response(status_code=204)


@router.get("/{source_id}/debug", response_model=DebugOut, summary="A source's recent events")
def source_debug(
    source_id: Id, workspace: WorkspaceDep, session: SessionDep, engine: EngineDep
) -> dict[str, Any]:
    """The last events a source sent, accepted and rejected, per-minute counts, overflow."""
    get_source(session, workspace_id=workspace.id, source_id=source_id)
    with engine.connect() as connection:
        view = debug_view(connection, source_id=source_id, now=utcnow())
    return {"source_id": source_id, **view}


@router.get(
    "/{source_id}/breakdowns", response_model=DimensionsOut, summary="A source's breakdowns"
)
def read_breakdowns(source_id: Id, workspace: WorkspaceDep, session: SessionDep) -> dict[str, Any]:
    """The dimensions the source's metrics are split by, refused ones with their reason."""
    get_source(session, workspace_id=workspace.id, source_id=source_id)
    return _breakdowns(session, source_id)


@router.put(
    "/{source_id}/breakdowns", response_model=DimensionsOut, summary="Choose the breakdowns"
)
def write_breakdowns(
    source_id: Id, body: DimensionsIn, workspace: WorkspaceDep, session: SessionDep
) -> dict[str, Any]:
    """Set the whole list of dimensions; a name that looks personal is refused with a 400."""
    get_source(session, workspace_id=workspace.id, source_id=source_id)
    set_dimensions(session, source_id=source_id, names=body.dimensions)
    return _breakdowns(session, source_id)


def _breakdowns(session: SessionDep, source_id: int) -> dict[str, Any]:
    seen = dimensions_seen(session.connection(), source_id=source_id, now=utcnow())
    return {"source_id": source_id, "cap": VALUES_PER_DIMENSION, "dimensions": seen}
