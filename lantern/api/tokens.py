"""Workspace API tokens: list them (never the secret) and revoke one."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from lantern.api.deps import API_DEPENDENCIES, SessionDep, WorkspaceDep
from lantern.api.schemas import ERRORS, Id
from lantern.workspaces.models import ApiToken
from lantern.workspaces.service import list_api_tokens, revoke_api_token

router = APIRouter(
    prefix="/api/v1/tokens", tags=["tokens"], responses=ERRORS, dependencies=API_DEPENDENCIES
)


class TokenOut(BaseModel):
    id: int
    name: str = Field(description="what the token is for, as given at creation")
    created_at: datetime
    last_used_at: datetime | None = Field(description="to the minute; null if never used")


@router.get("", response_model=list[TokenOut], summary="List API tokens")
def list_tokens(workspace: WorkspaceDep, session: SessionDep) -> list[ApiToken]:
    """The workspace's API tokens: id, name, created and last used (never the token)."""
    return list_api_tokens(session, workspace_id=workspace.id)


@router.delete("/{token_id}", status_code=204, summary="Revoke an API token")
def revoke_token(token_id: Id, workspace: WorkspaceDep, session: SessionDep) -> Response:
    """Revoke one of the workspace's tokens: requests bearing it get 401 from now on."""
    revoke_api_token(session, workspace_id=workspace.id, token_id=token_id)
    return Response(status_code=204)
