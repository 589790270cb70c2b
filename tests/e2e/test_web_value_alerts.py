"""Alerts per breakdown value in a real browser: chosen on a metric's page, each value then
listed as a metric of its own under the metric it splits."""

from __future__ import annotations

from playwright.sync_api import Browser, ConsoleMessage, expect
from sqlalchemy import Engine

from tests.e2e.conftest import LAPTOP, PHONE, follow, log_in, shot, workspace_with_user
from tests.factories import add_breakdown, breakdown_counts, make_metric, make_source

ANDROID = "Checkout Completed \u2014 OS Android"


def test_a_user_watches_each_os_of_a_metric_and_finds_the_values_listed_under_it(
    browser: Browser, served: str, engine: Engine, database_url: str
) -> None:
    name, email = workspace_with_user(engine)
    src = make_source(engine, workspace=name)
    platforms, _ = breakdown_counts({"iOS": 0.6, "Web": 0.25, "Android": 0.15}, dimension="os")
    metric_id = make_metric(engine, src, name="Checkout Completed", counts=platforms.sum(axis=1))
    add_breakdown(engine, src, metric_id, platforms)

    page = browser.new_context(viewport=LAPTOP).new_page()
    violations: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", note)
    page.goto(f"{served}/metrics/{metric_id}")
    log_in(page, email)
    card = page.locator("#value-alerts")
    expect(card.locator("h2")).to_have_text("Alerts per value")
    os_box = card.locator("input[name=dimension][value=os]")
    expect(os_box).not_to_be_checked()
    expect(card.locator("#value-metrics")).to_have_count(0)
    os_box.check()
    card.locator("button[type=submit]").click()
    expect(card.locator(".ok")).to_contain_text("Saved: each value is a metric of its own")
    values = card.locator("#value-metrics li")
    expect(values).to_have_count(3)
    # four weeks of breakdowns: each value is judged at once, not trained for a week
    expect(values.locator(".pill[data-status='active']")).to_have_count(3)
    expect(card.locator("input[name=dimension][value=os]")).to_be_checked()
    shot(page, "metric-value-alerts", database_url)
    page.set_viewport_size(PHONE)
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1"
    )
    shot(page, "metric-value-alerts-phone", database_url)
    page.set_viewport_size(LAPTOP)

    # the value's own page says whose events it counts and links back
    follow(page, values.get_by_role("link", name=ANDROID))
    expect(page.locator("h1")).to_have_text(ANDROID)
    of = page.locator("#value-of")
    expect(of).to_contain_text("whose os is Android")
    expect(page.locator("#value-alerts")).to_have_count(0)

    # the metrics list shows the values right under the metric they split
    page.goto(f"{served}/metrics")
    page.wait_for_selector("body[data-ready='1']")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(0).locator("a")).to_have_text("Checkout Completed")
    expect(rows.nth(0)).not_to_have_class("value-of")
    for i in (1, 2, 3):
        expect(rows.nth(i)).to_have_class("value-of")
    expect(rows.nth(1).locator("a")).to_have_text(ANDROID)  # by label: Android, iOS, Web
    shot(page, "metrics-value-alerts", database_url)

    # taking the dimension off deletes the values' metrics
    page.goto(f"{served}/metrics/{metric_id}")
    page.wait_for_selector("body[data-ready='1']")
    card = page.locator("#value-alerts")
    card.locator("input[name=dimension][value=os]").uncheck()
    card.locator("button[type=submit]").click()
    expect(card.locator(".ok")).to_contain_text("no value is watched on its own")
    expect(card.locator("#value-metrics")).to_have_count(0)
    assert violations == []
