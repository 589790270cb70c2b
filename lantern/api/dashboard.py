"""The dashboard API under /api/v1 (authenticated by a workspace API token)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from lantern.api.deps import EngineDep, SessionDep, WorkspaceDep
from lantern.db.base import utcnow
from lantern.ingest.debug import debug_view
from lantern.workspaces.service import get_source

router = APIRouter(prefix="/api/v1", tags=["dashboard"])


class DebugMinuteOut(BaseModel):
    minute: datetime
    accepted: int
    rejected: int
    duplicates: int
    over_cap: int


class DebugOut(BaseModel):
    source_id: int
    accepted: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    rejection_reasons: dict[str, int]
    per_minute: list[DebugMinuteOut]
    over_cap_latest_hour: int


@router.get("/sources/{source_id}/debug", response_model=DebugOut)
def source_debug(
    source_id: int, workspace: WorkspaceDep, session: SessionDep, engine: EngineDep
) -> dict[str, Any]:
    """The last events a source sent, accepted and rejected, and per-minute counts."""
    get_source(session, workspace_id=workspace.id, source_id=source_id)
    with engine.connect() as connection:
        view = debug_view(connection, source_id=source_id, now=utcnow())
    return {"source_id": source_id, **view}
