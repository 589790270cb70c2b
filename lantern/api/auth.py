"""Logging in and out of the web pages (a session cookie plus a CSRF token)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from lantern.accounts.service import (
    SESSION_DAYS,
    LoggedIn,
    authenticate,
    end_session,
    start_session,
)
from lantern.api.deps import SESSION_COOKIE, LoginDep, SessionDep
from lantern.api.schemas import ERRORS, Strict
from lantern.workspaces.models import Workspace

router = APIRouter(
    prefix="/api/v1/auth",
    tags=["accounts"],
    responses=ERRORS,
)


class LoginIn(Strict):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1000)


class UserOut(BaseModel):
    id: int
    email: str


class WorkspaceRef(BaseModel):
    id: int
    name: str


class MeOut(BaseModel):
    user: UserOut
    workspace: WorkspaceRef
    csrf_token: str = Field(description="Send it back as the X-CSRF-Token header on changes.")


def _me(logged_in: LoggedIn) -> MeOut:
    return MeOut(
        user=UserOut(id=logged_in.user.id, email=logged_in.user.email),
        workspace=WorkspaceRef(id=logged_in.workspace.id, name=logged_in.workspace.name),
        csrf_token=logged_in.csrf_token,
    )


@router.post("/login", response_model=MeOut, summary="Log in and get a session cookie")
def login(body: LoginIn, request: Request, response: Response, session: SessionDep) -> MeOut:
    """Check the email and password; set the session cookie; return the CSRF token."""
    user = authenticate(session, email=body.email, password=body.password)
    token, csrf = start_session(session, user=user)
    workspace = session.get(Workspace, user.workspace_id)
    assert workspace is not None
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_DAYS * 86400,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return _me(LoggedIn(user=user, workspace=workspace, csrf_token=csrf))


@router.get("/me", response_model=MeOut, summary="Who is logged in")
def me(logged_in: LoginDep) -> MeOut:
    """The logged-in user, their workspace and the session's CSRF token."""
    return _me(logged_in)


@router.post("/logout", status_code=204, summary="End the browser session")
def logout(request: Request, session: SessionDep) -> Response:
    """Forget the session cookie, here and in the database."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        end_session(session, token=token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
