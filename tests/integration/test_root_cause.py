"""Root cause on every insight: the breakdown value that explains a change is stored when
the insight opens, and the Slack alert, the newsfeed and the insight's API say the same."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from lantern.config import Settings
from lantern.db import session_scope
from lantern.insights.models import Insight
from lantern.metrics.service import epoch_hour
from lantern.notify.connection import connect_with_token
from lantern.notify.outbox import flush_outbox
from lantern.pipeline import run_hour
from tests.factories import (
    MadeSource,
    add_breakdown,
    breakdown_counts,
    make_insight,
    make_metric,
    make_source,
    open_insight,
)
from tests.fakeslack import GOOD_TOKEN, FakeSlack

VERSIONS = {"5.2": 0.45, "5.1.3": 0.35, "5.0": 0.2}
PLATFORMS = {"iOS": 0.6, "Android": 0.4}

# the version named, with a drop of 80-99%: at a quiet end hour a 92% drop of one version of
# a few hundred events reads as anything from -85% to -95%
NAMES_THE_DROP = re.compile("app version 5\\.2: \u2212(8|9)\\d%")


def bearer(src: MadeSource) -> dict[str, str]:
    return {"Authorization": f"Bearer {src.token}"}


def checkout_with_breakdowns(
    engine: Engine, src: MadeSource, *, change: dict[str, float], weeks: float = 4
) -> tuple[int, pd.Timestamp, pd.Timestamp]:
    """A Checkout metric whose app versions are `VERSIONS` changed by `change` in its last
    four hours, and whose OS split is even throughout; its id, episode start and end."""
    versions, start = breakdown_counts(VERSIONS, change=change, weeks=weeks, seed=1)
    total = versions.sum(axis=1)
    platforms = pd.DataFrame({name: (total * share).round() for name, share in PLATFORMS.items()})
    platforms.columns.name = "os"
    metric_id = make_metric(engine, src, name="Checkout", counts=versions.sum(axis=1))
    add_breakdown(engine, src, metric_id, versions)
    add_breakdown(engine, src, metric_id, platforms)
    return metric_id, start, versions.index[-1]


def alerts_of(fake_slack: FakeSlack, insight_id: int) -> list[dict[str, Any]]:
    """The top-level Slack messages about one insight (its link names it)."""
    link = f'/insights/{insight_id}"'
    return [m for m in fake_slack.top_level() if link in json.dumps(m.get("blocks"))]


def connect_slack(engine: Engine, src: MadeSource, settings: Settings) -> None:
    with session_scope(engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="alerts",
            settings=settings,
        )


def test_an_insight_names_the_version_that_stopped_in_its_api_its_card_and_its_slack_alert(
    client: TestClient, engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    src = make_source(engine)
    connect_slack(engine, src, settings)
    metric_id, start, end = checkout_with_breakdowns(engine, src, change={"5.2": -0.92})
    insight_id = open_insight(engine, src, metric_id, start=start, detected_at=end)

    one = client.get(f"/api/v1/insights/{insight_id}", headers=bearer(src)).json()
    cause = one["root_cause"]
    assert cause["dimension"] == "app_version"
    assert not cause["broad"]
    assert NAMES_THE_DROP.match(cause["text"]), cause["text"]
    assert cause["text"].endswith("% of the drop)")
    named = [v for v in cause["values"] if v["named"]]
    assert [v["value"] for v in named] == ["5.2"]
    assert named[0]["contribution"] > 0.85
    assert set(cause["checked"]) == {"os", "app_version"}
    chart = one["root_cause_chart"]
    [series] = chart["values"]
    assert series["value"] == "5.2"
    assert len(series["points"]) == 48 + 4
    episode = [p for p in series["points"] if pd.Timestamp(p["t"]) >= start]
    assert sum(p["observed"] for p in episode) < 0.2 * sum(p["expected"] for p in episode)

    feed = client.get("/api/v1/insights", headers=bearer(src)).json()["items"]
    assert [item["root_cause"]["text"] for item in feed] == [cause["text"]]
    assert "chart" not in feed[0]["root_cause"]

    flush_outbox(engine, settings, now=datetime.now(UTC))
    [alert] = alerts_of(fake_slack, insight_id)
    lines = [
        block["text"]["text"]
        for block in alert["blocks"]
        if block.get("block_id") == "lantern_root_cause"
    ]
    assert lines == [f"*Root cause:* {cause['text']}"]


def test_a_drop_every_version_shares_is_told_as_broad(client: TestClient, engine: Engine) -> None:
    src = make_source(engine)
    metric_id, start, end = checkout_with_breakdowns(
        engine, src, change=dict.fromkeys(VERSIONS, -0.5)
    )
    insight_id = open_insight(engine, src, metric_id, start=start, detected_at=end)
    one = client.get(f"/api/v1/insights/{insight_id}", headers=bearer(src)).json()
    cause = one["root_cause"]
    assert cause["broad"]
    assert cause["text"] == "The drop is broad: no single OS or app version explains most of it"
    # the values that came nearest are still listed, and the two nearest charted
    assert cause["values"] and not any(v["named"] for v in cause["values"])
    charted = [s["value"] for s in one["root_cause_chart"]["values"]]
    assert charted == [v["value"] for v in cause["values"][:2]]


def test_a_metric_without_breakdowns_gets_no_root_cause_and_its_alert_none(
    client: TestClient, engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    src = make_source(engine)
    connect_slack(engine, src, settings)
    insight_id = make_insight(engine, src)
    one = client.get(f"/api/v1/insights/{insight_id}", headers=bearer(src)).json()
    assert one["root_cause"] is None
    assert one["root_cause_chart"] is None
    flush_outbox(engine, settings, now=datetime.now(UTC))
    [alert] = alerts_of(fake_slack, insight_id)
    assert all(b.get("block_id") != "lantern_root_cause" for b in alert["blocks"])


def test_a_silent_outage_gets_no_root_cause_since_every_value_fell_silent(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    metric_id, start, end = checkout_with_breakdowns(
        engine, src, change=dict.fromkeys(VERSIONS, -1.0)
    )
    drop = open_insight(engine, src, metric_id, start=start, detected_at=end)
    outage = open_insight(
        engine, src, metric_id, start=start, detected_at=end, kind="outage", relative_change=-1
    )
    insights = {
        item["id"]: item
        for item in client.get("/api/v1/insights", headers=bearer(src)).json()["items"]
    }
    assert insights[drop]["root_cause"]["broad"]
    assert insights[outage]["root_cause"] is None


def test_an_outage_that_still_has_events_names_who_stopped(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    metric_id, start, end = checkout_with_breakdowns(engine, src, change={"5.2": -1.0})
    outage = open_insight(
        engine, src, metric_id, start=start, detected_at=end, kind="outage", relative_change=-0.9
    )
    cause = client.get(f"/api/v1/insights/{outage}", headers=bearer(src)).json()["root_cause"]
    assert cause["text"].startswith("app version 5.2: \u2212100%")


def test_an_average_gets_no_root_cause(client: TestClient, engine: Engine) -> None:
    src = make_source(engine)
    versions, start = breakdown_counts(VERSIONS, change={"5.2": -0.92})
    metric_id = make_metric(engine, src, name="Load", kind="mean", counts=versions.sum(axis=1))
    track_id = make_metric(engine, src, name="Load", counts=versions.sum(axis=1))
    add_breakdown(engine, src, track_id, versions)
    insight_id = open_insight(engine, src, metric_id, start=start, detected_at=versions.index[-1])
    assert (
        client.get(f"/api/v1/insights/{insight_id}", headers=bearer(src)).json()["root_cause"]
        is None
    )


def test_the_hourly_pass_opens_an_insight_on_breakdown_data_with_its_root_cause(
    fresh_engine: Engine, fresh_client: TestClient, settings: Settings, fake_slack: FakeSlack
) -> None:
    engine = fresh_engine
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    src = make_source(engine)
    connect_slack(engine, src, settings)
    metric_id, start, end = checkout_with_breakdowns(engine, src, change={"5.2": -0.95})
    for hour in range(epoch_hour(start) - 2, epoch_hour(end) + 1):
        run_hour(engine, settings, hour=hour, worker="test")
    with session_scope(engine) as session:
        opened = session.scalars(select(Insight).where(Insight.metric_id == metric_id)).all()
        assert [i.direction for i in opened] == ["down"]
        insight_id = opened[0].id
    cause = fresh_client.get(f"/api/v1/insights/{insight_id}", headers=bearer(src)).json()[
        "root_cause"
    ]
    assert cause is not None
    assert NAMES_THE_DROP.match(cause["text"]), cause["text"]
    flush_outbox(engine, settings, now=datetime.now(UTC))
    [alert] = fake_slack.top_level()
    assert "Checkout" in alert["text"]
    assert f"*Root cause:* {cause['text']}" in str(alert["blocks"])


def test_breakdowns_younger_than_their_metric_still_name_the_version(
    client: TestClient, engine: Engine
) -> None:
    # the metric has four weeks; its source counted app versions for the last ten days only
    src = make_source(engine)
    versions, start = breakdown_counts(VERSIONS, change={"5.2": -0.92}, seed=2)
    metric_id = make_metric(engine, src, name="Checkout", counts=versions.sum(axis=1))
    add_breakdown(engine, src, metric_id, versions.iloc[-10 * 24 :])
    insight_id = open_insight(engine, src, metric_id, start=start, detected_at=versions.index[-1])
    cause = client.get(f"/api/v1/insights/{insight_id}", headers=bearer(src)).json()["root_cause"]
    assert NAMES_THE_DROP.match(cause["text"]), cause["text"]


def test_a_notebook_reads_each_insight_s_root_cause_line(engine: Engine) -> None:
    from lantern.analysis import Lantern

    src = make_source(engine)
    metric_id, start, end = checkout_with_breakdowns(engine, src, change={"5.2": -0.92})
    insight_id = open_insight(engine, src, metric_id, start=start, detected_at=end)
    plain = make_insight(engine, src, name="Search")
    insights = Lantern(engine).insights(source=src.name)
    mine = insights.loc[[insight_id, plain], "root_cause"]
    assert NAMES_THE_DROP.match(mine[insight_id]), mine[insight_id]
    assert mine[plain] == ""
