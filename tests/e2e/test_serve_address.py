"""`lantern serve --host/--port`: the address given is the one the service names."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from lantern import __version__
from tests.e2e.conftest import start_server
from tests.factories import make_source


@pytest.mark.parametrize("workers", [1, 2])
def test_links_name_the_port_serve_was_given_while_no_public_url_is_set(
    database_url: str, engine: Engine, tmp_path: Path, workers: int
) -> None:
    # (start_server runs `lantern serve --port <a free port>`; LANTERN_PORT stays unset)
    process, url = start_server(database_url, tmp_path, workers=workers, LANTERN_PUBLIC_URL="")
    try:
        src = make_source(engine)
        for _ in range(4):  # with two workers, answers come from either process
            status = httpx.get(
                url + "/api/v1/slack", headers={"Authorization": f"Bearer {src.token}"}
            ).json()
            assert status["interactivity_url"] == url + "/slack/interactivity"
            assert f"links in Slack messages point at {url}," in status["public_url_warning"]
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    assert f"Lantern {__version__} on {url} " in output
    assert "127.0.0.1:8000" not in output
