"""Dashboard users: `lantern user create`, logging in, the session cookie and CSRF."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from lantern.accounts.models import User, WebSession
from lantern.accounts.service import create_user
from lantern.api.app import create_app
from lantern.config import Settings
from lantern.db import session_scope
from lantern.workspaces.models import Workspace
from tests.factories import MadeSource, make_source

PASSWORD = "correct horse battery"


def _user(engine: Engine, src: MadeSource) -> str:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    with session_scope(engine) as session:
        workspace = session.get(Workspace, src.workspace_id)
        assert workspace is not None
        create_user(session, workspace=workspace, email=email, password=PASSWORD)
    return email


def _login(client: TestClient, email: str, password: str = PASSWORD) -> str:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    csrf: str = response.json()["csrf_token"]
    return csrf


def test_lantern_user_create_stores_an_argon2id_hash_and_never_the_password(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    email = f"Grace-{uuid.uuid4().hex[:8]}@Example.com"
    env = {
        "LANTERN_DATA_DIR": str(tmp_path),
        "LANTERN_DATABASE_URL": database_url,
        "LANTERN_NEW_PASSWORD": PASSWORD,
        "PATH": "",
    }
    run = subprocess.run(
        [sys.executable, "-m", "lantern", "user", "create", email, "-w", "team", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert email.lower() in run.stdout
    with session_scope(engine) as session:
        user = session.scalar(select(User).where(User.email == email.lower()))
        assert user is not None
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
    again = subprocess.run(
        [sys.executable, "-m", "lantern", "user", "create", email, "-w", "team"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert again.returncode != 0
    assert "already a user" in again.stderr


def test_a_short_password_is_refused_with_the_reason(database_url: str, tmp_path: Path) -> None:
    env = {"LANTERN_DATA_DIR": str(tmp_path), "LANTERN_DATABASE_URL": database_url, "PATH": ""}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "lantern",
            "user",
            "create",
            "x@example.com",
            "-w",
            "team",
            "--password",
            "short",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert "at least 8 characters" in run.stderr


def test_a_wrong_password_or_unknown_email_gets_the_same_401(
    client: TestClient, engine: Engine
) -> None:
    email = _user(engine, make_source(engine))
    wrong = client.post("/api/v1/auth/login", json={"email": email, "password": "not it at all"})
    unknown = client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"] == "wrong email or password"
    assert "set-cookie" not in wrong.headers


def test_logging_in_sets_an_httponly_cookie_that_reads_the_workspace(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    email = _user(engine, src)
    response = client.post(
        "/api/v1/auth/login", json={"email": email.upper(), "password": PASSWORD}
    )
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert "lantern_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    me = client.get("/api/v1/auth/me").json()
    assert me["user"]["email"] == email
    assert me["workspace"]["name"] == src.workspace
    debug = client.get(f"/api/v1/sources/{src.id}/debug")
    assert debug.status_code == 200
    assert debug.json()["source_id"] == src.id


def test_the_cookie_does_not_open_another_workspaces_objects(
    client: TestClient, engine: Engine
) -> None:
    mine = make_source(engine)
    theirs = make_source(engine)
    _login(client, _user(engine, mine))
    assert client.get(f"/api/v1/sources/{theirs.id}/debug").status_code == 404


def test_a_change_made_with_the_cookie_needs_the_csrf_token(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    csrf = _login(client, _user(engine, src))
    forged = client.post("/api/v1/slack/install")
    assert forged.status_code == 403
    assert forged.json()["error"] == "csrf_failed"
    assert "X-CSRF-Token" in forged.json()["detail"]
    wrong = client.post("/api/v1/slack/install", headers={"X-CSRF-Token": csrf + "x"})
    assert wrong.status_code == 403
    allowed = client.post("/api/v1/slack/install", headers={"X-CSRF-Token": csrf})
    assert allowed.status_code != 403
    assert allowed.json().get("error") != "csrf_failed"


def test_logging_out_ends_the_session_in_the_database(client: TestClient, engine: Engine) -> None:
    src = make_source(engine)
    email = _user(engine, src)
    _login(client, email)
    assert client.get("/api/v1/auth/me").status_code == 200
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401
    with session_scope(engine) as session:
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None
        left = session.scalars(select(WebSession).where(WebSession.user_id == user.id)).all()
        assert left == []


def test_without_cookie_or_token_the_api_answers_401_saying_how_to_authenticate(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    response = client.get(f"/api/v1/sources/{src.id}/debug")
    assert response.status_code == 401
    assert "log in" in response.json()["detail"]
    assert "lantern token create" in response.json()["detail"]


def _wrong(client: TestClient, email: str) -> int:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": "guess-guess"})
    return response.status_code


def test_after_ten_wrong_passwords_the_account_is_refused_with_429_even_with_the_right_one(
    client: TestClient, engine: Engine
) -> None:
    email = _user(engine, make_source(engine))
    wrong = [_wrong(client, email) for _ in range(10)]
    right = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert wrong == [401] * 10
    assert right.status_code == 429
    assert right.json()["error"] == "too_many_logins"
    assert "for this account" in right.json()["detail"]
    assert 800 < int(right.headers["retry-after"]) <= 900
    assert "set-cookie" not in right.headers


def test_after_twenty_failures_from_one_address_every_account_is_refused_there(
    client: TestClient, engine: Engine
) -> None:
    email = _user(engine, make_source(engine))
    wrong = [_wrong(client, f"nobody-{i}@example.com") for i in range(20)]
    right = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert wrong == [401] * 20
    assert right.status_code == 429
    assert "from this address" in right.json()["detail"]
    assert int(right.headers["retry-after"]) > 0


def test_logging_in_forgets_the_accounts_earlier_failures(
    client: TestClient, engine: Engine
) -> None:
    email = _user(engine, make_source(engine))
    before = [_wrong(client, email) for _ in range(9)]
    _login(client, email)
    after = [_wrong(client, email) for _ in range(9)]
    assert before == after == [401] * 9
    assert (
        client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).status_code
        == 200
    )


def test_login_limits_are_settings(engine: Engine, settings: Settings) -> None:
    email = _user(engine, make_source(engine))
    lowered = settings.model_copy(update={"login_failures_per_account": 2})
    with TestClient(create_app(lowered, engine)) as client:
        statuses = [_wrong(client, email) for _ in range(3)]
    assert statuses == [401, 401, 429]
