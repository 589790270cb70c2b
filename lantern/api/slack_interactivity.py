"""Slack's interactivity endpoint: the buttons of alerts, checked, applied, and shown done."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import Response

from lantern.api.deps import EngineDep, SessionDep, SettingsDep
from lantern.api.schemas import ErrorOut
from lantern.dashboard.slack_actions import (
    apply_click,
    candidate_secrets,
    parse_click,
    refresh_alert,
)
from lantern.db.base import utcnow
from lantern.errors import BadRequest, Unauthorized
from lantern.notify.interactivity import INTERACTIVITY_PATH, signed_with

router = APIRouter(tags=["slack"])

# Slack's interaction payloads are a few kilobytes; anything far larger is not one.
MAX_BODY = 1_000_000


async def raw_body(request: Request) -> bytes:
    """The request's bytes as sent: the signature is over them, not over a parsed form."""
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY:
        raise BadRequest("an interaction payload is at most 1 MB", error="too_large")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise BadRequest("an interaction payload is at most 1 MB", error="too_large")
    return body


@router.post(
    INTERACTIVITY_PATH,
    status_code=200,
    summary="Slack's button clicks (the app's Interactivity Request URL)",
    responses={
        400: {"model": ErrorOut, "description": "not a Slack interaction payload"},
        401: {"model": ErrorOut, "description": "not signed by a connected Slack app"},
        403: {"model": ErrorOut, "description": "another team's or app's click: ignored"},
    },
)
def slack_interactivity(
    request: Request,
    body: Annotated[bytes, Depends(raw_body)],
    session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
    background: BackgroundTasks,
) -> Response:
    """Check Slack's signature, then do what the button says, as the dashboard would."""
    secret = signed_with(
        body, request.headers, candidate_secrets(session, settings), now=time.time()
    )
    if secret is None:
        raise Unauthorized(
            "not signed by Slack with a connected app's signing secret, or more than five "
            "minutes old: nothing was read or changed",
            error="bad_signature",
        )
    click = parse_click(body)
    if click is None:
        return Response(status_code=200)
    alert_id = apply_click(session, click=click, secret=secret, settings=settings, now=utcnow())
    background.add_task(refresh_alert, engine, settings, notification_id=alert_id)
    return Response(status_code=200)
