"""A release renames an event, sent live by the official Segment client: Lantern tells a
tracking break naming the new name, on Slack and in the API, not an outage."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import segment.analytics as segment
from sqlalchemy import Engine

from lantern.config import Settings
from lantern.db import session_scope
from lantern.metrics.service import epoch_hour
from lantern.notify.connection import connect_with_token
from lantern.notify.outbox import flush_outbox
from lantern.pipeline import run_hour
from tests.e2e.conftest import start_server
from tests.factories import MadeSource, history_events, last_closed_hour, make_source, rhythm
from tests.fakeslack import GOOD_TOKEN, FakeSlack
from tests.helpers import totals

RENAMED_HOURS = 4
LIVE_HOURS = 8  # the last hours are sent live; the days before, backfilled


def test_a_renamed_event_sent_by_analytics_python_is_told_as_a_tracking_break(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    """Ten days of Order Completed and Search; in the last four hours the app sends "Order
    Completed v2" instead (a release renamed it), live through analytics-python. The
    hourly passes open one insight, a tracking break naming the new name, in Slack and the
    API. A database and server of its own: its hourly passes claim their hours."""
    engine = fresh_engine
    process, served = start_server(engine.url.render_as_string(hide_password=False), tmp_path)
    try:
        rename_is_told(engine, served, settings, fake_slack)
    finally:
        process.terminate()
        process.wait(timeout=10)


def rename_is_told(engine: Engine, served: str, settings: Settings, fake_slack: FakeSlack) -> None:
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    src = make_source(engine, name="shop")
    with session_scope(engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="alerts",
            settings=settings,
        )
    end = last_closed_hour()
    orders = rhythm(end, peak=100, seed=21)
    search = rhythm(end, peak=80, seed=22)
    renamed_from = orders.index[-RENAMED_HOURS]
    live_from = orders.index[-LIVE_HOURS]
    backfill(served, src, orders[orders.index < live_from], search[search.index < live_from])
    sent = send_live(served, src, orders[live_from:], search[live_from:], renamed_from)
    assert totals(engine, src.id)[("track", "Order Completed v2")] == sent  # none lost

    last = epoch_hour(end)
    for hour in range(last - RENAMED_HOURS - 1, last + 1):
        run_hour(engine, settings, hour=hour, worker="e2e", now=datetime.now(UTC))
    flush_outbox(engine, settings, now=datetime.now(UTC))

    api = httpx.Client(
        base_url=served + "/api/v1", headers={"Authorization": f"Bearer {src.token}"}
    )
    feed = api.get("/insights").json()["items"]
    [told] = [i for i in feed if i["metric_label"].startswith("Order Completed")]
    assert told["kind"] == "tracking_break"
    assert told["kind_label"] == "Tracking break"
    assert told["tracking_break"]["detected_as"] == "outage"
    assert told["tracking_break"]["renamed_to"] == "Order Completed v2"
    page = api.get(f"/insights/{told['id']}").json()
    assert page["tracking_break"]["text"] == told["tracking_break"]["text"]
    [alert] = fake_slack.top_level()
    assert "Order Completed (track event, shop) stopped being tracked" in alert["text"]
    blocks = json.dumps(alert["blocks"], ensure_ascii=False)
    assert f"*Tracking break:* {told['tracking_break']['text']}" in blocks


def backfill(served: str, src: MadeSource, orders: pd.Series, search: pd.Series) -> None:
    """The days before, sent to /v1/import as a backfill would."""
    events = history_events(orders, event="Order Completed") + history_events(
        search, event="Search"
    )
    for i in range(0, len(events), 2000):
        response = httpx.post(
            served + "/v1/import", json={"batch": events[i : i + 2000]}, auth=(src.key, "")
        )
        assert response.status_code == 200, response.text
        assert response.json()["rejected"] == []


def send_live(
    served: str,
    src: MadeSource,
    orders: pd.Series,
    search: pd.Series,
    renamed_from: pd.Timestamp,
) -> int:
    """The last hours through analytics-python; returns how many orders went as the new
    name."""
    errors: list[Exception] = []
    client = segment.Client(src.key, host=served, on_error=lambda e, _b: errors.append(e))
    renamed = 0
    for hour, count in zip(pd.DatetimeIndex(orders.index), orders, strict=True):
        name = "Order Completed v2" if hour >= renamed_from else "Order Completed"
        for i in range(int(count)):
            at = hour + pd.Timedelta(seconds=int(i * 3600 / count))
            client.track("u", name, {"plan": "pro"}, timestamp=at.to_pydatetime())
        renamed += int(count) if hour >= renamed_from else 0
    for hour, count in zip(pd.DatetimeIndex(search.index), search, strict=True):
        for i in range(int(count)):
            at = hour + pd.Timedelta(seconds=int(i * 3600 / count))
            client.track(anonymous_id="a", event="Search", timestamp=at.to_pydatetime())
    client.flush()
    client.shutdown()
    assert errors == []
    return renamed
