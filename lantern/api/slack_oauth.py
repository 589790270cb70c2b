"""The end of "Add to Slack": Slack sends the browser back here with a code and our state."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lantern.api.deps import SessionDep, SettingsDep
from lantern.config import Settings
from lantern.errors import BadRequest
from lantern.notify.connection import finish_oauth

router = APIRouter(tags=["slack"])

CALLBACK_PATH = "/slack/oauth/callback"


def redirect_uri(settings: Settings) -> str:
    """The callback URL registered in the Slack app's OAuth settings."""
    return settings.resolved_public_url.rstrip("/") + CALLBACK_PATH


@router.get(CALLBACK_PATH, include_in_schema=False)
def slack_oauth_callback(
    session: SessionDep,
    settings: SettingsDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    """Store the installation, then go back to the settings page."""
    if error or not code or not state:
        reason = error or "Slack did not send a code"
        return HTMLResponse(_page(f"Slack was not connected: {reason}."), status_code=400)
    try:
        finish_oauth(
            session, state=state, code=code, settings=settings, redirect_uri=redirect_uri(settings)
        )
    except BadRequest as exc:
        return HTMLResponse(_page(f"Slack was not connected: {exc.detail}."), status_code=400)
    return RedirectResponse("/settings?slack=connected", status_code=303)


def _page(text: str) -> str:
    from html import escape

    return (
        "<!doctype html><meta charset=utf-8><title>Lantern</title>"
        f"<p>{escape(text)}</p><p><a href=/settings>Back to settings</a></p>"
    )
