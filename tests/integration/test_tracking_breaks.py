"""Tracking breaks: an event that stops while its source, or its other app versions, keep
sending is told as a tracking break, with the name that replaced it when one did."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from lantern.config import Settings
from lantern.db import session_scope
from lantern.insights.models import Insight
from lantern.metrics.models import Metric
from lantern.metrics.service import epoch_hour
from lantern.notify.connection import connect_with_token
from lantern.notify.outbox import flush_outbox
from lantern.pipeline import run_hour
from tests.factories import (
    MadeSource,
    add_breakdown,
    add_insight,
    closed_hour_at,
    last_closed_hour,
    make_events,
    make_insight,
    make_metric,
    make_source,
    rhythm,
)
from tests.fakeslack import GOOD_TOKEN, FakeSlack

QUIET_HOURS = 4
# the histories end at 15:00 UTC, whenever the tests run: their quiet hours fall in the
# rhythm's afternoon, as the tests mean them to (ended at night, the last four hours of a
# metric at a tenth of its peak are too few events to tell a stop of half of them)
END_HOUR = 15


def series_end() -> pd.Timestamp:
    """The last hour of the tests' histories: the latest closed hour at `END_HOUR`."""
    return closed_hour_at(END_HOUR)


def catch_up(engine: Engine, settings: Settings, src: MadeSource) -> None:
    """The source's whole history through the hourly pass, as a backfilled source's."""
    run_hour(engine, settings, hour=epoch_hour(series_end()), worker="t", source_id=src.id)


def insights_of(engine: Engine, src: MadeSource) -> dict[str, list[Insight]]:
    """The source's insights, by metric name, oldest first."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(Metric.name, Insight)
            .join(Metric, Metric.id == Insight.metric_id)
            .where(Metric.source_id == src.id)
            .order_by(Insight.id)
        ).all()
        session.expunge_all()
    found: dict[str, list[Insight]] = {}
    for name, insight in rows:
        found.setdefault(name, []).append(insight)
    return found


def stopped(series: pd.Series, hours: int = QUIET_HOURS) -> pd.Series:
    quiet = series.copy()
    quiet.iloc[-hours:] = 0
    return quiet


def started(like: pd.Series, hours: int, *, scale: float = 1.0, seed: int = 9) -> pd.Series:
    """A new name that begins `hours` before the end, at `scale` times `like`'s volume."""
    fresh = rhythm(like.index[-1], days=len(like) / 24, peak=120 * scale, seed=seed).astype(float)
    fresh.iloc[:-hours] = float("nan")
    return fresh


def the_break(insights: list[Insight]) -> dict[str, Any]:
    [found] = [i for i in insights if i.kind == "tracking_break"]
    assert found.tracking_break is not None
    return found.tracking_break


def test_an_event_that_stops_while_its_source_keeps_sending_is_a_tracking_break(
    engine: Engine, settings: Settings
) -> None:
    src = make_source(engine)
    end = series_end()
    make_events(
        engine,
        src,
        {
            "Order Completed": stopped(rhythm(end, seed=1)),
            "Search": rhythm(end, seed=2),
            "Signed Up": rhythm(end, peak=60, seed=3),
        },
    )
    catch_up(engine, settings, src)
    found = insights_of(engine, src)
    told = the_break(found["Order Completed"])
    assert told["detected_as"] == "outage"
    assert told["renamed_to"] is None
    assert told["kept_share"] == pytest.approx(1.0, abs=0.25)
    assert all(i.kind != "outage" for i in found["Order Completed"])


def test_an_event_that_stops_as_a_new_name_starts_at_its_volume_names_the_pair(
    engine: Engine, settings: Settings
) -> None:
    src = make_source(engine)
    end = series_end()
    old = rhythm(end, seed=4)
    ids = make_events(
        engine,
        src,
        {
            "Order Completed": stopped(old),
            "Order Completed v2": started(old, QUIET_HOURS, seed=5),
            # a new name of five times the volume, begun at the same hour, is not its rename
            "Debug Ping": started(old, QUIET_HOURS, scale=5, seed=6),
            "Search": rhythm(end, seed=7),
        },
    )
    catch_up(engine, settings, src)
    told = the_break(insights_of(engine, src)["Order Completed"])
    assert told["renamed_to"] == "Order Completed v2"
    assert told["renamed_metric_id"] == ids["Order Completed v2"]
    assert told["volume_ratio"] == pytest.approx(1.0, abs=0.3)


def test_the_only_event_of_a_source_renamed_is_a_tracking_break_naming_the_pair(
    engine: Engine, settings: Settings
) -> None:
    src = make_source(engine)
    old = rhythm(series_end(), seed=8)
    make_events(
        engine,
        src,
        {"Checkout": stopped(old), "Checkout Completed": started(old, QUIET_HOURS, seed=9)},
    )
    catch_up(engine, settings, src)
    told = the_break(insights_of(engine, src)["Checkout"])
    assert told["renamed_to"] == "Checkout Completed"


def test_a_whole_source_going_quiet_stays_an_outage(engine: Engine, settings: Settings) -> None:
    src = make_source(engine)
    end = series_end()
    make_events(
        engine,
        src,
        {
            "Order Completed": stopped(rhythm(end, seed=10)),
            "Search": stopped(rhythm(end, seed=11)),
        },
    )
    catch_up(engine, settings, src)
    found = insights_of(engine, src)
    kinds = {i.kind for name in ("Order Completed", "Search") for i in found.get(name, [])}
    assert "outage" in kinds
    assert "tracking_break" not in kinds
    assert all(i.tracking_break is None for insights in found.values() for i in insights)


def version_split(
    counts: pd.Series, shares: dict[str, float], *, stops: str | None, seed: int
) -> pd.DataFrame:
    """`counts` split by app version at `shares`; `stops` sends none in the quiet hours."""
    import numpy as np

    rng = np.random.default_rng(seed)
    columns = {}
    remaining = counts.to_numpy().astype(int)
    names = list(shares)
    for name in names[:-1]:
        part = rng.binomial(
            remaining, shares[name] / sum(shares[n] for n in names[names.index(name) :])
        )
        columns[name] = part
        remaining = remaining - part
    columns[names[-1]] = remaining
    frame = pd.DataFrame(columns, index=counts.index).astype(float)
    if stops is not None:
        frame.loc[frame.index[-QUIET_HOURS:], stops] = 0.0
    frame.columns.name = "app_version"
    return frame


def version_history(engine: Engine, src: MadeSource, *, search_stops_too: bool) -> None:
    """Checkout from app versions 5.1 and 5.2, of which 5.2 stops sending it in the last
    hours; Search from both, 5.2's stopping too when `search_stops_too`."""
    end = series_end()
    shares = {"5.1": 0.55, "5.2": 0.45}
    checkout = rhythm(end, peak=300, seed=12)
    search = rhythm(end, peak=200, seed=13)
    checkout_split = version_split(checkout, shares, stops="5.2", seed=14)
    search_split = version_split(search, shares, stops="5.2" if search_stops_too else None, seed=15)
    checkout_counts = checkout_split.sum(axis=1)
    search_counts = search_split.sum(axis=1)
    ids = make_events(engine, src, {"Checkout": checkout_counts, "Search": search_counts})
    add_breakdown(engine, src, ids["Checkout"], checkout_split)
    add_breakdown(engine, src, ids["Search"], search_split)
    add_breakdown(engine, src, ids["track"], checkout_split + search_split)


def test_an_app_version_that_stops_sending_an_event_the_others_send_is_named(
    engine: Engine, settings: Settings
) -> None:
    src = make_source(engine)
    version_history(engine, src, search_stops_too=False)
    catch_up(engine, settings, src)
    told = the_break(insights_of(engine, src)["Checkout"])
    assert told["app_version"] == "5.2"
    assert told["detected_as"] in ("drop", "level_shift")


def test_an_app_version_that_stops_sending_everything_is_not_a_tracking_break(
    engine: Engine, settings: Settings
) -> None:
    src = make_source(engine)
    version_history(engine, src, search_stops_too=True)
    catch_up(engine, settings, src)
    checkout = insights_of(engine, src)["Checkout"]
    assert any(i.direction == "down" for i in checkout)
    assert all(i.kind != "tracking_break" for i in checkout)


def test_a_renamed_event_is_told_as_a_tracking_break_on_slack_and_in_the_api(
    fresh_engine: Engine,
    fresh_client: TestClient,
    settings: Settings,
    fake_slack: FakeSlack,
) -> None:
    """The hourly passes of the last hours, as the scheduler runs them: one alert, whose
    headline says the event stopped being tracked and names the suspected new name."""
    engine = fresh_engine
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
    end = series_end()
    old = rhythm(end, seed=16)
    make_events(
        engine,
        src,
        {
            "Order Completed": stopped(old),
            "Order Completed v2": started(old, QUIET_HOURS, seed=17),
            "Search": rhythm(end, seed=18),
        },
    )
    last = epoch_hour(end)
    for hour in range(last - QUIET_HOURS - 1, last + 1):
        run_hour(engine, settings, hour=hour, worker="t", now=datetime.now(UTC))
    flush_outbox(engine, settings, now=datetime.now(UTC))

    [alert] = fake_slack.top_level()
    assert alert["text"].startswith(":red_circle: Order Completed (track event, web) stopped being")
    blocks = json.dumps(alert["blocks"])
    assert "*Tracking break:* renamed to 'Order Completed v2'? That name started as it" in blocks
    assert "tracking break" in blocks  # the footnote names the kind

    listed = fresh_client.get(
        "/api/v1/insights", headers={"Authorization": f"Bearer {src.token}"}
    ).json()["items"]
    [told] = [i for i in listed if i["kind"] == "tracking_break"]
    assert told["kind_label"] == "Tracking break"
    assert told["metric_label"].startswith("Order Completed")
    assert told["tracking_break"]["renamed_to"] == "Order Completed v2"
    assert told["tracking_break"]["text"].startswith("renamed to 'Order Completed v2'?")
    assert told["words"]["next_step"].startswith("The event stopped while its source kept")
    filtered = fresh_client.get(
        "/api/v1/insights?kind=tracking_break", headers={"Authorization": f"Bearer {src.token}"}
    ).json()["items"]
    assert [i["id"] for i in filtered] == [told["id"]]


def test_at_night_a_stop_without_a_new_name_goes_at_once_and_a_rename_waits(
    fresh_engine: Engine, fresh_client: TestClient, settings: Settings, fake_slack: FakeSlack
) -> None:
    """A stop with no new name in sight may be a feature down: urgent as an outage is."""
    from tests.integration.test_delivery_policy import night_workspace, tomorrow_at

    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    told = {
        "stopped": {"detected_as": "outage", "kept_share": 1.0, "renamed_to": None},
        "renamed": {"detected_as": "outage", "kept_share": 1.0, "renamed_to": "Checkout v2"},
    }
    for name, why in told.items():
        src = night_workspace(fresh_engine, fresh_client, settings)
        insight = make_insight(fresh_engine, src, name=name)
        with session_scope(fresh_engine) as session:
            row = session.get(Insight, insight)
            assert row is not None
            row.kind, row.severity, row.relative_change = "tracking_break", "high", -1.0
            row.tracking_break = why
    result = flush_outbox(fresh_engine, settings, now=tomorrow_at(2))
    assert (result.sent, result.held) == (1, 1)
    [alert] = fake_slack.top_level()
    assert alert["text"].startswith(":red_circle: stopped (track event, web) stopped being tracked")


def test_not_useful_on_a_tracking_break_raises_the_bar_of_the_outage_its_detector_found(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    metric = make_metric(engine, src, name="Order Completed", days=9)
    insight = add_insight(
        engine,
        src,
        metric,
        detected_at=last_closed_hour(),
        kind="tracking_break",
        direction="down",
        tracking_break={"detected_as": "outage", "kept_share": 1.0, "renamed_to": None},
    )
    headers = {"Authorization": f"Bearer {src.token}"}
    said = client.post(
        f"/api/v1/insights/{insight}/feedback", json={"useful": False}, headers=headers
    )
    assert said.status_code == 200, said.text
    # the detector never finds a tracking break: its outage's bar is the one raised
    shown = client.get(f"/api/v1/metrics/{metric}", headers=headers).json()
    assert shown["feedback"] == {"outage": 1}
    # and the team's answers are counted under the kind they read
    counts = client.get("/api/v1/insights/feedback", headers=headers).json()
    assert {c["kind"]: c["not_useful"] for c in counts}["tracking_break"] == 1
