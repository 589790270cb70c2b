"""A real `lantern serve` process on a loopback port, on each engine, and a browser."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, ViewportSize, sync_playwright
from sqlalchemy import Engine

from lantern.accounts.service import create_user
from lantern.db import session_scope
from lantern.workspaces.service import get_or_create_workspace

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
LAPTOP: ViewportSize = {"width": 1280, "height": 860}
PHONE: ViewportSize = {"width": 390, "height": 844}
PASSWORD = "lantern-browser-test"  # every browser test's user's


def shot(page: Page, name: str, database_url: str) -> None:
    """A full-page screenshot under test-artifacts/, named by page and engine."""
    ARTIFACTS.mkdir(exist_ok=True)
    engine = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    page.screenshot(path=str(ARTIFACTS / f"{name}-{engine}.png"), full_page=True)


def workspace_with_user(engine: Engine) -> tuple[str, str]:
    """A new workspace and its user (password `PASSWORD`): (workspace name, email)."""
    name = f"web-{uuid.uuid4().hex[:10]}"
    email = f"{name}@example.com"
    with session_scope(engine) as session:
        workspace = get_or_create_workspace(session, name=name)
        create_user(session, workspace=workspace, email=email, password=PASSWORD)
    return name, email


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Log in on the login page the browser was sent to, and wait until the page the login
    opens is ready: the login page had set its own ready flag, which must not count, or a
    test acts on a page still loading (a chart drawn later moves the controls under it)."""
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    page.wait_for_selector("body[data-ready='1']")


def follow(page: Page, target: Locator) -> None:
    """Click a link (or a card that opens a page) and wait until the page it opens is
    ready: the page clicked on had set its own ready flag, which must not count."""
    leaving = page.url
    target.click()
    page.wait_for_url(lambda url: url != leaving)
    page.wait_for_selector("body[data-ready='1']")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    database_url: str, data_dir: Path, *, workers: int = 1, **env: str
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `lantern serve` and wait until /healthz answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "LANTERN_DATABASE_URL": database_url,
        "LANTERN_DATA_DIR": str(data_dir),
        "LANTERN_SCHEDULER_ENABLED": "false",
        "LANTERN_PUBLIC_URL": url,
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "lantern", "serve", "--port", str(port), "--workers", str(workers)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"lantern serve exited: {output}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("lantern serve did not answer /healthz within 30 s")


Server = tuple[subprocess.Popen[bytes], str]


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, Server]]:
    """The `lantern serve` processes of this session by database URL; stopped at its end."""
    running: dict[str, Server] = {}
    yield running
    for process, _ in running.values():
        process.terminate()
    for process, _ in running.values():
        process.wait(timeout=10)


@pytest.fixture
def served(
    database_url: str, servers: dict[str, Server], tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The base URL of a `lantern serve` process on the test database, one per engine.

    Started once per engine in each pytest-xdist worker and shared by the tests of every
    module: each of them works in a workspace of its own. A test that needs a server of its
    own (other settings, or one it stops) starts it with `start_server`.
    """
    if database_url not in servers:
        process, url = start_server(database_url, tmp_path_factory.mktemp("served"))
        # what it prints over the whole session is read, so that a full pipe never blocks it
        threading.Thread(target=process.communicate, daemon=True).start()
        servers[database_url] = (process, url)
    return servers[database_url][1]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium; each test opens its own context (cookies, storage).

    Module-scoped, not session-scoped: while Playwright's sync API is open, the main thread
    counts as running its event loop, and `asyncio.run` in a later test would refuse to run.
    """
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()
