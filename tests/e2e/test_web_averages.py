"""An average value metric in a real browser: its page and its insight say they are averages."""

from __future__ import annotations

import re

import httpx
import numpy as np
import pandas as pd
from playwright.sync_api import Browser, expect
from sqlalchemy import Engine

from lantern.db import session_scope
from lantern.workspaces.models import Workspace
from lantern.workspaces.service import create_api_token, get_or_create_workspace
from tests.e2e.conftest import follow, workspace_with_user
from tests.e2e.test_web import LAPTOP, _log_in, _shot
from tests.factories import MadeSource, add_insight, last_closed_hour, make_metric


def test_an_average_metric_and_its_insight_are_shown_as_averages(
    browser: Browser, served: str, engine: Engine, database_url: str
) -> None:
    name, email = workspace_with_user(engine)
    with session_scope(engine) as session:
        workspace = session.get(Workspace, get_or_create_workspace(session, name=name).id)
        assert workspace is not None
        workspace_id = workspace.id
        _, token = create_api_token(session, workspace=workspace, name="test")
    api = httpx.Client(base_url=served + "/api/v1", headers={"Authorization": f"Bearer {token}"})
    made = api.post("/sources", json={"name": "shop"}).json()
    src = MadeSource(made["id"], "shop", made["api_key"], workspace_id, name, token)
    index = pd.date_range(end=last_closed_hour(), periods=10 * 24, freq="h")
    rng = np.random.default_rng(6)
    loads = pd.Series(250 + 20 * rng.standard_normal(len(index)), index=index)
    metric_id = make_metric(engine, src, name="Page Load", kind="mean", counts=loads)
    insight_id = add_insight(engine, src, metric_id, detected_at=last_closed_hour())

    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    _log_in(page, served, email, f"/insights/{insight_id}")
    facts = page.locator(".card.grid")
    expect(facts).to_contain_text("Observed average")
    expect(facts).to_contain_text("Expected average")
    expect(page.locator("h1")).to_contain_text("Page Load (average value)")
    expect(page.locator("#chart polyline.observed")).not_to_have_count(0)
    _shot(page, "insight-average", database_url)

    follow(page, page.locator("h1 a"))
    expect(page).to_have_url(re.compile(rf"/metrics/{metric_id}$"))
    expect(page.locator("#measure")).to_contain_text("average of the events' value")
    expect(page.locator("#chart polyline.observed")).not_to_have_count(0)
    _shot(page, "metric-average", database_url)
    context.close()
