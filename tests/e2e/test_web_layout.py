"""A metric's page stays put while its chart loads: nothing a user is about to click moves."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, ViewportSize, expect
from sqlalchemy import Engine

from tests.e2e.conftest import LAPTOP, PHONE, log_in, shot, workspace_with_user
from tests.factories import make_metric, make_source

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


@pytest.mark.parametrize("days", [14, 2], ids=["two-weeks-old", "two-days-old"])
@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_a_metrics_page_does_not_move_when_its_chart_arrives(
    browser: Browser,
    served: str,
    engine: Engine,
    database_url: str,
    viewport: ViewportSize,
    days: int,
) -> None:
    name, email = workspace_with_user(engine)
    src = make_source(engine, workspace=name)
    metric_id = make_metric(engine, src, name="Checkout Completed", days=days)

    page = browser.new_context(viewport=viewport).new_page()
    page.add_init_script(WATCH_SHIFTS)
    page.goto(f"{served}/metrics/{metric_id}")
    log_in(page, email)
    expect(page.locator("#chart polyline.observed")).not_to_have_count(0)
    expect(page.locator("#chart-caption")).to_contain_text("One point an hour")
    note = page.locator("#chart .chart-note")
    if days < 7:
        # a week's chart of a younger metric says where its data begins, above the plot
        expect(note).to_contain_text("has data since")
        note_bottom = page.evaluate(
            "document.querySelector('#chart .chart-note').getBoundingClientRect().bottom"
        )
        plot_top = page.evaluate(
            "document.querySelector('#chart polyline.observed').getBoundingClientRect().top"
        )
        assert note_bottom <= plot_top + 0.5
        width = "phone" if viewport == PHONE else "laptop"
        shot(page, f"metric-young-{width}", database_url)
    else:
        expect(note).to_have_count(0)
    # the cards below the chart (its alerts, its insights) are where they were first drawn
    # (a shift score is the share of the screen that moved times how far: 0.015 was half
    # the screen moving by the 40 pixels the chart grew past its box, and its caption's line)
    assert page.evaluate("window.__shifts") < 0.005
