"""Ordinary mistakes at the command line: one line saying what is wrong, exit code 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.factories import make_source


def lantern(
    database_url: str, tmp_path: Path, *args: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "LANTERN_DATA_DIR": str(tmp_path),
        "LANTERN_DATABASE_URL": database_url,
        "PATH": "",
        **settings,
    }
    return subprocess.run(
        [sys.executable, "-m", "lantern", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a command that should have refused its input and started instead
    )


def test_a_source_name_taken_a_missing_source_and_a_rotation_of_one_are_one_line_errors(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    src = make_source(engine)
    for args, says in [
        (("source", "create", "web", "-w", src.workspace), "already has a source called 'web'"),
        (("metrics", "--source", "nosuch", "-w", src.workspace), "no source called 'nosuch'"),
        (("source", "rotate", "nosuch", "-w", src.workspace), "no source called 'nosuch'"),
    ]:
        result = lantern(database_url, tmp_path, *args)
        assert result.returncode == 1, result.stderr
        assert says in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.slow
def test_a_wrong_setting_an_unreachable_database_and_an_unknown_revision_are_one_line_errors(
    database_url: str, tmp_path: Path
) -> None:
    nowhere = "postgresql+psycopg://127.0.0.1:1/lantern"
    for url, args, env, says in [
        (
            database_url,
            ("source", "list"),
            {"LANTERN_SENSITIVITY": "extreme"},
            "LANTERN_SENSITIVITY",
        ),
        (database_url, ("serve",), {"LANTERN_PORT": "eighty"}, "LANTERN_PORT"),
        (database_url, ("serve",), {"LANTERN_PORT": "70000"}, "LANTERN_PORT: Input should be"),
        (
            database_url,
            ("serve",),
            {"LANTERN_RETENTION_DAYS": "a year"},
            "LANTERN_RETENTION_DAYS: the retention is a whole number of days",
        ),
        (nowhere, ("source", "list"), {}, "the database cannot be used"),
        (database_url, ("db", "upgrade", "--revision", "nosuch"), {}, "'nosuch'"),
    ]:
        result = lantern(url, tmp_path, *args, **env)
        assert result.returncode == 1, result.stderr
        assert says in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("port", ["999999", "0", "-1"])
def test_a_port_out_of_range_is_refused_before_anything_starts(
    database_url: str, tmp_path: Path, port: str
) -> None:
    result = lantern(database_url, tmp_path, "serve", "--port", port)
    assert result.returncode == 2, result.stderr
    assert "is not in the range 1<=x<=65535" in result.stderr
    assert "Lantern" not in result.stdout  # nothing served, nothing migrated first
