"""Typed dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from lantern.config import Settings
from lantern.errors import Unauthorized
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


SessionDep = Annotated[Session, Depends(get_session)]


def current_workspace(request: Request, session: SessionDep) -> Workspace:
    """The workspace of the request's API token (`Authorization: Bearer lt_...`)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "send a workspace API token as `Authorization: Bearer <token>` "
            "(create one with `lantern token create`)"
        )
    return workspace_for_token(session, token=token.strip())


WorkspaceDep = Annotated[Workspace, Depends(current_workspace)]
