"""Rows for tests: each test gets its own workspace, source and token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pandas as pd
from fastapi.testclient import TestClient
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


def history_events(
    counts: pd.Series, *, event: str = "Signed Up", kind: str = "track"
) -> list[dict[str, object]]:
    """One Segment event per counted occurrence, spread over each hour of `counts`."""
    import uuid as _uuid

    events: list[dict[str, object]] = []
    for hour, count in counts.items():
        for i in range(int(count)):
            stamp = (hour + pd.Timedelta(seconds=int(i * 3600 / max(count, 1)))).isoformat()
            item: dict[str, object] = {
                "type": kind,
                "userId": "u",
                "timestamp": stamp,
                "messageId": str(_uuid.uuid4()),
            }
            if kind == "track":
                item["event"] = event
            else:
                item["name"] = event
            events.append(item)
    return events


def import_events(client: TestClient, key: str, events: list[dict[str, object]]) -> None:
    """Send events to /v1/import in batches, as a backfill would."""
    for i in range(0, len(events), 2000):
        response = client.post("/v1/import", json={"batch": events[i : i + 2000]}, auth=(key, ""))
        assert response.status_code == 200, response.text
        assert response.json()["rejected"] == [], response.json()["rejected"][:3]
