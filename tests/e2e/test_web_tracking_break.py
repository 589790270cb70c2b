"""A tracking break in a real browser: its line on the newsfeed card, and on the insight's
page with a link to the suspected new name's metric."""

from __future__ import annotations

from playwright.sync_api import Browser, ConsoleMessage, expect
from sqlalchemy import Engine

from tests.e2e.conftest import LAPTOP, PHONE, follow, log_in, shot, workspace_with_user
from tests.factories import add_insight, last_closed_hour, make_metric, make_source


def test_the_newsfeed_and_the_insight_page_name_the_suspected_new_name(
    browser: Browser, served: str, engine: Engine, database_url: str
) -> None:
    name, email = workspace_with_user(engine)
    src = make_source(engine, workspace=name)
    stopped = make_metric(engine, src, name="Order Completed", days=9)
    renamed = make_metric(engine, src, name="Order Completed v2", days=0.2)
    insight_id = add_insight(
        engine,
        src,
        stopped,
        detected_at=last_closed_hour(),
        kind="tracking_break",
        direction="down",
        tracking_break={
            "detected_as": "outage",
            "kept_share": 1.01,
            "renamed_to": "Order Completed v2",
            "renamed_metric_id": renamed,
            "volume_ratio": 0.97,
            "app_version": None,
        },
    )

    page = browser.new_context(viewport=LAPTOP).new_page()
    violations: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", note)
    page.goto(served + "/")
    log_in(page, email)
    card = page.locator(f".insight[data-insight='{insight_id}']")
    expect(card).to_contain_text("Tracking break ↓")
    line = card.locator(".tracking-break")
    expect(line).to_have_text(
        "Tracking break: renamed to 'Order Completed v2'? That name started as it stopped, "
        "at 97% of its volume"
    )
    shot(page, "newsfeed-tracking-break", database_url)

    follow(page, card)
    told = page.locator("#tracking-break")
    expect(told).to_contain_text("renamed to 'Order Completed v2'?")
    follow(page, told.get_by_role("link", name="Open Order Completed v2"))
    assert page.url.endswith(f"/metrics/{renamed}")
    page.go_back()
    page.wait_for_selector("body[data-ready='1']")
    shot(page, "insight-tracking-break", database_url)
    page.set_viewport_size(PHONE)
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1"
    )
    assert violations == []
