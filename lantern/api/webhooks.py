"""Webhooks: add one (its secret shown once), list them, send a test, remove one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from lantern.api.deps import API_DEPENDENCIES, SessionDep, WorkspaceDep
from lantern.api.schemas import ERRORS, ErrorOut, Id, Strict
from lantern.db.base import utcnow
from lantern.notify.webhooks import add_webhook, list_webhooks, remove_webhook, send_webhook_test

router = APIRouter(
    prefix="/api/v1/webhooks",
    tags=["webhooks"],
    responses={
        **ERRORS,
        400: {"model": ErrorOut, "description": "not a usable URL, or too many webhooks"},
    },
    dependencies=API_DEPENDENCIES,
)


class WebhookIn(Strict):
    url: str = Field(min_length=8, max_length=500, description="https://… that receives POSTs")


class WebhookOut(BaseModel):
    id: int
    url: str
    created_at: datetime
    sent: int = Field(description="deliveries the receiver answered 2xx")
    waiting: int = Field(description="deliveries still owed (being retried, or next in line)")
    failed: int = Field(description="deliveries given up after every retry")
    last_error: str | None = Field(description="why the newest waiting or failed one is")


class NewWebhookOut(WebhookOut):
    secret: str = Field(description="signs every POST (X-Lantern-Signature); shown only now")


@router.get("", response_model=list[WebhookOut], summary="List webhooks")
def webhooks(workspace: WorkspaceDep, session: SessionDep) -> list[dict[str, Any]]:
    """The workspace's webhooks, with how their deliveries went (never the secret)."""
    return list_webhooks(session, workspace_id=workspace.id)


@router.post("", response_model=NewWebhookOut, status_code=201, summary="Add a webhook")
def new_webhook(body: WebhookIn, workspace: WorkspaceDep, session: SessionDep) -> dict[str, Any]:
    """Add a URL that receives every notification from now on, signed with the new secret."""
    return add_webhook(session, workspace_id=workspace.id, url=body.url, now=utcnow())


@router.post(
    "/{webhook_id}/test",
    status_code=204,
    summary="Send a test event",
    responses={502: {"model": ErrorOut, "description": "the receiver did not answer 2xx"}},
)
def test_event(webhook_id: Id, workspace: WorkspaceDep, session: SessionDep) -> Response:
    """POST a signed `test` event to the webhook now; 502 with what went wrong if not 2xx."""
    send_webhook_test(session, workspace_id=workspace.id, webhook_id=webhook_id)
    return Response(status_code=204)


@router.delete("/{webhook_id}", status_code=204, summary="Remove a webhook")
def delete_webhook(webhook_id: Id, workspace: WorkspaceDep, session: SessionDep) -> Response:
    """Stop sending to the webhook; what it was still owed is dropped."""
    remove_webhook(session, workspace_id=workspace.id, webhook_id=webhook_id)
    return Response(status_code=204)
