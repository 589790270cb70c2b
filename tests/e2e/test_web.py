"""The web pages in a real browser (Debian's Chromium, headless) against `lantern serve`.

A screenshot of each page is saved under test-artifacts/ (laptop and phone widths).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pandas as pd
import pytest
import segment.analytics as segment
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Route,
    expect,
)
from sqlalchemy import Engine

from lantern.config import Settings
from lantern.db import session_scope
from lantern.metrics.service import epoch_hour
from lantern.pipeline import run_hour
from lantern.workspaces.models import Workspace
from lantern.workspaces.service import create_api_token, get_or_create_workspace
from tests.e2e.conftest import (
    LAPTOP,
    PASSWORD,
    PHONE,
    follow,
    log_in,
    start_server,
    workspace_with_user,
)
from tests.e2e.conftest import shot as _shot
from tests.factories import history_events, make_metric, make_source
from tests.fakeslack import CLIENT_ID, CLIENT_SECRET, GOOD_CODE, FakeSlack


def _log_in(page: Page, served: str, email: str, next_path: str = "/") -> None:
    page.goto(served + next_path)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    log_in(page, email)
    expect(page).to_have_url(served + next_path)


def _fits_width(page: Page) -> bool:
    fits: bool = page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1"
    )
    return fits


def _csp_violations(page: Page) -> list[str]:
    """The page's console reports of Content-Security-Policy violations, as they come."""
    found: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            found.append(message.text)

    page.on("console", note)
    return found


def test_a_new_user_logs_in_creates_a_source_and_watches_its_events_arrive(
    browser: Browser, served: str, engine: Engine, database_url: str
) -> None:
    _, email = workspace_with_user(engine)
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    violations = _csp_violations(page)
    login = page.goto(served + "/login")
    assert login is not None
    assert "script-src 'self';" in login.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
    assert login.headers["x-content-type-options"] == "nosniff"
    _shot(page, "login", database_url)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("wrong email or password")

    _log_in(page, served, email, "/settings")
    page.fill("#create-source input[name=name]", "web-app")
    page.click("#create-source button[type=submit]")
    key_box = page.locator("#api-key")
    expect(key_box).to_have_value(re.compile(r"^[A-Za-z0-9]{32}$"))
    key = key_box.input_value()
    expect(page.locator("#sources")).to_contain_text("web-app")
    expect(page.locator("#add-to-slack, #slack details")).not_to_have_count(0)
    page.select_option("#sensitivity", "high")
    expect(page.locator("#sensitivity + span")).to_have_text("Saved: high.")
    _shot(page, "settings", database_url)

    follow(page, page.locator("#sources a:has-text('web-app')"))
    expect(page.locator(".countdown")).to_have_text("waiting for events")
    expect(page.locator("#accepted")).to_contain_text("No events yet")

    client = segment.Client(key, host=served, sync_mode=True)
    client.track("user-secret-id", "Signed Up", {"plan": "pro", "value": 12})
    client.page("user-secret-id", "Docs", "Pricing")
    client.identify("user-secret-id", {"email": "secret@example.com"})
    client.flush()

    # The debug view refreshes itself: the events appear without a reload.
    expect(page.locator("#accepted")).to_contain_text("Signed Up", timeout=10_000)
    expect(page.locator("#accepted")).to_contain_text("Pricing")
    expect(page.locator("#accepted")).not_to_contain_text("user-secret-id")
    expect(page.locator("#accepted")).not_to_contain_text("secret@example.com")
    expect(page.locator(".countdown")).to_have_text(re.compile(r"training · 6 d 2\d h left"))
    # ... and the breakdowns: the library's name, counted per value, never the ids
    expect(page.locator("#breakdowns")).to_contain_text("analytics-python: 3")
    expect(page.locator("#breakdowns")).not_to_contain_text("user-secret-id")
    _shot(page, "debug-view", database_url)

    page.goto(served + "/metrics")
    page.wait_for_selector("body[data-ready='1']")
    row = page.locator("tr", has_text="Signed Up").first
    expect(row).to_contain_text(re.compile(r"training · 6 d 2\d h left"))
    _shot(page, "metrics", database_url)
    context.close()
    assert violations == []


def _history(end: pd.Timestamp) -> pd.Series:
    """Ten days of a daily rhythm whose last six hours fall to almost nothing."""
    index = pd.date_range(end=end, periods=10 * 24, freq="h", tz="UTC")
    hours = np.arange(len(index))
    counts = 40 + 25 * np.sin(2 * np.pi * (hours % 24) / 24)
    counts[-6:] = 1
    return pd.Series(np.round(counts).astype(int), index=index)


def test_with_history_an_insight_opens_from_the_newsfeed_with_its_chart_and_its_metric_mutes(
    browser: Browser, served: str, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    name, email = workspace_with_user(engine)
    with session_scope(engine) as session:
        workspace = session.get(Workspace, get_or_create_workspace(session, name=name).id)
        assert workspace is not None
        _, token = create_api_token(session, workspace=workspace, name="test")
    api = httpx.Client(base_url=served + "/api/v1", headers={"Authorization": f"Bearer {token}"})
    made = api.post("/sources", json={"name": "shop"}).json()
    end = pd.Timestamp(datetime.now(UTC) - timedelta(hours=1)).floor("h")
    events = history_events(_history(end), event="Checkout Completed")
    for i in range(0, len(events), 2000):
        response = httpx.post(
            served + "/v1/import", json={"batch": events[i : i + 2000]}, auth=(made["api_key"], "")
        )
        assert response.status_code == 200, response.text
    settings = Settings(data_dir=tmp_path, database_url=database_url, scheduler_enabled=False)
    run_hour(engine, settings, hour=epoch_hour(end), worker="test", source_id=made["id"])
    feed = api.get("/insights").json()["items"]
    assert [(i["metric_label"], i["direction"]) for i in feed][:1] == [
        ("Checkout Completed", "down")
    ]

    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    violations = _csp_violations(page)
    _log_in(page, served, email)
    card = page.locator(".insight", has_text="Checkout Completed").first
    expect(card).to_contain_text("↓")
    # the page names the kind as the API does
    expect(card).to_contain_text(feed[0]["kind_label"])
    _shot(page, "newsfeed", database_url)

    follow(page, card)
    expect(page).to_have_url(re.compile(r"/insights/\d+$"))
    chart = page.locator("#chart")
    expect(chart.locator("polyline.observed")).not_to_have_count(0)
    expect(chart.locator("polygon.band")).not_to_have_count(0)
    expect(chart.locator("rect.anomaly")).not_to_have_count(0)
    _shot(page, "insight", database_url)

    page.click("#feedback button:text-is('Useful')")
    expect(page.locator("#feedback button[aria-pressed='true']")).to_have_text("Useful")
    page.click("#watch button:has-text('Mute metric')")
    expect(page.locator("#watch button", has_text="Unmute")).to_be_visible()
    expect(page.locator("#watch button", has_text="Mute metric")).to_have_count(0)
    insight_id = int(page.url.rsplit("/", 1)[1])
    assert api.get(f"/insights/{insight_id}").json()["useful"] is True
    metric = api.get(f"/insights/{insight_id}").json()["metric"]
    assert metric["muted"] is True

    follow(page, page.locator("h1 a"))
    expect(page.locator("[data-status]").first).to_have_text("muted")
    page.click("button[data-days='30']")
    expect(page.locator("button[data-days='30']")).to_have_attribute("aria-pressed", "true")
    expect(chart.locator("polyline.observed")).not_to_have_count(0)
    # who its Slack alerts mention, and what they say to check first
    page.fill("#owner-form input[name=owner]", "@ana")
    page.click("#owner-form button[type=submit]")
    expect(page.locator("#owner-said [role=alert]")).to_contain_text("Slack member id")
    page.fill("#owner-form input[name=owner]", "U0ANA")
    page.fill("#owner-form textarea[name=note]", "Check the payment provider first")
    page.click("#owner-form button[type=submit]")
    expect(page.locator("#owner-said")).to_contain_text("Saved")
    shown = api.get(f"/metrics/{metric['id']}").json()
    assert (shown["owner"], shown["note"]) == ("U0ANA", "Check the payment provider first")
    _shot(page, "metric", database_url)
    # the team's "not useful" shows on the metric's page, which forgets it on request
    assert api.post(f"/insights/{insight_id}/feedback", json={"useful": False}).is_success
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    said = page.locator("#metric-feedback")
    expect(said).to_contain_text('"not useful" 1 more time than "useful"')
    said.locator("button", has_text="Reset").click()
    expect(page.locator("#feedback-said")).to_contain_text("Forgotten")
    assert api.get(f"/metrics/{metric['id']}").json()["feedback"] == {}
    context.close()
    assert violations == []

    phone = browser.new_context(viewport=PHONE, is_mobile=True)
    page = phone.new_page()
    _log_in(page, served, email)
    expect(page.locator(".insight").first).to_be_visible()
    assert _fits_width(page)
    _shot(page, "newsfeed-phone", database_url)
    page.goto(served + f"/insights/{insight_id}")
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#chart polyline.observed")).not_to_have_count(0)
    assert _fits_width(page)
    _shot(page, "insight-phone", database_url)
    phone.close()


def test_the_receive_insights_in_slack_button_connects_the_workspace_by_oauth(
    browser: Browser, engine: Engine, database_url: str, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    process, served = start_server(
        database_url,
        tmp_path,
        LANTERN_SLACK_CLIENT_ID=CLIENT_ID,
        LANTERN_SLACK_CLIENT_SECRET=CLIENT_SECRET,
        LANTERN_SLACK_BASE_URL=fake_slack.api_url,
    )
    try:
        _, email = workspace_with_user(engine)
        context = browser.new_context(viewport=LAPTOP)
        page = context.new_page()
        asked: list[dict[str, list[str]]] = []

        # Slack's authorize page, answered inside the browser: it approves and sends the
        # browser back to Lantern's callback with a code, as Slack does.
        def authorize(route: Route) -> None:
            query = parse_qs(urlparse(route.request.url).query)
            asked.append(query)
            back = f"{query['redirect_uri'][0]}?code={GOOD_CODE}&state={query['state'][0]}"
            route.fulfill(status=302, headers={"Location": back})

        page.route("https://slack.com/**", authorize)
        _log_in(page, served, email, "/settings")
        expect(page.locator("#slack")).to_contain_text("Not connected yet")
        page.click("#add-to-slack")
        expect(page).to_have_url(served + "/settings?slack=connected")
        page.wait_for_selector("body[data-ready='1']")
        expect(page.locator("#slack")).to_contain_text("Connected to Acme")
        assert asked[0]["client_id"] == [CLIENT_ID]
        assert "chat:write" in asked[0]["scope"][0].split(",")
        _shot(page, "settings-slack", database_url)
        context.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_pages_send_a_visitor_without_a_session_to_the_login_page(served: str) -> None:
    response = httpx.get(served + "/metrics?source_id=3", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/metrics%3Fsource_id%3D3"


@pytest.mark.parametrize(
    "hostile_next",
    ["/%5Cevil.example/", "/\\evil.example/", "/%09/evil.example/", "//evil.example/"],
)
def test_logging_in_with_a_next_that_points_off_site_lands_on_the_newsfeed(
    browser: Browser, served: str, engine: Engine, hostile_next: str
) -> None:
    _, email = workspace_with_user(engine)
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    # were the browser sent off site, it would get this page, never the network
    page.route("http://evil.example/**", lambda route: route.fulfill(body="off site"))
    page.goto(served + "/login?next=" + hostile_next)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/login)"))
    landed = page.url
    context.close()
    assert landed == served + "/"


def test_logging_in_with_a_next_on_this_site_goes_there(
    browser: Browser, served: str, engine: Engine
) -> None:
    _, email = workspace_with_user(engine)
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    _log_in(page, served, email, "/metrics?source_id=3")
    landed = page.url
    context.close()
    assert landed == served + "/metrics?source_id=3"


def test_the_metrics_page_pages_through_a_long_list_and_searches_it(
    browser: Browser, served: str, engine: Engine, database_url: str
) -> None:
    name, email = workspace_with_user(engine)
    src = make_source(engine, workspace=name)
    for number in range(60):
        make_metric(engine, src, name=f"Event {number:02d}", days=1)
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    _log_in(page, served, email, "/metrics")
    rows = page.locator("tbody tr[data-metric]")
    where = page.locator("#metrics-where")
    expect(where).to_have_text("1\N{EN DASH}50 of 60")
    expect(rows).to_have_count(50)
    expect(page.locator("#metrics-prev")).to_be_disabled()
    page.click("#metrics-next")
    expect(where).to_have_text("51\N{EN DASH}60 of 60")
    expect(rows).to_have_count(10)
    expect(rows.first).to_contain_text("Event 50")
    expect(page.locator("#metrics-next")).to_be_disabled()
    _shot(page, "metrics-page-2", database_url)
    page.click("#metrics-prev")
    expect(where).to_have_text("1\N{EN DASH}50 of 60")
    expect(rows.first).to_contain_text("Event 00")
    page.click("#metrics-next")
    page.fill("input[name=q]", "event 3")  # a new search starts from its first page
    expect(where).to_have_text("1\N{EN DASH}10 of 10")
    expect(rows).to_have_count(10)
    expect(page.locator("#metrics-pager")).to_be_hidden()
    page.fill("input[name=q]", "no such event")
    expect(page.locator("tbody")).to_contain_text("No metric matches these filters.")
    context.close()
