"""The workspace's settings: its name and detection sensitivity."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from lantern.api.deps import API_DEPENDENCIES, SessionDep, WorkspaceDep
from lantern.api.schemas import ERRORS, SettingsIn, SettingsOut
from lantern.workspaces.models import Workspace
from lantern.workspaces.service import set_sensitivity

router = APIRouter(
    prefix="/api/v1/settings", tags=["settings"], responses=ERRORS, dependencies=API_DEPENDENCIES
)


def _out(workspace: Workspace) -> dict[str, Any]:
    return {
        "workspace": {"id": workspace.id, "name": workspace.name},
        "sensitivity": workspace.sensitivity,
    }


@router.get("", response_model=SettingsOut, summary="The workspace's settings")
def read_settings(workspace: WorkspaceDep) -> dict[str, Any]:
    """The workspace and how readily its metrics raise insights."""
    return _out(workspace)


@router.put("", response_model=SettingsOut, summary="Change the sensitivity")
def write_settings(
    body: SettingsIn, workspace: WorkspaceDep, session: SessionDep
) -> dict[str, Any]:
    """Set the sensitivity (low, medium, high); the next hourly pass scores with it."""
    return _out(set_sensitivity(session, workspace=workspace, sensitivity=body.sensitivity))
