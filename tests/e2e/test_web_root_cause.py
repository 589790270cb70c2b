"""An insight's root cause in a real browser: its line on the newsfeed card and on the
insight's page, with the values ranked and each value told charted against its own
expectation."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, ConsoleMessage, expect
from sqlalchemy import Engine

from tests.e2e.conftest import LAPTOP, PHONE, follow, log_in, shot, workspace_with_user
from tests.factories import (
    add_breakdown,
    breakdown_counts,
    make_metric,
    make_source,
    open_insight,
)


def test_the_newsfeed_and_the_insight_page_name_the_version_that_stopped_and_chart_it(
    browser: Browser, served: str, engine: Engine, database_url: str
) -> None:
    name, email = workspace_with_user(engine)
    src = make_source(engine, workspace=name)
    versions, start = breakdown_counts(
        {"5.2": 0.45, "5.1.3": 0.35, "5.0": 0.2}, change={"5.2": -0.92}, weeks=2
    )
    metric_id = make_metric(engine, src, name="Checkout", counts=versions.sum(axis=1))
    add_breakdown(engine, src, metric_id, versions)
    insight_id = open_insight(engine, src, metric_id, start=start, detected_at=versions.index[-1])

    page = browser.new_context(viewport=LAPTOP).new_page()
    violations: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", note)
    page.goto(served + "/")
    log_in(page, email)
    card = page.locator(f".insight[data-insight='{insight_id}']")
    line = card.locator(".root-cause")
    expect(line).to_contain_text(re.compile("Root cause: app version 5\\.2: \u2212(8|9)\\d%"))
    expect(line).to_contain_text("% of the drop)")
    text = line.inner_text().removeprefix("Root cause: ").strip()
    shot(page, "newsfeed-root-cause", database_url)

    follow(page, card)
    cause = page.locator("#root-cause")
    # the page says what the card said, word for word
    expect(cause.locator(".root-cause-line")).to_have_text(text)
    expect(cause.locator("tr.named td").first).to_have_text("5.2")
    expect(cause.locator("tbody tr")).to_have_count(3)
    chart = cause.locator(".chart[data-value='5.2']")
    expect(chart.locator("polyline.observed")).not_to_have_count(0)
    expect(chart.locator("polyline.expected")).not_to_have_count(0)
    expect(chart.locator("rect.anomaly")).to_have_count(1)  # the episode's hours, shaded
    shot(page, "insight-root-cause", database_url)
    page.set_viewport_size(PHONE)
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1"
    )
    assert violations == []
