"""No /api/v1 route lets one workspace reach another's objects, and none answers without a token.

The routes are enumerated from the app itself, so a route added later is tried too: one
with a path parameter or request body this file does not know fails until it is taught.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from lantern.accounts.service import create_user
from lantern.api.app import create_app
from lantern.config import Settings
from lantern.db import session_scope
from lantern.insights.models import Insight, MetricWatch
from lantern.notify.models import SlackConnection
from lantern.notify.webhooks import add_webhook
from lantern.workspaces.models import Workspace
from lantern.workspaces.service import create_api_token
from tests.factories import MadeSource, add_insight, last_closed_hour, make_insight, make_source
from tests.fakeslack import FakeSlack

AUTH_PREFIX = "/api/v1/auth/"
PASSWORD = "attacker's password"


def api_routes(app: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    """(method, full path, route) of every /api/v1 route, however the routers are nested."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    if flatten is not None:
        entries = [(ctx.path, ctx.original_route) for ctx in flatten(app.routes)]
    else:
        entries = [(getattr(r, "path", ""), r) for r in app.routes]
    for path, route in entries:
        # /auth/* acts only on the caller's own session (tests/integration/test_accounts.py)
        if path.startswith(AUTH_PREFIX):
            continue
        if isinstance(route, APIRoute) and path and path.startswith("/api/v1"):
            for method in sorted(route.methods or ()):
                yield method, path, route


# A valid body for each request model, so that a refusal is about the workspace.
BODIES: dict[str, dict[str, Any]] = {
    "SourceIn": {"name": "made-by-a"},
    "WatchIn": {"muted": True, "snoozed_until": None},
    "MuteIn": {"until": None},
    "FeedbackIn": {"useful": False},
    "SettingsIn": {"sensitivity": "medium"},
    "TokenIn": {"bot_token": "xoxb-workspace-a", "channel": "#a-alerts"},
    "OwnerIn": {"owner": "U0AOWNER", "note": "a's note"},
    # never posted to: a webhook is only tried by its test route, which is B's here
    "WebhookIn": {"url": "http://127.0.0.1:9/a-hook"},
    "DimensionsIn": {"dimensions": ["os", "properties.plan"]},
    "ValueAlertsIn": {"dimensions": ["os"]},
}


def body_for(route: APIRoute) -> dict[str, Any] | None:
    if route.body_field is None:
        return None
    model = route.body_field.field_info.annotation
    name = getattr(model, "__name__", str(model))
    if name not in BODIES:
        pytest.fail(f"{route.path}: add a valid {name} body to BODIES in this test")
    return BODIES[name]


@dataclass
class Victim:
    """Workspace B: its objects, and strings that must never reach workspace A."""

    src: MadeSource
    metric_id: int
    insight_id: int
    child_id: int
    token_id: int
    webhook_id: int
    secrets: list[str]


def seed_victim(engine: Engine) -> Victim:
    tag = uuid.uuid4().hex[:8]
    src = make_source(engine, name=f"b-source-{tag}", workspace=f"b-workspace-{tag}")
    insight_id = make_insight(engine, src, name=f"B secret metric {tag}")
    with session_scope(engine) as session:
        insight = session.get(Insight, insight_id)
        assert insight is not None
        metric_id = insight.metric_id
        session.add(
            SlackConnection(
                workspace_id=src.workspace_id,
                method="token",
                bot_token=f"xoxb-b-{tag}",
                channel=f"#b-channel-{tag}",
            )
        )
    child_id = add_insight(
        engine, src, metric_id, detected_at=last_closed_hour(), kind="spike", parent_id=insight_id
    )
    with session_scope(engine) as session:
        workspace = session.get(Workspace, src.workspace_id)
        assert workspace is not None
        token, _ = create_api_token(session, workspace=workspace, name=f"b-token-{tag}")
        token_id = token.id
        hook = add_webhook(
            session,
            workspace_id=src.workspace_id,
            url=f"http://127.0.0.1:9/b-hook-{tag}",
            now=datetime.now(UTC),
        )
    secrets = [src.workspace, src.name, f"B secret metric {tag}", f"b-channel-{tag}", src.key]
    secrets += [src.token, f"b-token-{tag}", f"b-hook-{tag}", hook["secret"]]
    return Victim(src, metric_id, insight_id, child_id, token_id, hook["id"], secrets)


@pytest.fixture
def isolated_app(settings: Settings, engine: Engine, fake_slack: FakeSlack) -> FastAPI:
    return create_app(settings.model_copy(update={"slack_base_url": fake_slack.api_url}), engine)


@pytest.mark.parametrize("credential", ["api token", "browser session"])
def test_every_api_route_refuses_another_workspaces_objects_and_leaks_nothing(
    isolated_app: FastAPI, engine: Engine, credential: str
) -> None:
    victim = seed_victim(engine)
    attacker = make_source(engine, name="a-source")
    make_insight(engine, attacker, name="A metric")
    ids = {
        "source_id": victim.src.id,
        "metric_id": victim.metric_id,
        "insight_id": victim.insight_id,
        "token_id": victim.token_id,
        "webhook_id": victim.webhook_id,
    }
    tried = []
    with TestClient(isolated_app) as client:
        if credential == "api token":
            headers = {"Authorization": f"Bearer {attacker.token}"}
        else:
            email = f"a-{uuid.uuid4().hex[:8]}@example.com"
            with session_scope(engine) as session:
                workspace = session.get(Workspace, attacker.workspace_id)
                assert workspace is not None
                create_user(session, workspace=workspace, email=email, password=PASSWORD)
            login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            headers = {"X-CSRF-Token": login.json()["csrf_token"]}
        for method, path, route in api_routes(isolated_app):
            names = re.findall(r"{(\w+)}", path)
            unknown = [n for n in names if n not in ids]
            assert not unknown, f"{path}: teach this test an object of B for {unknown}"
            url = path.format(**{n: ids[n] for n in names})
            body = body_for(route)
            calls: list[tuple[str, dict[str, int]]] = [(url, {})]
            for param in route.dependant.query_params:
                if param.name in ids:
                    calls.append((url, {param.name: ids[param.name]}))
            for target, params in calls:
                response = client.request(method, target, params=params, json=body, headers=headers)
                what = f"{method} {target} {params}"
                if names or params:
                    assert not 200 <= response.status_code < 300, what
                    assert response.status_code == 404, f"{what}: {response.status_code}"
                for secret in victim.secrets:
                    assert secret not in response.text, f"{what} leaked {secret!r}"
                tried.append(what)
        refused_child = client.get(f"/api/v1/insights/{victim.child_id}", headers=headers)
        assert refused_child.status_code == 404

        # the enumeration missed nothing the API documents
        spec_paths = {
            p
            for p in isolated_app.openapi()["paths"]
            if p.startswith("/api/v1") and not p.startswith(AUTH_PREFIX)
        }
        assert spec_paths <= {path for _, path, _ in api_routes(isolated_app)}
        assert len(tried) > len(spec_paths)

        # B's objects are as they were
        client.cookies.clear()
        mine = {"Authorization": f"Bearer {victim.src.token}"}
        (source,) = client.get("/api/v1/sources", headers=mine).json()
        assert source["name"] == victim.src.name
        track = {"type": "track", "userId": "u", "event": "Still Here"}
        assert client.post("/v1/track", json=track, auth=(victim.src.key, "")).status_code == 200
        insight = client.get(f"/api/v1/insights/{victim.insight_id}", headers=mine).json()
        assert insight["useful"] is None
        assert insight["metric"]["muted"] is False
        assert client.get("/api/v1/slack", headers=mine).json()["channel"].startswith("#b-")
    with session_scope(engine) as session:
        workspace = session.get(Workspace, victim.src.workspace_id)
        assert workspace is not None and workspace.sensitivity == "medium"
        assert session.get(MetricWatch, victim.metric_id) is None


def test_every_api_route_answers_401_without_a_token_or_with_an_unknown_one(
    isolated_app: FastAPI, engine: Engine
) -> None:
    victim = seed_victim(engine)
    ids = {
        "source_id": victim.src.id,
        "metric_id": victim.metric_id,
        "insight_id": victim.insight_id,
        "token_id": victim.token_id,
        "webhook_id": victim.webhook_id,
    }
    with TestClient(isolated_app) as client:
        for method, path, route in api_routes(isolated_app):
            url = path.format(**{n: ids[n] for n in re.findall(r"{(\w+)}", path)})
            for headers in ({}, {"Authorization": "Bearer lt_not-a-token"}, {"Authorization": "x"}):
                response = client.request(method, url, json=body_for(route), headers=headers)
                assert response.status_code == 401, f"{method} {url} {headers}"
                assert response.json()["error"] == "unauthorized"
                for secret in victim.secrets:
                    assert secret not in response.text
