"""Slack for a workspace: status, "Add to Slack", a pasted token, a test message, the callback."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from lantern.accounts.service import session_for_cookie
from lantern.api.deps import (
    API_DEPENDENCIES,
    SESSION_COOKIE,
    SessionDep,
    SettingsDep,
    WorkspaceDep,
)
from lantern.api.schemas import ERRORS, ErrorOut, Strict
from lantern.config import Settings
from lantern.errors import BadRequest, Unauthorized, Unreachable
from lantern.notify.connection import (
    connect_with_token,
    connection_status,
    finish_oauth,
    send_test_message,
    start_oauth,
)

router = APIRouter(
    tags=["slack"],
    dependencies=API_DEPENDENCIES,
    responses={
        **ERRORS,
        400: {"model": ErrorOut, "description": "Slack refused, or is not set up for this"},
        502: {"model": ErrorOut, "description": "Slack could not be reached; nothing changed"},
    },
)


class SlackStatus(BaseModel):
    connected: bool
    buttons: bool = Field(
        description="alerts carry Useful, Not useful, Mute and Snooze buttons: Lantern "
        "knows the signing secret that checks their clicks"
    )
    interactivity_url: str = Field(
        description="the Request URL to enter under Interactivity & Shortcuts in the Slack app"
    )
    public_url_warning: str | None = Field(
        description="set while LANTERN_PUBLIC_URL is unset: links and buttons cannot work"
    )
    method: str | None
    channel: str | None = Field(description="Slack's id of the channel insights go to")
    channel_name: str | None
    team_name: str | None
    installed_at: datetime | None
    error: str | None = Field(description="what stops delivery now, and how to fix it")
    add_to_slack_available: bool
    failed_notifications: int = Field(description="notifications given up")
    waiting_notifications: int = Field(description="notifications being retried, with a reason")
    paused_until: datetime | None = Field(description="rate-limited or unreachable until then")
    last_failure: str | None


class InstallUrl(BaseModel):
    url: str


class TokenIn(Strict):
    bot_token: str = Field(min_length=6, max_length=300, description="xoxb-... bot token")
    channel: str = Field(min_length=1, max_length=100, description="channel name or id")
    signing_secret: str | None = Field(
        default=None,
        max_length=200,
        description="the app's signing secret (Basic Information): enables the alert buttons",
    )


@router.get("/api/v1/slack", response_model=SlackStatus, summary="Slack connection status")
def slack_status(workspace: WorkspaceDep, session: SessionDep, settings: SettingsDep) -> dict:
    """Whether Slack is connected, where insights go, and what keeps notifications waiting."""
    return connection_status(session, workspace_id=workspace.id, settings=settings)


@router.post("/api/v1/slack/install", response_model=InstallUrl, summary="Start Add to Slack")
def slack_install(
    request: Request, workspace: WorkspaceDep, session: SessionDep, settings: SettingsDep
) -> dict:
    """The "Add to Slack" URL for this logged-in browser (its one-time state included)."""
    url = start_oauth(
        session,
        workspace_id=workspace.id,
        settings=settings,
        redirect_uri=redirect_uri(settings),
        browser_session=_browser_session(request),
    )
    return {"url": url}


def _browser_session(request: Request) -> str:
    """The session cookie of a logged-in browser starting Add to Slack (never a script's)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if request.headers.get("authorization") or not cookie:
        raise BadRequest(
            "Add to Slack is finished by the browser that starts it: press the button in "
            "the dashboard's Settings while logged in; a script can connect a bot token "
            "with PUT /api/v1/slack/token"
        )
    return cookie


@router.put("/api/v1/slack/token", response_model=SlackStatus, summary="Connect with a bot token")
def slack_token(
    body: TokenIn, workspace: WorkspaceDep, session: SessionDep, settings: SettingsDep
) -> dict:
    """Connect with a pasted bot token and channel (checked with Slack first)."""
    connect_with_token(
        session,
        workspace_id=workspace.id,
        bot_token=body.bot_token,
        channel=body.channel,
        settings=settings,
        signing_secret=body.signing_secret,
    )
    return connection_status(session, workspace_id=workspace.id, settings=settings)


@router.post("/api/v1/slack/test", status_code=204, summary="Send a test message")
def slack_test(workspace: WorkspaceDep, session: SessionDep, settings: SettingsDep) -> Response:
    """Post a test message to the workspace's channel."""
    send_test_message(session, workspace_id=workspace.id, settings=settings)
    return Response(status_code=204)


CALLBACK_PATH = "/slack/oauth/callback"


def redirect_uri(settings: Settings) -> str:
    """The callback URL registered in the Slack app's OAuth settings."""
    return settings.resolved_public_url.rstrip("/") + CALLBACK_PATH


@router.get(CALLBACK_PATH, include_in_schema=False)
def slack_oauth_callback(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    """Store the installation, if this browser's session started it; back to settings."""
    if error or not code or not state:
        reason = error or "Slack did not send a code"
        return HTMLResponse(_page(f"Slack was not connected: {reason}."), status_code=400)
    cookie = request.cookies.get(SESSION_COOKIE)
    try:
        if not cookie:
            raise BadRequest("log in to Lantern in this browser, then start again from Settings")
        session_for_cookie(session, token=cookie)
        finish_oauth(
            session,
            state=state,
            code=code,
            settings=settings,
            redirect_uri=redirect_uri(settings),
            browser_session=cookie,
        )
    except (BadRequest, Unauthorized, Unreachable) as exc:
        status = 502 if isinstance(exc, Unreachable) else 400
        return HTMLResponse(_page(f"Slack was not connected: {exc.detail}."), status_code=status)
    return RedirectResponse("/settings?slack=connected", status_code=303)


def _page(text: str) -> str:
    from html import escape

    return (
        "<!doctype html><meta charset=utf-8><title>Lantern</title>"
        f"<p>{escape(text)}</p><p><a href=/settings>Back to settings</a></p>"
    )
