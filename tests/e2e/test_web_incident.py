"""A source-wide incident in a real browser: its line on the newsfeed card and on the
insight's page, which lists the incident's other metrics."""

from __future__ import annotations

import uuid

import pandas as pd
from playwright.sync_api import Browser, expect
from sqlalchemy import Engine

from lantern.accounts.service import create_user
from lantern.db import session_scope
from lantern.workspaces.service import get_or_create_workspace
from tests.e2e.conftest import LAPTOP, shot
from tests.factories import last_closed_hour, make_metric, make_source, open_story

PASSWORD = "lantern-browser-test"


def test_the_newsfeed_and_the_insight_page_name_a_source_wide_incident(
    browser: Browser, served: str, engine: Engine, database_url: str
) -> None:
    name = f"web-{uuid.uuid4().hex[:10]}"
    email = f"{name}@example.com"
    with session_scope(engine) as session:
        workspace = get_or_create_workspace(session, name=name)
        create_user(session, workspace=workspace, email=email, password=PASSWORD)
    src = make_source(engine, workspace=name)
    metrics = [make_metric(engine, src, name=f"Event {i}") for i in range(5)]
    start = last_closed_hour() - pd.Timedelta(hours=3)
    leader, *_ = open_story(
        engine, src, metrics[:4], start=start, detected_at=start + pd.Timedelta(hours=1)
    )

    page = browser.new_context(viewport=LAPTOP).new_page()
    page.goto(served + "/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator(".insight[data-insight]")).to_have_count(1)  # one card for the source
    card = page.locator(f".insight[data-insight='{leader}']")
    line = card.locator(".incident")
    expect(line).to_contain_text(
        "Source-wide incident: web: 4 of 5 metrics went down or quiet together since "
        f"{start:%H:%M} UTC"
    )
    shot(page, "newsfeed-incident", database_url)

    card.click()
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#incident")).to_contain_text("4 of 5 metrics went down or quiet")
    others = page.locator("h2", has_text="The incident's other metrics")
    expect(others).to_have_count(1)
    expect(page.locator(".card .insight[data-insight]")).to_have_count(3)
    shot(page, "insight-incident", database_url)
