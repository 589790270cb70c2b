"""Source- and workspace-wide incidents in a real browser: the line on the newsfeed card and
on the insight's page, which lists the incident's other metrics (and a workspace's
sources)."""

from __future__ import annotations

import uuid

import pandas as pd
from playwright.sync_api import Browser, expect
from sqlalchemy import Engine

from lantern.accounts.service import create_user
from lantern.db import session_scope
from lantern.workspaces.service import get_or_create_workspace
from tests.e2e.conftest import LAPTOP, PASSWORD, PHONE, follow, log_in, shot, workspace_with_user
from tests.factories import last_closed_hour, make_metric, make_source, open_story


def test_the_newsfeed_and_the_insight_page_name_a_source_wide_incident(
    browser: Browser, served: str, engine: Engine, database_url: str
) -> None:
    name, email = workspace_with_user(engine)
    src = make_source(engine, workspace=name)
    metrics = [make_metric(engine, src, name=f"Event {i}") for i in range(5)]
    start = last_closed_hour() - pd.Timedelta(hours=3)
    leader, *_ = open_story(
        engine, src, metrics[:4], start=start, detected_at=start + pd.Timedelta(hours=1)
    )

    page = browser.new_context(viewport=LAPTOP).new_page()
    page.goto(served + "/")
    log_in(page, email)
    expect(page.locator(".insight[data-insight]")).to_have_count(1)  # one card for the source
    card = page.locator(f".insight[data-insight='{leader}']")
    line = card.locator(".incident")
    expect(line).to_contain_text(
        "Source-wide incident: web: 4 of 5 metrics went down or quiet together since "
        f"{start:%H:%M} UTC"
    )
    shot(page, "newsfeed-incident", database_url)

    follow(page, card)
    expect(page.locator("#incident")).to_contain_text("4 of 5 metrics went down or quiet")
    others = page.locator("h2", has_text="The incident's other metrics")
    expect(others).to_have_count(1)
    expect(page.locator(".card .insight[data-insight]")).to_have_count(3)
    shot(page, "insight-incident", database_url)


def test_the_newsfeed_and_the_insight_page_name_a_workspace_wide_incident_and_its_sources(
    browser: Browser, served: str, engine: Engine, database_url: str
) -> None:
    name = f"ws-{uuid.uuid4().hex[:10]}"
    email = f"{name}@example.com"
    with session_scope(engine) as session:
        workspace = get_or_create_workspace(session, name=name)
        create_user(session, workspace=workspace, email=email, password=PASSWORD)
    start = last_closed_hour() - pd.Timedelta(hours=3)
    leaders = []
    for source, size in (("web", 4), ("ios", 3), ("android", 3)):
        src = make_source(engine, name=source, workspace=name)
        metrics = [make_metric(engine, src, name=f"{source.title()} {i}") for i in range(size)]
        leaders.append(
            open_story(
                engine, src, metrics, start=start, detected_at=start + pd.Timedelta(hours=1)
            )[0]
        )

    for viewport, device in ((LAPTOP, "laptop"), (PHONE, "phone")):
        page = browser.new_context(viewport=viewport).new_page()
        page.goto(served + "/")
        log_in(page, email)
        # one card for the workspace: web's story leads, the others' hang under it
        expect(page.locator(".insight[data-insight]")).to_have_count(1)
        line = page.locator(f".insight[data-insight='{leaders[0]}'] .incident")
        expect(line).to_have_attribute("data-incident", "workspace")
        expect(line).to_contain_text(
            f"Workspace-wide incident: All 3 sources of workspace {name}: 10 of 10 metrics went "
            f"down or quiet together since {start:%H:%M} UTC"
        )
        shot(page, f"newsfeed-workspace-incident-{device}", database_url)

        follow(page, page.locator(f".insight[data-insight='{leaders[0]}']"))
        sources = page.locator("#incident .incident-sources li")
        # the leader's source first, then the larger, then by name
        expect(sources).to_have_text(
            ["web: 4 of 4 metrics", "android: 3 of 3 metrics", "ios: 3 of 3 metrics"]
        )
        expect(page.locator(".card .insight[data-insight]")).to_have_count(9)
        shot(page, f"insight-workspace-incident-{device}", database_url)
        page.context.close()
