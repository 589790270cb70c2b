"""Rows for tests: each test gets its own workspace, source and token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Engine

from lantern.db import session_scope
from lantern.workspaces.service import create_api_token, create_source, get_or_create_workspace


@dataclass(frozen=True)
class MadeSource:
    """A source created for one test, with its secrets in the clear."""

    id: int
    name: str
    key: str
    workspace_id: int
    workspace: str
    token: str


def make_source(engine: Engine, *, name: str = "web", workspace: str | None = None) -> MadeSource:
    """A new workspace (unique name) with one source and one API token."""
    workspace = workspace or f"ws-{uuid.uuid4().hex[:12]}"
    with session_scope(engine) as session:
        space = get_or_create_workspace(session, name=workspace)
        source, key = create_source(session, workspace=space, name=name)
        _, token = create_api_token(session, workspace=space, name="tests")
        return MadeSource(source.id, name, key, space.id, workspace, token)
