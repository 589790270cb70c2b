"""Typed dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from lantern.accounts.service import LoggedIn, check_csrf, session_for_cookie
from lantern.config import Settings
from lantern.errors import Invalid, Unauthorized
from lantern.workspaces.models import Workspace
from lantern.workspaces.service import workspace_for_token


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with.

    `async` only so FastAPI calls it on the event loop: a plain `def` dependency costs a
    round trip through the thread pool on every request.
    """
    settings: Settings = request.app.state.settings
    return settings


async def get_app_engine(request: Request) -> Engine:
    """The app's database engine (on the event loop, like `get_app_settings`)."""
    engine: Engine = request.app.state.engine
    return engine


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_app_engine)]


def get_session(engine: EngineDep) -> Iterator[Session]:
    """A session for one request: committed if the route returns, rolled back if it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# scope="function": the commit happens before the response is sent, so a 2xx means the
# change is in the database (the default scope would commit after the client has its answer).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


SESSION_COOKIE = "lantern_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def current_login(request: Request, session: SessionDep) -> LoggedIn:
    """The logged-in browser of the request's session cookie."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Unauthorized("log in first", error="not_logged_in")
    return session_for_cookie(session, token=token)


LoginDep = Annotated[LoggedIn, Depends(current_login)]


def current_workspace(request: Request, session: SessionDep) -> Workspace:
    """The request's workspace: from an API token (`Authorization: Bearer lt_...`), or from
    a browser session cookie, which must send its CSRF token on requests that change things.
    """
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "send a workspace API token as `Authorization: Bearer <token>` "
                "(create one with `lantern token create`)"
            )
        return workspace_for_token(session, token=token.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthorized(
            "log in, or send a workspace API token as `Authorization: Bearer <token>` "
            "(create one with `lantern token create`)"
        )
    logged_in = session_for_cookie(session, token=cookie)
    if request.method not in SAFE_METHODS:
        check_csrf(logged_in, request.headers.get("x-csrf-token"))
    return logged_in.workspace


WorkspaceDep = Annotated[Workspace, Depends(current_workspace)]


# Declares the token in the OpenAPI spec (for /docs and API clients); it checks nothing:
# `current_workspace` does.
token_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="WorkspaceToken",
    description="a workspace API token: `lantern token create`",
)


def single_query_values(request: Request) -> None:
    """Refuse a repeated query parameter rather than read only one of its values."""
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if key in seen:
            raise Invalid(f"query.{key}: give it once")
        seen.add(key)


# Every dashboard API router's own dependencies: the documented token, strict queries.
API_DEPENDENCIES = [Depends(token_scheme), Depends(single_query_values)]
