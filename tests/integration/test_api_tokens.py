"""Workspace API tokens: listed without their secret, revoked from the API or the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from lantern.db import session_scope
from lantern.workspaces.models import Workspace
from lantern.workspaces.service import create_api_token
from tests.factories import MadeSource, make_source


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _second_token(engine: Engine, src: MadeSource, name: str) -> tuple[int, str]:
    with session_scope(engine) as session:
        workspace = session.get(Workspace, src.workspace_id)
        assert workspace is not None
        row, token = create_api_token(session, workspace=workspace, name=name)
        return row.id, token


def _cli(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"LANTERN_DATA_DIR": str(tmp_path), "LANTERN_DATABASE_URL": database_url, "PATH": ""}
    return subprocess.run(
        [sys.executable, "-m", "lantern", "token", *args],
        env=env,
        capture_output=True,
        text=True,
    )


def test_the_api_lists_a_workspaces_tokens_with_their_last_use_and_never_the_secret(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    ci_id, ci_token = _second_token(engine, src, "ci")
    listed = client.get("/api/v1/tokens", headers=bearer(src.token))
    assert listed.status_code == 200
    tokens = listed.json()
    assert [t["name"] for t in tokens] == ["tests", "ci"]
    assert set(tokens[0]) == {"id", "name", "created_at", "last_used_at"}
    assert tokens[0]["last_used_at"] is not None
    assert tokens[1] == {**tokens[1], "id": ci_id, "last_used_at": None}
    assert src.token not in listed.text and ci_token not in listed.text


def test_a_revoked_token_is_refused_at_once_and_other_workspaces_tokens_cannot_be_revoked(
    client: TestClient, engine: Engine
) -> None:
    src, other = make_source(engine), make_source(engine)
    ci_id, ci_token = _second_token(engine, src, "ci")
    assert client.get("/api/v1/settings", headers=bearer(ci_token)).status_code == 200
    theirs = client.delete(f"/api/v1/tokens/{ci_id}", headers=bearer(other.token))
    revoked = client.delete(f"/api/v1/tokens/{ci_id}", headers=bearer(src.token))
    again = client.delete(f"/api/v1/tokens/{ci_id}", headers=bearer(src.token))
    after = client.get("/api/v1/settings", headers=bearer(ci_token))
    assert theirs.status_code == 404
    assert revoked.status_code == 204
    assert again.status_code == 404 and "lantern token list" in again.json()["detail"]
    assert after.status_code == 401 and "revoked" in after.json()["detail"]
    assert client.get("/api/v1/settings", headers=bearer(src.token)).status_code == 200
    names = [t["name"] for t in client.get("/api/v1/tokens", headers=bearer(src.token)).json()]
    assert names == ["tests"]


def test_lantern_token_list_and_revoke_work_by_id_and_never_print_the_secret(
    database_url: str, engine: Engine, client: TestClient, tmp_path: Path
) -> None:
    src = make_source(engine)
    ci_id, ci_token = _second_token(engine, src, "ci")
    listed = _cli(database_url, tmp_path, "list", "-w", src.workspace, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["name"]) for r in rows][1:] == [(ci_id, "ci")]
    assert src.token not in listed.stdout and ci_token not in listed.stdout
    plain = _cli(database_url, tmp_path, "list", "-w", src.workspace)
    assert f"{ci_id}  ci  created" in plain.stdout and "used never" in plain.stdout
    revoked = _cli(database_url, tmp_path, "revoke", str(ci_id), "-w", src.workspace)
    assert revoked.returncode == 0, revoked.stderr
    assert client.get("/api/v1/settings", headers=bearer(ci_token)).status_code == 401
    unknown = _cli(database_url, tmp_path, "revoke", str(ci_id), "-w", src.workspace)
    assert unknown.returncode != 0 and "no API token" in unknown.stderr
    nowhere = _cli(database_url, tmp_path, "list", "-w", "no-such-workspace")
    assert nowhere.returncode != 0 and "no workspace" in nowhere.stderr
