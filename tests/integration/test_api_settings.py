"""The dashboard API's settings: the workspace and the sensitivity the hourly pass uses."""

from __future__ import annotations

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
