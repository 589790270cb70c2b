"""The workspace's settings: its name, detection sensitivity and delivery policy."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from lantern.api.deps import API_DEPENDENCIES, SessionDep, WorkspaceDep
from lantern.api.schemas import ERRORS, SettingsIn, SettingsOut
from lantern.workspaces.models import Workspace
from lantern.workspaces.service import set_delivery, set_sensitivity

router = APIRouter(
    prefix="/api/v1/settings", tags=["settings"], responses=ERRORS, dependencies=API_DEPENDENCIES
)


def _out(workspace: Workspace) -> dict[str, Any]:
    return {
        "workspace": {"id": workspace.id, "name": workspace.name},
        "sensitivity": workspace.sensitivity,
        "delivery": {
            "time_zone": workspace.time_zone,
            "quiet_start": workspace.quiet_start,
            "quiet_end": workspace.quiet_end,
            "quiet_holds_outages": workspace.quiet_holds_outages,
            "quiet_hours_delivery": workspace.quiet_hours_delivery,
            "digest_hour": workspace.digest_hour,
        },
    }


@router.get("", response_model=SettingsOut, summary="The workspace's settings")
def read_settings(workspace: WorkspaceDep) -> dict[str, Any]:
    """The workspace and how readily its metrics raise insights."""
    return _out(workspace)


@router.put("", response_model=SettingsOut, summary="Change the sensitivity or quiet hours")
def write_settings(
    body: SettingsIn, workspace: WorkspaceDep, session: SessionDep
) -> dict[str, Any]:
    """Set what is given: the sensitivity (low, medium, high; the next hourly pass scores
    with it), the delivery policy (time zone and quiet hours, applied at the next flush)."""
    if body.sensitivity is not None:
        set_sensitivity(session, workspace=workspace, sensitivity=body.sensitivity)
    if body.delivery is not None:
        set_delivery(
            session,
            workspace=workspace,
            time_zone=body.delivery.time_zone,
            quiet_start=body.delivery.quiet_start,
            quiet_end=body.delivery.quiet_end,
            quiet_holds_outages=body.delivery.quiet_holds_outages,
            quiet_hours_delivery=body.delivery.quiet_hours_delivery,
            digest_hour=body.delivery.digest_hour,
        )
    return _out(workspace)
