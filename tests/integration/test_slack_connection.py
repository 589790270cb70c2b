"""Connecting a workspace to Slack: Add to Slack (OAuth v2), or a pasted bot token."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine

from lantern.accounts.service import create_user
from lantern.api.app import create_app
from lantern.config import Settings
from lantern.db import session_scope
from lantern.errors import BadRequest
from lantern.notify.connection import (
    connect_with_token,
    connection_status,
    send_test_message,
    start_oauth,
)
from lantern.notify.models import SlackConnection
from lantern.workspaces.models import Workspace
from tests.factories import MadeSource, make_source
from tests.fakeslack import CLIENT_ID, CLIENT_SECRET, GOOD_CODE, GOOD_TOKEN, Answer, FakeSlack

PASSWORD = "correct horse battery"


@pytest.fixture
def oauth_settings(settings: Settings, fake_slack: FakeSlack) -> Settings:
    return settings.model_copy(
        update={
            "slack_base_url": fake_slack.api_url,
            "slack_client_id": CLIENT_ID,
            "slack_client_secret": CLIENT_SECRET,
            "public_url": "http://127.0.0.1:8000",
        }
    )


def _logged_in_client(app: FastAPI, engine: Engine, src: MadeSource) -> tuple[TestClient, str]:
    """A browser logged in to `src`'s workspace, and its CSRF token."""
    email = f"slack-{uuid.uuid4().hex[:8]}@example.com"
    with session_scope(engine) as session:
        workspace = session.get(Workspace, src.workspace_id)
        assert workspace is not None
        create_user(session, workspace=workspace, email=email, password=PASSWORD)
    browser = TestClient(app)
    login = browser.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return browser, login.json()["csrf_token"]


def _start(browser: TestClient, csrf: str) -> str:
    """Press "Add to Slack" in `browser`: the state Slack will send back."""
    install = browser.post("/api/v1/slack/install", headers={"X-CSRF-Token": csrf})
    assert install.status_code == 200, install.text
    return parse_qs(urlparse(install.json()["url"]).query)["state"][0]


def _callback(client: TestClient, state: str) -> Response:
    return client.get(
        "/slack/oauth/callback",
        params={"code": GOOD_CODE, "state": state},
        follow_redirects=False,
    )


def test_add_to_slack_stores_the_bot_once_and_refuses_a_reused_state(
    engine: Engine, oauth_settings: Settings, fake_slack: FakeSlack
) -> None:
    src = make_source(engine)
    app = create_app(oauth_settings, engine)
    browser, csrf = _logged_in_client(app, engine, src)
    with browser:
        state = _start(browser, csrf)
        done = _callback(browser, state)
        again = _callback(browser, state)
    assert done.status_code == 303
    assert again.status_code == 400 and "expired, was used" in again.text
    with session_scope(engine) as session:
        row = session.get(SlackConnection, src.workspace_id)
        assert row is not None
        assert (row.method, row.bot_token, row.bot_id, row.channel) == (
            "oauth",
            GOOD_TOKEN,
            "B0BOT",
            "C0ALERTS",
        )


def test_the_slack_callback_is_refused_without_the_session_that_started_the_install(
    engine: Engine, oauth_settings: Settings, fake_slack: FakeSlack
) -> None:
    src = make_source(engine)
    app = create_app(oauth_settings, engine)
    starter, csrf = _logged_in_client(app, engine, src)
    colleague, _ = _logged_in_client(app, engine, src)
    with starter, colleague, TestClient(app) as stranger:
        state = _start(starter, csrf)
        no_session = _callback(stranger, state)
        other_session = _callback(colleague, state)
        starter.post("/api/v1/auth/logout")
        logged_out = _callback(starter, state)
    assert no_session.status_code == 400 and "log in to Lantern" in no_session.text
    assert other_session.status_code == 400 and "another browser" in other_session.text
    assert logged_out.status_code == 400
    assert fake_slack.calls("oauth.v2.access") == []
    with session_scope(engine) as session:
        assert session.get(SlackConnection, src.workspace_id) is None


def test_add_to_slack_without_app_credentials_says_what_to_set(
    engine: Engine, settings: Settings
) -> None:
    src = make_source(engine)
    with session_scope(engine) as session, pytest.raises(BadRequest, match="SLACK_CLIENT_ID"):
        start_oauth(
            session,
            workspace_id=src.workspace_id,
            settings=settings,
            redirect_uri="http://x/cb",
            browser_session="a-session-cookie",
        )


def test_a_pasted_token_is_checked_and_a_test_message_reaches_the_channel(
    engine: Engine, oauth_settings: Settings, fake_slack: FakeSlack
) -> None:
    src = make_source(engine)
    with session_scope(engine) as session:
        with pytest.raises(BadRequest, match="refused the token"):
            connect_with_token(
                session,
                workspace_id=src.workspace_id,
                bot_token="xoxb-wrong",
                channel="alerts",
                settings=oauth_settings,
            )
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="#alerts",
            settings=oauth_settings,
        )
        send_test_message(session, workspace_id=src.workspace_id, settings=oauth_settings)
        status = connection_status(session, workspace_id=src.workspace_id, settings=oauth_settings)
    assert status["connected"] and (status["channel"], status["channel_name"]) == (
        "C0ALERTS",
        "alerts",
    )
    assert status["team_name"] == "Acme"
    assert "connected" in fake_slack.top_level()[0]["text"]


def test_a_channel_slack_cannot_find_is_refused_when_connecting_saying_how_to_fix_it(
    engine: Engine, oauth_settings: Settings, fake_slack: FakeSlack
) -> None:
    from lantern.api.app import create_app

    src = make_source(engine)
    auth = {"Authorization": f"Bearer {src.token}"}
    with TestClient(create_app(oauth_settings, engine)) as client:
        put = client.put(
            "/api/v1/slack/token",
            headers=auth,
            json={"bot_token": GOOD_TOKEN, "channel": "#no-such-channel"},
        )
        status = client.get("/api/v1/slack", headers=auth).json()
    assert put.status_code == 400
    assert "no channel #no-such-channel" in put.json()["detail"]
    assert "channel's id" in put.json()["detail"]
    assert status["connected"] is False


def test_the_api_connects_slack_for_a_token_holder_and_only_their_workspace(
    engine: Engine, oauth_settings: Settings, fake_slack: FakeSlack
) -> None:
    mine, theirs = make_source(engine), make_source(engine)
    auth = {"Authorization": f"Bearer {mine.token}"}
    with TestClient(create_app(oauth_settings, engine)) as client:
        install = client.post("/api/v1/slack/install", headers=auth)
        bad = client.put(
            "/api/v1/slack/token", headers=auth, json={"bot_token": "nope-123", "channel": "alerts"}
        )
        extra = client.put(
            "/api/v1/slack/token",
            headers=auth,
            json={"bot_token": GOOD_TOKEN, "channel": "alerts", "x": 1},
        )
        put = client.put(
            "/api/v1/slack/token", headers=auth, json={"bot_token": GOOD_TOKEN, "channel": "alerts"}
        )
        tested = client.post("/api/v1/slack/test", headers=auth)
        other = client.get(
            "/api/v1/slack", headers={"Authorization": f"Bearer {theirs.token}"}
        ).json()
        anonymous = client.get("/api/v1/slack")
    # a token belongs to a script, not to the browser that would come back from Slack
    assert install.status_code == 400 and "PUT /api/v1/slack/token" in install.json()["detail"]
    assert bad.status_code == 400 and "xoxb-" in bad.json()["detail"]
    assert extra.status_code == 422
    assert put.status_code == 200 and put.json()["channel"] == "C0ALERTS"
    assert tested.status_code == 204
    assert len(fake_slack.top_level()) == 1
    assert other["connected"] is False
    assert anonymous.status_code == 401


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


def test_connecting_while_slack_cannot_be_reached_is_a_502_saying_why_and_changes_nothing(
    engine: Engine, settings: Settings
) -> None:
    src = make_source(engine)
    auth = {"Authorization": f"Bearer {src.token}"}
    nowhere = settings.model_copy(
        update={"slack_base_url": f"http://127.0.0.1:{_closed_port()}/api/"}
    )
    with TestClient(create_app(nowhere, engine)) as client:
        put = client.put(
            "/api/v1/slack/token", headers=auth, json={"bot_token": GOOD_TOKEN, "channel": "alerts"}
        )
        status = client.get("/api/v1/slack", headers=auth).json()
    assert put.status_code == 502
    body = put.json()
    assert body["error"] == "slack_unreachable"
    assert "could not check the token with Slack" in body["detail"]
    assert "Connection refused" in body["detail"]
    assert "Nothing was changed" in body["detail"]
    assert set(body) == {"error", "detail", "code", "message"}
    assert status["connected"] is False


def test_a_slack_that_fails_while_connecting_or_testing_is_a_502_with_its_answer(
    engine: Engine, oauth_settings: Settings, fake_slack: FakeSlack
) -> None:
    src = make_source(engine)
    auth = {"Authorization": f"Bearer {src.token}"}
    with TestClient(create_app(oauth_settings, engine)) as client:
        fake_slack.script("auth.test", Answer(503, {"ok": False}), token=GOOD_TOKEN)
        failed = client.put(
            "/api/v1/slack/token", headers=auth, json={"bot_token": GOOD_TOKEN, "channel": "alerts"}
        )
        fake_slack.script("conversations.list", Answer(500, {"ok": False}), token=GOOD_TOKEN)
        channel_failed = client.put(
            "/api/v1/slack/token", headers=auth, json={"bot_token": GOOD_TOKEN, "channel": "alerts"}
        )
        connected = client.put(
            "/api/v1/slack/token", headers=auth, json={"bot_token": GOOD_TOKEN, "channel": "alerts"}
        )
        fake_slack.script("chat.postMessage", Answer(500, {"ok": False}), token=GOOD_TOKEN)
        test = client.post("/api/v1/slack/test", headers=auth)
    assert failed.status_code == 502
    assert "Slack answered 503" in failed.json()["detail"]
    assert channel_failed.status_code == 502
    assert "ask Slack for the channel: Slack answered 500" in channel_failed.json()["detail"]
    assert connected.status_code == 200
    assert test.status_code == 502
    assert "send the test message: Slack answered 500" in test.json()["detail"]


def test_an_unexpected_failure_is_still_the_documented_json_error(
    app: FastAPI,
) -> None:
    @app.get("/api/v1/fails-for-the-test")
    def fails() -> None:
        raise RuntimeError("a fault of Lantern's own")

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/api/v1/fails-for-the-test")
    assert answer.status_code == 500
    assert answer.json()["error"] == "internal_error"
    assert "a fault of Lantern's own" not in answer.text
    assert set(answer.json()) == {"error", "detail", "code", "message"}
