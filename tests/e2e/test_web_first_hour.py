"""What a new user sees after a backfill, in a real browser: charts, Sources, debug view.

Screenshots of each page at laptop and phone widths go to test-artifacts/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
import numpy as np
import pandas as pd
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine

from lantern.db import session_scope
from lantern.workspaces.models import Workspace
from lantern.workspaces.service import create_api_token, get_or_create_workspace
from tests.e2e.conftest import LAPTOP, PHONE, follow, shot, workspace_with_user
from tests.e2e.test_web import _fits_width, _log_in
from tests.factories import history_events, last_closed_hour, make_insight, make_source


@dataclass(frozen=True)
class Backfilled:
    email: str
    source_id: int
    metric_id: int
    older: int  # imported events dated before the last closed hour


def _backfilled(served: str, engine: Engine) -> Backfilled:
    """A source with 20 days of history sent to /v1/import and 60 live events this hour."""
    name, email = workspace_with_user(engine)
    with session_scope(engine) as session:
        workspace = session.get(Workspace, get_or_create_workspace(session, name=name).id)
        assert workspace is not None
        _, token = create_api_token(session, workspace=workspace, name="test")
    api = httpx.Client(base_url=served + "/api/v1", headers={"Authorization": f"Bearer {token}"})
    made = api.post("/sources", json={"name": "shop"}).json()
    index = pd.date_range(end=last_closed_hour(), periods=20 * 24, freq="h")
    hours = np.arange(len(index))
    counts = pd.Series(np.round(8 + 6 * np.sin(2 * np.pi * hours / 24)).astype(int), index=index)
    events = history_events(counts, event="Checkout Completed")
    for i in range(0, len(events), 2000):
        sent = httpx.post(
            served + "/v1/import", json={"batch": events[i : i + 2000]}, auth=(made["api_key"], "")
        )
        assert sent.status_code == 200, sent.text
    live = [{"type": "track", "userId": "u", "event": "Checkout Completed"}] * 60
    assert httpx.post(
        served + "/v1/batch", json={"batch": live}, auth=(made["api_key"], "")
    ).is_success
    metrics = api.get("/metrics", params={"source_id": made["id"]}).json()["items"]
    (metric,) = [m for m in metrics if m["name"] == "Checkout Completed"]
    return Backfilled(email, made["id"], metric["id"], len(events) - int(counts.iloc[-1]))


def _open(page: Page, path: str) -> None:
    page.goto(page.url.split("/", 3)[0] + "//" + page.url.split("/", 3)[2] + path)
    page.wait_for_selector("body[data-ready='1']")


def test_after_a_backfill_charts_sources_and_the_debug_view_tell_the_truth_at_both_widths(
    browser: Browser, served: str, engine: Engine, database_url: str
) -> None:
    made = _backfilled(served, engine)
    for suffix, viewport in (("", LAPTOP), ("-phone", PHONE)):
        context = browser.new_context(viewport=viewport, is_mobile=viewport is PHONE)
        page = context.new_page()
        _log_in(page, served, made.email, f"/metrics/{made.metric_id}")

        # 7 days: hourly, ending with the hour under way, counted so far and marked so
        chart = page.locator("#chart")
        expect(chart).to_have_attribute("data-step", "hour")
        expect(chart.locator("circle.partial")).to_have_count(1)
        expect(page.locator("#chart-caption")).to_contain_text("the hour under way")
        assert _fits_width(page)
        shot(page, f"metric-7-days{suffix}", database_url)

        # 90 days: a point a day from where the data begins, not a mostly empty chart
        page.click("button[data-days='90']")
        expect(chart).to_have_attribute("data-step", "day")
        expect(chart.locator(".chart-note")).to_contain_text("has data since")
        points = int(chart.get_attribute("data-points") or 0)
        assert 90 <= points <= 91  # the days asked for; the chart draws from the first with data
        expect(page.locator("#chart-caption")).to_contain_text("One point a day")
        box = chart.locator("svg").bounding_box()
        assert box is not None
        chart.locator("svg").hover(position={"x": box["width"] * 0.6, "y": box["height"] / 2})
        expect(chart.locator(".tooltip")).to_contain_text("per hour on average")
        expect(chart.locator(".tooltip")).to_contain_text(re.compile(r"of 2[34] hours outside"))
        assert _fits_width(page)
        shot(page, f"metric-90-days{suffix}", database_url)

        # Sources: this hour's events by their own time; the backfill named apart
        _open(page, "/sources")
        traffic = page.locator(f"[data-traffic='{made.source_id}']")
        expect(traffic).to_contain_text("60 events this hour")
        expect(traffic).to_contain_text(
            f"{made.older:,} older events received in the last hour (history sent to /v1/import)"
        )
        assert _fits_width(page)
        shot(page, f"sources-after-import{suffix}", database_url)

        # the debug view pages its events ten at a time, so the page stays short
        _open(page, f"/sources/{made.source_id}")
        debug = page.request.get(f"{served}/api/v1/sources/{made.source_id}/debug").json()
        kept = len(debug["accepted"])
        assert kept > 10
        expect(page.locator("#accepted tbody tr")).to_have_count(10)
        pages = page.locator("#accepted-pages")
        expect(pages).to_contain_text(f"1\u201310 of the latest {kept}")
        expect(pages.locator("button.newer")).to_be_disabled()
        pages.locator("button.older").click()
        expect(pages).to_contain_text(f"11\u2013{min(20, kept)} of the latest {kept}")
        expect(page.locator("#accepted tbody tr")).to_have_count(min(10, kept - 10))
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height < 4000, height
        assert _fits_width(page)
        shot(page, f"debug-view-paged{suffix}", database_url)
        context.close()


def test_an_insight_says_how_sure_its_range_what_its_labels_mean_and_what_to_do(
    browser: Browser, served: str, engine: Engine, database_url: str
) -> None:
    name, email = workspace_with_user(engine)
    src = make_source(engine, workspace=name)
    insight_id = make_insight(engine, src)
    for suffix, viewport in (("", LAPTOP), ("-phone", PHONE)):
        context = browser.new_context(viewport=viewport, is_mobile=viewport is PHONE)
        page = context.new_page()
        _log_in(page, served, email)
        card = page.locator(f"[data-insight='{insight_id}']")
        expect(card.locator(".pill.sureness")).to_have_text("Very unlikely to be chance")
        expect(card.locator(".range")).to_contain_text("Normally 45\u201375 events an hour")
        labels = page.locator("#labels")
        labels.locator("summary").click()
        expect(labels).to_contain_text("high: the metric stopped, or moved by half or more")
        expect(labels).to_contain_text("open: going on now")
        assert _fits_width(page)
        shot(page, f"newsfeed-in-words{suffix}", database_url)

        follow(page, card)
        meaning = page.locator("#meaning")
        expect(meaning).to_contain_text("How sure: Very unlikely to be chance: by chance")
        expect(meaning).to_contain_text("20 an hour observed over 3 hours")
        expect(meaning).to_contain_text("What to do:")
        assert _fits_width(page)
        shot(page, f"insight-in-words{suffix}", database_url)
        context.close()
