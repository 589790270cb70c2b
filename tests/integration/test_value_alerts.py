"""Alerts per breakdown value: a metric's values of one dimension, opted in, are each
watched as a metric of their own, so a value's drop is told when the total barely moves."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from lantern.breakdowns.alerts import set_breakdown_alerts
from lantern.breakdowns.models import BreakdownAlert
from lantern.config import Settings
from lantern.db import session_scope
from lantern.insights.incidents import active_metrics, story_incident
from lantern.insights.models import Insight
from lantern.metrics.models import Bucket, Metric
from lantern.metrics.service import epoch_hour
from lantern.notify.connection import connect_with_token
from lantern.notify.message import build_message
from lantern.notify.models import Notification
from lantern.notify.outbox import flush_outbox
from lantern.pipeline import run_hour
from tests.factories import (
    MadeSource,
    add_breakdown,
    breakdown_counts,
    closed_hour_at,
    last_closed_hour,
    make_metric,
    make_source,
    open_story,
)
from tests.fakeslack import GOOD_TOKEN, FakeSlack

# Android is 15% of the checkouts: its 60% drop moves the total by 9%.
PLATFORMS = {"iOS": 0.6, "Web": 0.25, "Android": 0.15}
ANDROID = "Checkout Completed \u2014 OS Android"
# the series end at this hour of the day (UTC) whenever the tests run, so that the
# episodes fall at the same hours of the daily rhythm (run at 15:00, the Android drop's
# four hours fell in the afternoon's low, and 60% of so few events was no alert)
END_HOUR = 12


def bearer(src: MadeSource) -> dict[str, str]:
    return {"Authorization": f"Bearer {src.token}"}


def checkout_by_os(
    engine: Engine,
    src: MadeSource,
    *,
    change: dict[str, float] | None = None,
    weeks: float = 4,
    name: str = "Checkout Completed",
    seed: int = 3,
) -> tuple[int, pd.DataFrame, pd.Timestamp]:
    """A track metric whose OS split is PLATFORMS, each value changed by `change` in its
    last four hours: its id, the split, and the first hour of the change."""
    frame, start = breakdown_counts(
        PLATFORMS,
        change=change,
        dimension="os",
        weeks=weeks,
        seed=seed,
        end=closed_hour_at(END_HOUR),
    )
    metric_id = make_metric(engine, src, name=name, counts=frame.sum(axis=1))
    add_breakdown(engine, src, metric_id, frame)
    return metric_id, frame, start


def alert_per_os(client: TestClient, src: MadeSource, metric_id: int) -> dict[str, Any]:
    response = client.put(
        f"/api/v1/metrics/{metric_id}/breakdown-alerts",
        json={"dimensions": ["os"]},
        headers=bearer(src),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def connect_slack(engine: Engine, src: MadeSource, settings: Settings) -> None:
    with session_scope(engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="alerts",
            settings=settings,
        )


def insights_of_source(engine: Engine, src: MadeSource) -> list[tuple[str, Insight]]:
    with session_scope(engine) as session:
        return [
            (name, insight)
            for insight, name in session.execute(
                select(Insight, Metric.name)
                .join(Metric, Metric.id == Insight.metric_id)
                .where(Metric.source_id == src.id)
                .order_by(Insight.id)
            )
        ]


def run_hours(engine: Engine, settings: Settings, first: pd.Timestamp, last: pd.Timestamp) -> None:
    for hour in range(epoch_hour(first), epoch_hour(last) + 1):
        run_hour(engine, settings, hour=hour, worker="test")


def test_a_value_that_drops_is_told_by_its_own_metric_while_its_total_barely_moves(
    fresh_engine: Engine, fresh_client: TestClient, settings: Settings, fake_slack: FakeSlack
) -> None:
    engine = fresh_engine
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    src = make_source(engine)
    connect_slack(engine, src, settings)
    metric_id, frame, start = checkout_by_os(engine, src, change={"Android": -0.6})
    episode = frame.index >= start
    before = frame.sum(axis=1)[~episode].iloc[-7 * 24 :]
    # the total over the episode's hours against the same hours of the week before
    week_ago = before.iloc[: int(episode.sum())].sum()
    assert abs(frame.sum(axis=1)[episode].sum() / week_ago - 1) < 0.15
    alert_per_os(fresh_client, src, metric_id)
    run_hours(engine, settings, start - pd.Timedelta(hours=2), frame.index[-1])

    told = insights_of_source(engine, src)
    assert [(name, i.direction) for name, i in told] == [(ANDROID, "down")]
    [(_, insight)] = told
    assert insight.relative_change < -0.4
    assert insight.root_cause is None  # a value's events are not broken down further
    feed = fresh_client.get("/api/v1/insights", headers=bearer(src)).json()["items"]
    assert [item["metric_label"] for item in feed] == [ANDROID]
    one = fresh_client.get(f"/api/v1/insights/{insight.id}", headers=bearer(src)).json()
    assert one["metric"]["parent_id"] == metric_id
    assert one["metric"]["breakdown"] == {"dimension": "os", "value": "Android"}

    flush_outbox(engine, settings, now=datetime.now(UTC))
    [alert] = fake_slack.top_level()
    # ":red_circle: Checkout Completed — OS Android (track event, web) changed level, down 52%"
    assert f" {ANDROID} (track event, web) " in alert["text"]
    assert "down" in alert["text"]
    assert f"/insights/{insight.id}" in json.dumps(alert["blocks"])


def test_without_alerts_per_value_the_same_drop_is_told_nowhere(
    fresh_engine: Engine, settings: Settings
) -> None:
    engine = fresh_engine
    src = make_source(engine)
    _, frame, start = checkout_by_os(engine, src, change={"Android": -0.6})
    run_hours(engine, settings, start - pd.Timedelta(hours=2), frame.index[-1])
    assert insights_of_source(engine, src) == []
    with engine.connect() as connection:
        kinds = connection.scalars(select(Metric.kind).where(Metric.source_id == src.id)).all()
    assert kinds == ["track"]


def test_each_value_gets_a_metric_trained_on_its_breakdown_history_and_listed_under_its_parent(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    metric_id, frame, _ = checkout_by_os(engine, src)
    other = make_metric(engine, src, name="Added to Cart")
    shown = alert_per_os(client, src, metric_id)

    assert shown["unavailable"] is None
    assert [(d["name"], d["alerting"]) for d in shown["dimensions"]][:2] == [
        ("os", True),
        ("app_version", False),
    ]
    by_value = {m["breakdown"]["value"]: m for m in shown["metrics"]}
    assert set(by_value) == set(PLATFORMS)
    android = by_value["Android"]
    assert android["label"] == ANDROID
    assert android["kind"] == "breakdown" and android["measure"] == "count"
    assert android["parent_id"] == metric_id
    # four weeks of breakdowns: trained at once, its buckets the value's counts
    assert android["status"] == "active"
    with engine.connect() as connection:
        stored = {
            int(hour): int(count)
            for hour, count in connection.execute(
                select(Bucket.hour, Bucket.count).where(Bucket.metric_id == android["id"])
            )
        }
    hours = pd.DatetimeIndex(frame.index)
    expected = {epoch_hour(t): int(n) for t, n in zip(hours, frame["Android"], strict=True) if n}
    assert stored == expected

    # listed right after the metric it splits, by source and label
    listed = client.get(f"/api/v1/metrics?source_id={src.id}", headers=bearer(src)).json()
    labels = [m["label"] for m in listed["items"]]
    assert labels[:2] == ["Added to Cart", "Checkout Completed"]
    assert sorted(labels[2:]) == sorted(m["label"] for m in shown["metrics"])
    assert listed["total"] == 5
    # the cursor walks the same order a metric at a time
    walked: list[str] = []
    cursor = None
    while True:
        after = f"&cursor={cursor}" if cursor else ""
        url = f"/api/v1/metrics?source_id={src.id}&limit=1{after}"
        page = client.get(url, headers=bearer(src)).json()
        walked += [m["label"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == labels
    one = client.get(f"/api/v1/metrics/{android['id']}", headers=bearer(src)).json()
    assert one["breakdown"] == {"dimension": "os", "value": "Android"}
    parent = client.get(f"/api/v1/metrics/{other}", headers=bearer(src)).json()
    assert parent["parent_id"] is None and parent["breakdown"] is None


def test_the_hourly_pass_gives_a_new_value_its_metric_and_copies_late_events(
    fresh_engine: Engine, fresh_client: TestClient, settings: Settings
) -> None:
    engine = fresh_engine
    src = make_source(engine)
    metric_id, frame, _ = checkout_by_os(engine, src)
    alert_per_os(fresh_client, src, metric_id)
    hour = frame.index[-1]
    # Linux and 16 more appear, filling the dimension's 20 values, then one past the cap
    # (counted as other); and a late Android event arrives for an hour already copied
    more = [f"OS {i:02d}" for i in range(16)]
    late = pd.DataFrame({"Linux": [5.0], **{value: [1.0] for value in more}, "Android": [3.0]})
    late["BeOS"] = 2.0
    late.index = pd.DatetimeIndex([hour])
    late.columns.name = "os"
    add_breakdown(engine, src, metric_id, late)
    run_hour(engine, settings, hour=epoch_hour(hour), worker="test")
    shown = fresh_client.get(
        f"/api/v1/metrics/{metric_id}/breakdown-alerts", headers=bearer(src)
    ).json()
    by_value = {m["breakdown"]["value"]: m["id"] for m in shown["metrics"]}
    assert set(by_value) == {*PLATFORMS, "Linux", *more}  # none for BeOS, or for other
    split = fresh_client.get(f"/api/v1/sources/{src.id}/breakdowns", headers=bearer(src))
    [os_seen] = [d for d in split.json()["dimensions"] if d["name"] == "os"]
    assert os_seen["full"]
    with engine.connect() as connection:
        counts = {
            int(metric): int(count)
            for metric, count in connection.execute(
                select(Bucket.metric_id, Bucket.count).where(
                    Bucket.metric_id.in_(list(by_value.values())),
                    Bucket.hour == epoch_hour(hour),
                )
            )
        }
    assert counts[by_value["Linux"]] == 5
    assert counts[by_value["Android"]] == int(frame["Android"].iloc[-1]) + 3


def test_taking_a_dimension_off_stops_its_values_and_deletes_their_metrics(
    fresh_engine: Engine, fresh_client: TestClient, settings: Settings
) -> None:
    engine = fresh_engine
    client = fresh_client
    src = make_source(engine)
    metric_id, frame, start = checkout_by_os(engine, src, change={"Android": -0.6})
    alert_per_os(client, src, metric_id)
    run_hours(engine, settings, start - pd.Timedelta(hours=2), frame.index[-1])
    assert [name for name, _ in insights_of_source(engine, src)] == [ANDROID]

    url = f"/api/v1/metrics/{metric_id}/breakdown-alerts"
    cleared = client.put(url, json={"dimensions": []}, headers=bearer(src)).json()
    assert cleared["metrics"] == []
    assert not any(d["alerting"] for d in cleared["dimensions"])
    with engine.connect() as connection:
        kinds = connection.scalars(select(Metric.kind).where(Metric.source_id == src.id)).all()
    assert kinds == ["track"]
    assert insights_of_source(engine, src) == []  # they went with their metrics
    assert client.get("/api/v1/insights", headers=bearer(src)).json()["items"] == []
    # the next pass judges the metric alone and sweeps nothing
    run_hour(engine, settings, hour=epoch_hour(frame.index[-1]) + 1, worker="test")
    with engine.connect() as connection:
        left = connection.scalar(
            select(func.count()).select_from(Metric).where(Metric.source_id == src.id)
        )
    assert left == 1


def test_a_dimension_removed_from_the_source_or_refused_takes_its_values_metrics_with_it(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    metric_id, _, _ = checkout_by_os(engine, src)
    alert_per_os(client, src, metric_id)
    client.put(
        f"/api/v1/sources/{src.id}/breakdowns",
        json={"dimensions": ["app_version", "properties.contact"]},
        headers=bearer(src),
    )
    with engine.connect() as connection:
        kinds = connection.scalars(select(Metric.kind).where(Metric.source_id == src.id)).all()
        alerts = connection.scalar(
            select(func.count())
            .select_from(BreakdownAlert)
            .where(BreakdownAlert.metric_id == metric_id)
        )
    assert kinds == ["track"] and alerts == 0

    # a property counted by value, then refused when one of its values is an email address
    def send(contact: str) -> None:
        event = {
            "type": "track",
            "event": "Signed Up",
            "userId": "u1",
            "messageId": str(uuid.uuid4()),
            "properties": {"contact": contact},
        }
        response = client.post("/v1/track", json=event, auth=(src.key, ""))
        assert response.status_code == 200, response.text

    send("sales")
    send("support")
    with engine.connect() as connection:
        signed_up = connection.scalar(
            select(Metric.id).where(
                Metric.source_id == src.id, Metric.kind == "track", Metric.name == "Signed Up"
            )
        )
    assert signed_up is not None
    shown = client.put(
        f"/api/v1/metrics/{signed_up}/breakdown-alerts",
        json={"dimensions": ["properties.contact"]},
        headers=bearer(src),
    ).json()
    assert sorted(m["label"] for m in shown["metrics"]) == [
        "Signed Up \u2014 contact sales",
        "Signed Up \u2014 contact support",
    ]
    send("jane.doe@example.com")
    shown = client.get(f"/api/v1/metrics/{signed_up}/breakdown-alerts", headers=bearer(src)).json()
    assert shown["metrics"] == []
    contact = next(d for d in shown["dimensions"] if d["name"] == "properties.contact")
    assert contact["recording"] is False and contact["alerting"] is False
    assert "email addresses" in contact["refused"]
    with engine.connect() as connection:
        names = connection.scalars(select(Metric.name).where(Metric.source_id == src.id)).all()
    assert not any("sales" in name or "support" in name for name in names)
    refused = client.put(
        f"/api/v1/metrics/{signed_up}/breakdown-alerts",
        json={"dimensions": ["properties.contact"]},
        headers=bearer(src),
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "refused_dimension"
    assert "email addresses" in refused.json()["detail"]


def test_a_wrong_choice_of_dimensions_is_refused_with_a_reason_and_changes_nothing(
    client: TestClient, engine: Engine
) -> None:
    src, other = make_source(engine), make_source(engine)
    metric_id, _, _ = checkout_by_os(engine, src)
    value_id = make_metric(engine, src, name="Checkout Completed", kind="value")
    mean_id = make_metric(engine, src, name="Checkout Completed", kind="mean")
    url = f"/api/v1/metrics/{metric_id}/breakdown-alerts"
    before = client.get(url, headers=bearer(src)).json()

    def refused(target: str, body: Any, status: int, error: str, words: str) -> None:
        response = client.put(target, json=body, headers=bearer(src))
        assert response.status_code == status, (body, response.text)
        answer = response.json()
        assert answer["error"] == error, answer
        assert words in answer["detail"], answer

    refused(url, {"dimensions": ["browser"]}, 400, "unknown_dimension", "'browser'")
    refused(url, {"dimensions": ["os", "properties.plan"]}, 400, "unknown_dimension", "Settings")
    for target in (value_id, mean_id):
        refused(
            f"/api/v1/metrics/{target}/breakdown-alerts",
            {"dimensions": ["os"]},
            400,
            "unsupported_metric",
            "counts of events",
        )
    unavailable = client.get(
        f"/api/v1/metrics/{mean_id}/breakdown-alerts", headers=bearer(src)
    ).json()
    assert "counts of events" in unavailable["unavailable"] and unavailable["dimensions"] == []
    child = alert_per_os(client, src, metric_id)["metrics"][0]["id"]
    refused(
        f"/api/v1/metrics/{child}/breakdown-alerts",
        {"dimensions": ["os"]},
        400,
        "unsupported_metric",
        "its parent",
    )
    client.put(url, json={"dimensions": []}, headers=bearer(src))

    hostile: list[Any] = [
        None,
        [],
        "os",
        {},
        {"dimensions": None},
        {"dimensions": "os"},
        {"dimensions": [1, 2]},
        {"dimensions": [["os"]]},
        {"dimensions": [{"name": "os"}]},
        {"dimensions": ["os"], "extra": True},
        {"dimensions": ["x" * 201]},
        {"dimensions": ["os"] * 11},
        {"dimensions": ["os\x00"]},
        {"dimensions": ["os\n; DROP TABLE metrics"]},
        {"dimensions": ["🙂"]},
    ]
    for body in hostile:
        response = client.put(url, json=body, headers=bearer(src))
        assert 400 <= response.status_code < 500, (body, response.status_code)
        assert response.json()["detail"], body
    for raw in (b"{", b"\xff\xfe", b"[" * 5000 + b"]" * 5000):
        response = client.put(
            url, content=raw, headers={**bearer(src), "Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500, (raw[:10], response.status_code)
    for path in ("0", "-1", "99999999999999999999", "abc", str(metric_id + 10_000)):
        response = client.put(
            f"/api/v1/metrics/{path}/breakdown-alerts",
            json={"dimensions": ["os"]},
            headers=bearer(src),
        )
        assert response.status_code in (404, 422), (path, response.status_code)
    # another workspace's metric is missing, whatever its dimensions
    response = client.put(url, json={"dimensions": ["os"]}, headers=bearer(other))
    assert response.status_code == 404
    assert client.put(url, json={"dimensions": ["os"]}).status_code == 401
    assert client.get(url, headers=bearer(src)).json() == before


def test_an_event_named_like_a_value_s_metric_is_a_metric_of_its_own(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    metric_id, _, _ = checkout_by_os(engine, src)
    shown = alert_per_os(client, src, metric_id)
    child = next(m for m in shown["metrics"] if m["label"] == ANDROID)

    def events_of(metric: int) -> int:
        with engine.connect() as connection:
            total = connection.scalar(
                select(func.sum(Bucket.count)).where(Bucket.metric_id == metric)
            )
        return int(total or 0)

    before = events_of(child["id"])
    event = {"type": "track", "event": ANDROID, "userId": "u", "messageId": str(uuid.uuid4())}
    assert client.post("/v1/track", json=event, auth=(src.key, "")).status_code == 200
    with engine.connect() as connection:
        rows = connection.execute(
            select(Metric.id, Metric.kind).where(Metric.source_id == src.id, Metric.name == ANDROID)
        ).all()
    assert sorted(kind for _, kind in rows) == ["breakdown", "track"]
    [named] = [metric for metric, kind in rows if kind == "track"]
    assert events_of(named) == 1
    assert events_of(child["id"]) == before


def three_events_two_split(engine: Engine) -> tuple[MadeSource, list[int], list[int]]:
    """A source of three trained events, the first two with alerts per OS: the source, the
    events and the metrics of their values."""
    src = make_source(engine)
    ids = [checkout_by_os(engine, src, name=f"Event {i}", weeks=2, seed=i)[0] for i in range(3)]
    with session_scope(engine) as session:
        for metric_id in ids[:2]:
            metric = session.get(Metric, metric_id)
            assert metric is not None
            set_breakdown_alerts(session, metric=metric, names=["os"])
    with engine.connect() as connection:
        children = connection.scalars(
            select(Metric.id).where(Metric.parent_id.in_(ids[:2])).order_by(Metric.id)
        ).all()
    assert len(children) == 6
    return src, ids, list(children)


def test_the_metrics_of_values_are_not_counted_in_a_source_wide_incident(engine: Engine) -> None:
    at = last_closed_hour()
    start = at - pd.Timedelta(hours=2)
    src, ids, children = three_events_two_split(engine)
    with session_scope(engine) as session:
        # the source's active metrics are its three events, not their values too
        assert active_metrics(session, source_id=src.id, before=start.to_pydatetime()) == 3
    # two events down with their six values: two metrics of three, fewer than three
    story = open_story(engine, src, [*ids[:2], *children], start=start, detected_at=at)
    with session_scope(engine) as session:
        leader = session.get(Insight, story[0])
        assert leader is not None
        assert leader.metric_id in ids[:2]  # an event leads, not one of its values
        assert story_incident(session, leader) is None

    # all three events down, with their values: an incident of three metrics, named so
    src, ids, children = three_events_two_split(engine)
    story = open_story(engine, src, [*ids, *children], start=start, detected_at=at)
    with session_scope(engine) as session:
        leader = session.get(Insight, story[0])
        assert leader is not None
        incident = story_incident(session, leader)
        assert incident is not None
        assert (incident.metrics, incident.of) == (3, 3)
        assert sorted(incident.names) == ["Event 0", "Event 1", "Event 2"]
        # its alert lists the events that went down, not each of their values
        alert = session.scalars(
            select(Notification).where(Notification.insight_id == leader.id)
        ).one()
        message, _ = build_message(session, alert, Settings(), with_chart=False)
        names = sorted(line.split(" (")[0] for line in message.related)
        assert names == sorted({"Event 0", "Event 1", "Event 2"} - {message.metric_name})
