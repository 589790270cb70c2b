"""Which workspace a command acts on, and what a new workspace starts with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from lantern.accounts.service import create_user
from lantern.api.app import create_app
from lantern.config import Settings
from lantern.db import session_scope
from lantern.db.migrate import upgrade
from lantern.db.session import make_engine
from lantern.workspaces.models import Workspace
from lantern.workspaces.service import get_or_create_workspace


def lantern(
    database_url: str, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "LANTERN_DATA_DIR": str(tmp_path),
        "LANTERN_DATABASE_URL": database_url,
        "LANTERN_NEW_PASSWORD": "correct horse",
        "PATH": "",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "lantern", *args], env=env, capture_output=True, text=True
    )


def sensitivities(database_url: str) -> dict[str, str]:
    engine = make_engine(database_url)
    with session_scope(engine) as session:
        found = {n: s for n, s in session.execute(select(Workspace.name, Workspace.sensitivity))}
    engine.dispose()
    return found


@pytest.mark.slow
def test_a_workspace_made_by_user_create_or_token_create_takes_the_configured_sensitivity(
    empty_database_url: str, tmp_path: Path
) -> None:
    made = lantern(
        empty_database_url, tmp_path, "user", "create", "a@b.co", LANTERN_SENSITIVITY="high"
    )
    assert made.returncode == 0, made.stderr
    tokens = lantern(
        empty_database_url, tmp_path, "token", "create", "-w", "scripts", LANTERN_SENSITIVITY="low"
    )
    assert tokens.returncode == 0, tokens.stderr
    assert sensitivities(empty_database_url) == {"default": "high", "scripts": "low"}


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.slow
def test_with_one_workspace_every_command_acts_on_it_and_its_login_sees_the_new_source(
    empty_database_url: str, tmp_path: Path
) -> None:
    # what `lantern serve --demo` leaves: one workspace, with a login
    engine = make_engine(empty_database_url)
    upgrade(engine)
    with session_scope(engine) as session:
        demo = get_or_create_workspace(session, name="demo")
        create_user(session, workspace=demo, email="demo@lantern.local", password="correct horse")

    made = lantern(empty_database_url, tmp_path, "source", "create", "web")
    assert made.returncode == 0, made.stderr
    assert "created in workspace 'demo'" in made.stdout
    token = lantern(empty_database_url, tmp_path, "token", "create", "--json")
    assert json.loads(token.stdout)["workspace"] == "demo"
    listed = lantern(empty_database_url, tmp_path, "metrics", "--source", "web")
    assert listed.returncode == 0 and "workspace 'demo'" in listed.stderr

    settings = Settings(data_dir=tmp_path, database_url=empty_database_url, scheduler_enabled=False)
    with TestClient(create_app(settings, engine)) as browser:
        login = browser.post(
            "/api/v1/auth/login", json={"email": "demo@lantern.local", "password": "correct horse"}
        )
        assert login.status_code == 200, login.text
        sources = browser.get("/api/v1/sources").json()
    engine.dispose()
    assert "web" in [s["name"] for s in sources]
    assert sensitivities(empty_database_url) == {"demo": "medium"}


@pytest.mark.slow
def test_with_several_workspaces_a_command_that_does_not_name_one_says_how_to(
    empty_database_url: str, tmp_path: Path
) -> None:
    for space in ("demo", "acme"):
        made = lantern(empty_database_url, tmp_path, "source", "create", "web", "-w", space)
        assert made.returncode == 0, made.stderr

    for args in (
        ("source", "create", "app"),
        ("token", "create"),
        ("token", "list"),
        ("user", "create", "c@d.co"),
    ):
        said = one_line_error(lantern(empty_database_url, tmp_path, *args))
        assert "there are 2 workspaces (demo, acme)" in said
        assert "--workspace NAME" in said
    for args in (("metrics", "--source", "web"), ("source", "rotate", "web")):
        said = one_line_error(lantern(empty_database_url, tmp_path, *args))
        assert "workspaces acme, demo each have a source called 'web'" in said
        assert "--workspace NAME" in said
    said = one_line_error(lantern(empty_database_url, tmp_path, "token", "list", "-w", "nope"))
    assert "no workspace 'nope'; the workspaces are demo, acme" in said

    named = lantern(empty_database_url, tmp_path, "source", "rotate", "web", "--workspace", "acme")
    assert named.returncode == 0, named.stderr
    assert "in workspace 'acme'" in named.stdout
