#!/usr/bin/env python3
"""Install what the test suite needs into .venv, then run it.

    python3 scripts/test.py [pytest args]

Needs only Python 3.11+. Creates ./.venv if missing, installs Lantern with its `dev`
extra at the versions of constraints.txt, installs Debian's Chromium for the browser
tests when it is missing and we are root, checks the code (ruff check, ruff format
--check, and mypy over lantern/, tests/ and scripts/: any finding fails the run), and runs
pytest over tests/ on two worker processes (pytest-xdist; database tests run on SQLite and
on PostgreSQL at 127.0.0.1:5432; with CI=true an unreachable PostgreSQL fails the run).
Pytest arguments given replace tests/ and the checks; `-n 0` among them runs the tests in
one process. The total time is printed last.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
# Two workers: the machines this runs on have two cores, and the tests spend much of their
# time waiting on servers, subprocesses and PostgreSQL. Tests sharing a module-scoped fixture
# stay on one worker (tests/conftest.py groups them for --dist loadgroup).
WORKERS = ["-n", "2", "--dist", "loadgroup"]


def run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT)


def ensure_venv() -> None:
    if not PYTHON.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip")
    # the versions the suite and the docs' figures were last run with (constraints.txt)
    run(PYTHON, "-m", "pip", "install", "-q", "-e", ".[dev]", "-c", "constraints.txt")


def ensure_chromium() -> None:
    """Debian's Chromium for the browser tests (no browser download from elsewhere)."""
    if shutil.which("chromium") or Path("/usr/bin/chromium").exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("chromium is missing and cannot be installed here: browser tests will fail")
        return
    run("apt-get", "update", "-q")
    run("apt-get", "install", "-y", "-q", "chromium", "chromium-driver")


def check_code() -> int:
    """ruff (lint and format) and mypy; the exit code of the first that finds anything."""
    for command in (
        ["-m", "ruff", "check", "lantern", "tests", "benchmarks", "scripts"],
        ["-m", "ruff", "format", "--check", "lantern", "tests", "benchmarks", "scripts"],
        ["-m", "mypy"],
    ):
        print("+", "python", " ".join(command), flush=True)
        code = subprocess.run([str(PYTHON), *command], cwd=ROOT).returncode
        if code:
            return code
    return 0


def run_all() -> int:
    ensure_venv()
    ensure_chromium()
    if not sys.argv[1:]:
        code = check_code()
        if code:
            return code
    args = sys.argv[1:] or ["tests"]
    print("+", "python -m pytest", " ".join([*WORKERS, *args]), flush=True)
    result = subprocess.run([str(PYTHON), "-m", "pytest", *WORKERS, *args], cwd=ROOT)
    return result.returncode


def main() -> int:
    started = time.monotonic()
    try:
        return run_all()
    finally:
        minutes, seconds = divmod(round(time.monotonic() - started), 60)
        print(f"scripts/test.py took {minutes} min {seconds:02d} s in all", flush=True)


if __name__ == "__main__":
    sys.exit(main())
