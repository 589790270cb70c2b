"""A metric's page stays put while its chart loads: nothing a user is about to click moves."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Browser, ViewportSize, expect
from sqlalchemy import Engine

from lantern.accounts.service import create_user
from lantern.db import session_scope
from lantern.workspaces.service import get_or_create_workspace
from tests.e2e.conftest import LAPTOP, PHONE, log_in
from tests.factories import make_metric, make_source

PASSWORD = "lantern-browser-test"

# Sums the page's layout shifts (the Layout Instability API, as Chromium reports them to
# the page) that no input of the user's caused, from the first paint on.
WATCH_SHIFTS = """
window.__shifts = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (!entry.hadRecentInput) window.__shifts += entry.value;
  }
}).observe({ type: "layout-shift", buffered: true });
"""


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_a_metrics_page_does_not_move_when_its_chart_arrives(
    browser: Browser, served: str, engine: Engine, viewport: ViewportSize
) -> None:
    name = f"web-{uuid.uuid4().hex[:10]}"
    email = f"{name}@example.com"
    with session_scope(engine) as session:
        workspace = get_or_create_workspace(session, name=name)
        create_user(session, workspace=workspace, email=email, password=PASSWORD)
    src = make_source(engine, workspace=name)
    metric_id = make_metric(engine, src, name="Checkout Completed")

    page = browser.new_context(viewport=viewport).new_page()
    page.add_init_script(WATCH_SHIFTS)
    page.goto(f"{served}/metrics/{metric_id}")
    log_in(page, email, PASSWORD)
    expect(page.locator("#chart polyline.observed")).not_to_have_count(0)
    expect(page.locator("#chart-caption")).to_contain_text("One point an hour")
    # the cards below the chart (its alerts, its insights) are where they were first drawn
    # (a shift score is the share of the screen that moved times how far: 0.015 was half
    # the screen moving by the 40 pixels the chart grew past its box, and its caption's line)
    assert page.evaluate("window.__shifts") < 0.005
