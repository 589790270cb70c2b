"""Which workspace a command acts on, and what a new workspace starts with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from lantern.db import session_scope
from lantern.db.session import make_engine
from lantern.workspaces.models import Workspace


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
