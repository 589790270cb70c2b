"""The official analytics libraries, pointed at `lantern serve` with `host`, work unchanged."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import segment.analytics as segment
from rudderstack.analytics.client import Client as RudderClient
from sqlalchemy import Engine

from lantern.config import Settings
from lantern.db import session_scope
from lantern.db.migrate import current_revision, head_revision
from lantern.db.session import make_engine
from lantern.metrics.service import epoch_hour
from lantern.notify.connection import connect_with_token
from lantern.notify.outbox import flush_outbox
from lantern.pipeline import run_hour
from tests.e2e.conftest import start_server
from tests.factories import make_source
from tests.fakeslack import GOOD_TOKEN, FakeSlack
from tests.helpers import buckets, totals

EXPECTED = {
    ("track", "Signed Up"): 3,
    ("total", "track"): 3,
    ("value", "Signed Up"): 2,
    ("mean", "Signed Up"): 2,
    ("page", "Pricing"): 2,
    ("total", "page"): 2,
    ("screen", "Settings"): 1,
    ("total", "screen"): 1,
    ("total", "identify"): 2,
}


def send_calls(client: segment.Client | RudderClient) -> None:
    client.track("user-1", "Signed Up", {"value": 3.5, "plan": "pro"})
    client.track("user-2", "Signed Up", {"revenue": 10})
    client.track(anonymous_id="anon-1", event="Signed Up")
    client.page("user-1", "Docs", "Pricing", {"url": "https://example.com/pricing"})
    client.page(anonymous_id="anon-2", name="Pricing")
    client.screen("user-1", "App", "Settings")
    client.identify("user-1", {"email": "a@example.com"})
    client.identify(anonymous_id="anon-1", traits={"plan": "free"})
    client.group("user-1", "group-1", {"name": "Acme"})
    client.alias("user-3", "user-1")
    client.flush()


@pytest.mark.parametrize("gzip", [False, True])
def test_segment_analytics_python_calls_land_in_the_buckets(
    served: str, engine: Engine, gzip: bool
) -> None:
    src = make_source(engine)
    errors: list[Exception] = []
    client = segment.Client(
        src.key, host=served, gzip=gzip, on_error=lambda e, _b: errors.append(e)
    )
    send_calls(client)
    client.shutdown()
    assert errors == []
    assert totals(engine, src.id) == EXPECTED
    values = [v for (k, _n, _h), v in buckets(engine, src.id).items() if k == "value"]
    assert sum(v[1] for v in values) == 13.5
    averaged = [v for (k, _n, _h), v in buckets(engine, src.id).items() if k == "mean"]
    assert sum(v[1] for v in averaged) == 13.5
    hours = {h for (_k, _n, h) in buckets(engine, src.id)}
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    assert {datetime.fromisoformat(h) for h in hours} <= {
        now,
        now - timedelta(hours=1),
    }


def test_rudder_sdk_python_with_gzip_and_context_traits_lands_in_the_buckets(
    served: str, engine: Engine
) -> None:
    src = make_source(engine)
    errors: list[Exception] = []
    client = RudderClient(src.key, host=served, on_error=lambda e, _b: errors.append(e))
    send_calls(client)
    client.shutdown()
    assert errors == []
    assert totals(engine, src.id) == EXPECTED


def test_an_unknown_key_is_reported_to_the_client_as_an_error(served: str) -> None:
    errors: list[Exception] = []
    client = segment.Client("not-a-key", host=served, on_error=lambda e, _b: errors.append(e))
    client.track("user-1", "Signed Up")
    client.flush()
    client.shutdown()
    assert len(errors) == 1
    assert getattr(errors[0], "status", None) == 401


def test_lantern_serve_brings_an_empty_database_up_to_date(
    tmp_path: Path, empty_database_url: str
) -> None:
    url = empty_database_url
    assert current_revision(make_engine(url)) is None
    process, _ = start_server(url, tmp_path)
    process.terminate()
    process.wait(timeout=10)
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_the_cli_creates_a_source_whose_key_works(
    served: str, database_url: str, tmp_path: Path
) -> None:
    import json
    import os

    env = {**os.environ, "LANTERN_DATABASE_URL": database_url}
    name = f"cli-{tmp_path.name[-8:]}"
    workspace = f"ws-{tmp_path.name[-12:]}"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "lantern",
            "source",
            "create",
            name,
            "--workspace",
            workspace,
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    created = json.loads(made.stdout)
    assert set(created) == {"id", "name", "workspace", "api_key"}
    client = segment.Client(created["api_key"], host=served, sync_mode=True)
    client.track("user-1", "From CLI")
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "lantern",
            "metrics",
            "--source",
            name,
            "--workspace",
            workspace,
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    metrics = {(m["kind"], m["name"]): m["events"] for m in json.loads(listed.stdout)}
    assert metrics == {("track", "From CLI"): 1, ("total", "track"): 1}
    rotated = subprocess.run(
        [
            sys.executable,
            "-m",
            "lantern",
            "source",
            "rotate",
            name,
            "--workspace",
            workspace,
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    new_key = json.loads(rotated.stdout)["api_key"]
    assert new_key != created["api_key"]
    import httpx

    # The serving process remembers checked keys for a few seconds; a new key works at once.
    ok = httpx.post(served + "/v1/track", json={"event": "x", "userId": "u"}, auth=(new_key, ""))
    assert ok.status_code == 200


# The breakdowns' contexts of a Python backend's phones: iOS users on 5.2 and 5.1.3,
# Android users on 5.1.3 (their shares of the events). analytics-python names itself as
# the library, so the backfill does too.
PHONES = [
    ({"os": {"name": "iOS"}, "app": {"version": "5.2"}}, 0.5),
    ({"os": {"name": "iOS"}, "app": {"version": "5.1.3"}}, 0.2),
    ({"os": {"name": "Android"}, "app": {"version": "5.1.3"}}, 0.3),
]
# analytics-python drops what does not fit in its queue (10,000 events): flush before.
FLUSH_EVERY = 5000


def test_a_drop_of_one_app_version_sent_by_analytics_python_is_named_in_slack_and_the_api(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    """Two weeks of Checkout: the older history imported as a backfill would, the last
    five days sent live by analytics-python with each phone's context; in the last four
    hours the iOS app's version 5.2 stops checking out. The hourly pass opens one insight
    whose Slack alert and API name version 5.2 as the cause. A database of its own: its
    hourly passes claim their hours."""
    engine = fresh_engine
    process, served = start_server(engine.url.render_as_string(hide_password=False), tmp_path)
    try:
        checkout_drop_is_named(engine, served, settings, fake_slack)
    finally:
        process.terminate()
        process.wait(timeout=10)


def checkout_drop_is_named(
    engine: Engine, served: str, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    src = make_source(engine)
    with session_scope(engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="alerts",
            settings=settings,
        )
    end = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)
    index = pd.date_range(end=end, periods=14 * 24, freq="h")
    drop = index[-4]
    live_from = end - pd.Timedelta(days=5)
    rng = np.random.default_rng(15)
    rhythm = 0.75 + 0.25 * np.sin(index.hour.to_numpy() / 24 * 2 * np.pi)
    backfill: list[dict[str, object]] = []
    errors: list[Exception] = []
    client = segment.Client(src.key, host=served, on_error=lambda e, _b: errors.append(e))
    sent = 0
    for context, share in PHONES:
        stopped = context["app"]["version"] == "5.2"
        for hour, lam in zip(index, 200 * share * rhythm, strict=True):
            count = rng.poisson(lam * (0.05 if stopped and hour >= drop else 1.0))
            for i in range(count):
                at = hour + pd.Timedelta(seconds=int(i * 3600 / count))
                if hour < live_from:
                    backfill.append(
                        {
                            "type": "track",
                            "event": "Checkout",
                            "userId": "u",
                            "timestamp": at.isoformat(),
                            "context": {**context, "library": {"name": "analytics-python"}},
                        }
                    )
                    continue
                client.track("u", "Checkout", context=context, timestamp=at.to_pydatetime())
                sent += 1
                if sent % FLUSH_EVERY == 0:
                    client.flush()
    client.flush()
    client.shutdown()
    assert errors == []
    assert totals(engine, src.id)[("track", "Checkout")] == sent  # none dropped on the way
    for i in range(0, len(backfill), 2000):
        response = httpx.post(
            served + "/v1/import", json={"batch": backfill[i : i + 2000]}, auth=(src.key, "")
        )
        assert response.status_code == 200, response.text
        assert response.json()["rejected"] == []

    for passed in range(epoch_hour(drop) - 2, epoch_hour(end) + 1):
        run_hour(engine, settings, hour=passed, worker="e2e", now=datetime.now(UTC))
    flush_outbox(engine, settings, now=datetime.now(UTC))

    api = httpx.Client(
        base_url=served + "/api/v1", headers={"Authorization": f"Bearer {src.token}"}
    )
    feed = api.get("/insights").json()["items"]
    [checkout] = [i for i in feed if i["metric_label"].startswith("Checkout")]
    cause = checkout["root_cause"]
    assert cause["dimension"] == "app_version"
    assert re.match("app version 5\\.2: \u2212(8|9)\\d%", cause["text"]), cause["text"]
    assert cause["text"].endswith("% of the drop)")
    chart = api.get(f"/insights/{checkout['id']}").json()["root_cause_chart"]
    assert [s["value"] for s in chart["values"]] == ["5.2"]
    [alert] = fake_slack.top_level()
    assert "Checkout" in alert["text"]
    assert f"*Root cause:* {cause['text']}" in json.dumps(alert["blocks"], ensure_ascii=False)


def test_a_source_that_stops_sending_is_one_incident_and_one_end_in_slack(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    """Five events of a source with two weeks of history (the test factories' buckets); the
    source sends nothing for four hours, then analytics-python sends them all again. Slack
    gets one alert naming a source-wide incident and one reply when it is over."""
    engine = fresh_engine
    process, served = start_server(engine.url.render_as_string(hide_password=False), tmp_path)
    try:
        a_quiet_source_is_one_incident(engine, served, settings, fake_slack)
    finally:
        process.terminate()
        process.wait(timeout=10)


def a_quiet_source_is_one_incident(
    engine: Engine, served: str, settings: Settings, fake_slack: FakeSlack
) -> None:
    from tests.factories import make_metric

    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    src = make_source(engine)
    with session_scope(engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="alerts",
            settings=settings,
        )
    end = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)
    index = pd.date_range(end=end, periods=14 * 24, freq="h")
    quiet = (index >= end - pd.Timedelta(hours=7)) & (index <= end - pd.Timedelta(hours=4))
    live = index > end - pd.Timedelta(hours=4)
    rhythm = 0.75 + 0.25 * np.sin(index.hour.to_numpy() / 24 * 2 * np.pi)
    names = [f"Step {i}" for i in range(5)]
    errors: list[Exception] = []
    client = segment.Client(src.key, host=served, on_error=lambda e, _b: errors.append(e))
    for i, name in enumerate(names):
        counts = pd.Series(np.random.default_rng(i).poisson(100 * rhythm), index=index)
        make_metric(engine, src, name=name, counts=counts[~quiet & ~live])
        sent = counts[live]
        for hour, count in zip(pd.DatetimeIndex(sent.index), sent, strict=True):
            for k in range(int(count)):
                at = hour + pd.Timedelta(seconds=int(k * 3600 / count))
                client.track("u", name, timestamp=at.to_pydatetime())
    client.flush()
    client.shutdown()
    assert errors == []

    first_quiet = epoch_hour(index[quiet][0])
    for passed in range(first_quiet - 2, epoch_hour(end) + 1):
        tick = datetime.fromtimestamp((passed + 1) * 3600, UTC) + timedelta(minutes=5)
        run_hour(engine, settings, hour=passed, worker="e2e", now=tick)
        flush_outbox(engine, settings, now=tick)

    [alert] = fake_slack.top_level()
    assert "web: 5 of 5 metrics went down or quiet together" in alert["text"], alert["text"]
    listed = json.dumps(alert["blocks"])
    assert all(name in listed for name in names)
    [over] = [m["text"] for m in fake_slack.replies(alert["ts"]) if not m.get("files")]
    assert "web: the 5 metrics that went down or quiet together are back to normal" in over
    api = httpx.Client(
        base_url=served + "/api/v1", headers={"Authorization": f"Bearer {src.token}"}
    )
    [item] = api.get("/insights").json()["items"]
    assert (item["incident"]["metrics"], item["incident"]["of"]) == (5, 5)
    assert item["incident"]["ended_at"] is not None


# Android makes 15% of the checkouts: when it drops by 60% the total moves by 9%.
OS_SHARES = {"iOS": 0.85, "Android": 0.15}


def test_an_android_drop_sent_by_analytics_python_is_told_by_its_value_s_own_alert(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    """Two weeks of Checkout split by OS (the test factories' buckets), then six hours sent
    live by analytics-python with each phone's `context.os`; in the last four Android
    checks out 60% less. With alerts per OS turned on through the API, Slack gets one
    alert, for Android's own series; the total, 9% down, raises none."""
    engine = fresh_engine
    process, served = start_server(engine.url.render_as_string(hide_password=False), tmp_path)
    try:
        android_drop_is_told(engine, served, settings, fake_slack)
    finally:
        process.terminate()
        process.wait(timeout=10)


def android_drop_is_told(
    engine: Engine, served: str, settings: Settings, fake_slack: FakeSlack
) -> None:
    from tests.factories import add_breakdown, make_metric

    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    src = make_source(engine)
    with session_scope(engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="alerts",
            settings=settings,
        )
    end = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)
    index = pd.date_range(end=end, periods=14 * 24, freq="h")
    live = index > end - pd.Timedelta(hours=6)
    drop = index > end - pd.Timedelta(hours=4)
    rhythm = 0.75 + 0.25 * np.sin(index.hour.to_numpy() / 24 * 2 * np.pi)
    rng = np.random.default_rng(21)
    by_os = pd.DataFrame(
        {
            name: rng.poisson(400 * share * rhythm * np.where(drop & (name == "Android"), 0.4, 1))
            for name, share in OS_SHARES.items()
        },
        index=index,
    )
    by_os.columns.name = "os"
    metric_id = make_metric(engine, src, name="Checkout", counts=by_os.sum(axis=1)[~live])
    add_breakdown(engine, src, metric_id, by_os[~live])
    api = httpx.Client(
        base_url=served + "/api/v1", headers={"Authorization": f"Bearer {src.token}"}
    )
    turned_on = api.put(f"/metrics/{metric_id}/breakdown-alerts", json={"dimensions": ["os"]})
    assert turned_on.status_code == 200, turned_on.text

    errors: list[Exception] = []
    client = segment.Client(src.key, host=served, on_error=lambda e, _b: errors.append(e))
    sent = by_os[live]
    for hour, counts in zip(pd.DatetimeIndex(sent.index), sent.to_numpy(), strict=True):
        for name, count in zip(by_os.columns, counts.tolist(), strict=True):
            for k in range(count):
                at = hour + pd.Timedelta(seconds=int(k * 3600 / count))
                client.track(
                    "u", "Checkout", context={"os": {"name": name}}, timestamp=at.to_pydatetime()
                )
    client.flush()
    client.shutdown()
    assert errors == []

    for passed in range(epoch_hour(index[live][0]), epoch_hour(end) + 1):
        tick = datetime.fromtimestamp((passed + 1) * 3600, UTC) + timedelta(minutes=5)
        run_hour(engine, settings, hour=passed, worker="e2e", now=tick)
        flush_outbox(engine, settings, now=tick)

    [alert] = fake_slack.top_level()
    assert "Checkout \u2014 OS Android" in alert["text"], alert["text"]
    told = {item["metric_label"] for item in api.get("/insights").json()["items"]}
    assert "Checkout \u2014 OS Android" in told
    assert "Checkout" not in told, told  # the total itself
