"""The dashboard API's settings: the workspace and the sensitivity the hourly pass uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from lantern.config import Settings
from lantern.db import session_scope
from lantern.detect import MetricState
from lantern.insights.models import MetricWatch
from lantern.metrics.service import epoch_hour
from lantern.pipeline import run_hour
from tests.factories import MadeSource, last_closed_hour, make_metric, make_source


def bearer(src: MadeSource) -> dict[str, str]:
    return {"Authorization": f"Bearer {src.token}"}


def test_settings_show_the_workspace_and_keep_a_new_sensitivity(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    shown = client.get("/api/v1/settings", headers=bearer(src)).json()
    assert shown == {
        "workspace": {"id": src.workspace_id, "name": src.workspace},
        "sensitivity": "medium",
        "delivery": {
            "time_zone": "UTC",
            "quiet_start": None,
            "quiet_end": None,
            "quiet_holds_outages": False,
            "quiet_hours_delivery": "each",
            "digest_hour": None,
        },
    }
    changed = client.put("/api/v1/settings", json={"sensitivity": "high"}, headers=bearer(src))
    assert changed.json()["sensitivity"] == "high"
    assert client.get("/api/v1/settings", headers=bearer(src)).json()["sensitivity"] == "high"
    bad = client.put("/api/v1/settings", json={"sensitivity": "extreme"}, headers=bearer(src))
    assert bad.status_code == 422
    assert "sensitivity" in bad.json()["detail"]


def test_the_hourly_pass_scores_with_the_workspaces_sensitivity(
    fresh_client: TestClient, fresh_engine: Engine
) -> None:
    src = make_source(fresh_engine)
    metric_id = make_metric(fresh_engine, src, days=9)
    settings = Settings(scheduler_enabled=False, detect_executor="inline")
    hour = epoch_hour(last_closed_hour())

    def scored_with() -> str:
        with session_scope(fresh_engine) as session:
            watch = session.get(MetricWatch, metric_id)
            assert watch is not None and watch.state is not None
            return MetricState.from_bytes(watch.state).sensitivity

    fresh_client.put("/api/v1/settings", json={"sensitivity": "low"}, headers=bearer(src))
    run_hour(fresh_engine, settings, hour=hour - 1, worker="test")
    assert scored_with() == "low"
    fresh_client.put("/api/v1/settings", json={"sensitivity": "high"}, headers=bearer(src))
    run_hour(fresh_engine, settings, hour=hour, worker="test")
    assert scored_with() == "high"


def test_a_workspace_made_from_the_command_line_starts_at_the_configured_sensitivity(
    fresh_client: TestClient, fresh_engine: Engine
) -> None:
    env = {
        **os.environ,
        "LANTERN_DATABASE_URL": fresh_engine.url.render_as_string(hide_password=False),
        "LANTERN_SENSITIVITY": "low",
    }

    def lantern(*args: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "lantern", *args, "--workspace", "team", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)

    lantern("source", "create", "web")
    token = lantern("token", "create")["token"]
    shown = fresh_client.get("/api/v1/settings", headers={"Authorization": f"Bearer {token}"})
    assert shown.json()["sensitivity"] == "low"
