"""The dashboard API's metrics: status, filters, the chart, and muting or snoozing."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from lantern.config import Settings
from lantern.db import session_scope
from lantern.detect import replay_expected
from lantern.insights.models import Insight
from lantern.metrics.service import add_to_buckets, epoch_hour
from lantern.notify.models import Notification
from lantern.pipeline import run_hour
from tests.factories import (
    MadeSource,
    last_closed_hour,
    make_insight,
    make_metric,
    make_source,
)


def bearer(src: MadeSource) -> dict[str, str]:
    return {"Authorization": f"Bearer {src.token}"}


def by_label(client: TestClient, src: MadeSource, query: str = "") -> dict[str, dict]:
    response = client.get(f"/api/v1/metrics{query}", headers=bearer(src))
    assert response.status_code == 200, response.text
    return {item["label"]: item for item in response.json()["items"]}


def test_metrics_are_listed_with_labels_status_countdown_latest_value_and_weekly_volume(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    make_metric(engine, src, name="Signed Up", days=10)
    make_metric(engine, src, name="Checkout Completed", kind="value", days=2)
    make_metric(engine, src, name="Pricing", kind="page", days=1)
    items = by_label(client, src)
    assert set(items) == {"Signed Up", "Checkout Completed (value)", "Pricing (page)"}

    trained = items["Signed Up"]
    assert trained["status"] == "active"
    assert trained["training_left_seconds"] == 0
    assert trained["kind"] == "track"
    assert trained["source_name"] == "web"
    assert trained["value_metric"] is False
    last = last_closed_hour()
    assert pd.Timestamp(trained["latest_hour"]) == last
    week = np.arange(len(pd.date_range(end=last, periods=240, freq="h")))[-7 * 24 :]
    cycle = (60 + 40 * np.sin(week / 24 * 2 * np.pi)).round()
    assert trained["latest_value"] == cycle[-1]
    # the last 7 days include the current hour, which has no data yet
    assert trained["volume_7d"] == cycle[1:].sum()
    assert trained["open_insights"] == 0

    young = items["Checkout Completed (value)"]
    assert young["status"] == "training"
    assert young["value_metric"] is True
    assert 5 * 86400 - 3600 < young["training_left_seconds"] <= 5 * 86400 + 3600


def test_metrics_filter_by_status_text_and_source_and_reject_unknown_values(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    make_metric(engine, src, name="Signed Up", days=10)
    make_metric(engine, src, name="Signed In", days=2)
    make_metric(engine, src, name="Logged Out", days=10)
    assert set(by_label(client, src, "?status=training")) == {"Signed In"}
    assert set(by_label(client, src, "?status=active")) == {"Signed Up", "Logged Out"}
    assert set(by_label(client, src, "?q=signed")) == {"Signed Up", "Signed In"}
    assert set(by_label(client, src, "?q=signed&status=active")) == {"Signed Up"}
    assert by_label(client, src, "?status=muted") == {}
    second = client.post("/api/v1/sources", json={"name": "app"}, headers=bearer(src)).json()
    assert by_label(client, src, f"?source_id={second['id']}") == {}
    assert len(by_label(client, src, f"?source_id={src.id}")) == 3

    for query in ("status=sleeping", "status=active&status=muted"):
        bad = client.get(f"/api/v1/metrics?{query}", headers=bearer(src))
        assert bad.status_code == 422, query
        assert "status" in bad.json()["detail"]
    other = make_source(engine)
    foreign = client.get(f"/api/v1/metrics?source_id={other.id}", headers=bearer(src))
    assert foreign.status_code == 404


def test_a_metric_is_muted_snoozed_and_woken_through_its_watch(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    metric_id = make_metric(engine, src, days=10)
    url = f"/api/v1/metrics/{metric_id}/watch"
    muted = client.put(url, json={"muted": True}, headers=bearer(src)).json()
    assert (muted["status"], muted["muted"]) == ("muted", True)
    assert set(by_label(client, src, "?status=muted")) == {"Signed Up"}

    until = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=5)).floor("s")
    snoozed = client.put(
        url, json={"muted": False, "snoozed_until": until.isoformat()}, headers=bearer(src)
    ).json()
    assert snoozed["status"] == "snoozed"
    assert pd.Timestamp(snoozed["snoozed_until"]) == until
    assert client.get(f"/api/v1/metrics/{metric_id}", headers=bearer(src)).json() == snoozed

    past = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=1)).isoformat()
    rejected = client.put(url, json={"muted": False, "snoozed_until": past}, headers=bearer(src))
    assert rejected.status_code == 422
    assert "snoozed_until" in rejected.json()["detail"]
    woken = client.put(url, json={"muted": False, "snoozed_until": None}, headers=bearer(src))
    assert woken.json()["status"] == "active"


def test_a_metric_gets_an_owner_and_a_note_and_bad_ones_are_refused_with_the_reason(
    client: TestClient, engine: Engine
) -> None:
    src, other = make_source(engine), make_source(engine)
    metric_id = make_metric(engine, src, days=2)
    url = f"/api/v1/metrics/{metric_id}/owner"
    body = {"owner": "<@U024BE7LH>", "note": "  Check the payment provider first "}
    saved = client.put(url, json=body, headers=bearer(src))
    assert (saved.json()["owner"], saved.json()["note"]) == (
        "U024BE7LH",
        "Check the payment provider first",
    )
    for bad, reason in [
        ({"owner": "@ana"}, "Slack member id"),
        ({"owner": "U1; DROP"}, "Slack member id"),
        ({"note": "x" * 501}, "note"),
        ({"note": "a\x00b"}, "note"),
        ({"owner": "S0GROUP", "extra": 1}, "extra"),
    ]:
        refused = client.put(url, json=bad, headers=bearer(src))
        assert refused.status_code == 422 and reason in refused.json()["detail"], refused.text
    assert client.put(url, json={"owner": "S0GROUP"}, headers=bearer(other)).status_code == 404
    kept = client.get(f"/api/v1/metrics/{metric_id}", headers=bearer(src)).json()
    assert (kept["owner"], kept["note"]) == ("U024BE7LH", "Check the payment provider first")
    cleared = client.put(url, json={"owner": None, "note": ""}, headers=bearer(src)).json()
    assert (cleared["owner"], cleared["note"]) == (None, None)


def test_a_muted_metric_is_still_scored_but_nobody_is_told(
    fresh_client: TestClient, fresh_engine: Engine
) -> None:
    last = last_closed_hour()
    index = pd.date_range(end=last, periods=21 * 24, freq="h")
    steps = np.arange(len(index))
    counts = pd.Series((200 + 80 * np.sin(steps / 24 * 2 * np.pi)).round(), index=index)
    counts.iloc[-4:] = 0  # an outage in the last four hours
    loud, quiet = make_source(fresh_engine, name="web"), make_source(fresh_engine, name="app")
    heard = make_metric(fresh_engine, loud, counts=counts)
    silenced = make_metric(fresh_engine, quiet, counts=counts)
    url = f"/api/v1/metrics/{silenced}/watch"
    assert fresh_client.put(url, json={"muted": True}, headers=bearer(quiet)).status_code == 200

    settings = Settings(scheduler_enabled=False, detect_executor="inline")
    for hour in range(epoch_hour(last) - 5, epoch_hour(last) + 1):
        run_hour(fresh_engine, settings, hour=hour, worker="test")

    with fresh_engine.connect() as connection:
        insights = dict(connection.execute(select(Insight.metric_id, Insight.muted)).tuples().all())
        told = connection.scalars(
            select(Insight.metric_id).join(Notification, Notification.insight_id == Insight.id)
        ).all()
    assert insights == {heard: False, silenced: True}
    assert told == [heard]


def test_the_chart_has_no_band_during_training_and_the_detectors_band_after(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    metric_id = make_metric(engine, src, days=10)
    response = client.get(
        f"/api/v1/metrics/{metric_id}/series",
        params={
            "start": (pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(days=12)).isoformat()
        },
        headers=bearer(src),
    )
    assert response.status_code == 200
    chart = response.json()
    assert chart["metric"]["id"] == metric_id
    points = pd.DataFrame(chart["points"])
    points["t"] = pd.to_datetime(points["t"])
    assert len(points) == 12 * 24
    assert points["t"].iloc[-1] == last_closed_hour()
    first = last_closed_hour() - pd.Timedelta(hours=10 * 24 - 1)
    before = points[points["t"] < first]
    training = points[(points["t"] >= first) & (points["t"] < first + pd.Timedelta(days=7))]
    trained = points[points["t"] >= first + pd.Timedelta(days=7)]
    assert before["observed"].isna().all()
    assert (training["observed"] > 0).all()
    assert training[["expected", "lower", "upper"]].isna().all().all()
    assert len(trained) == 3 * 24
    assert trained[["expected", "lower", "upper"]].notna().all().all()
    assert (trained["lower"] <= trained["expected"]).all()
    assert (trained["expected"] <= trained["upper"]).all()
    inside = (trained["observed"] >= trained["lower"]) & (trained["observed"] <= trained["upper"])
    assert inside.mean() > 0.9
    assert chart["anomalies"] == []


def test_the_chart_marks_the_metrics_insights_and_defaults_to_the_last_seven_days(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    insight_id = make_insight(engine, src)
    with engine.connect() as connection:
        metric_id = connection.scalar(select(Insight.metric_id).where(Insight.id == insight_id))
    chart = client.get(f"/api/v1/metrics/{metric_id}/series", headers=bearer(src)).json()
    assert len(chart["points"]) == 7 * 24
    assert pd.Timestamp(chart["points"][-1]["t"]) == last_closed_hour()
    (anomaly,) = chart["anomalies"]
    assert anomaly["insight_id"] == insight_id
    assert (anomaly["kind"], anomaly["direction"], anomaly["end"]) == ("level_shift", "down", None)
    assert chart["metric"]["open_insights"] == 1
    earlier = client.get(
        f"/api/v1/metrics/{metric_id}/series",
        params={
            "start": (last_closed_hour() - timedelta(days=10)).isoformat(),
            "end": (last_closed_hour() - timedelta(days=9)).isoformat(),
        },
        headers=bearer(src),
    ).json()
    assert len(earlier["points"]) == 24
    assert earlier["anomalies"] == []


def test_the_chart_rejects_bad_dates_reversed_ranges_and_ranges_over_400_days(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    metric_id = make_metric(engine, src, days=1)
    url = f"/api/v1/metrics/{metric_id}/series"
    cases = {
        "start": {"start": "yesterday"},
        "end": {"end": "2026-13-01T00:00:00Z"},
        "start must be before end": {"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00Z"},
        "400 days": {"start": "2025-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
    }
    for words, params in cases.items():
        response = client.get(url, params=params, headers=bearer(src))
        assert response.status_code == 422, params
        assert words in response.json()["detail"]
    assert client.get("/api/v1/metrics/999999999/series", headers=bearer(src)).status_code == 404


def test_a_chart_viewed_again_shows_events_that_arrived_in_between(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    metric_id = make_metric(engine, src, days=10)
    url = f"/api/v1/metrics/{metric_id}/series"
    before = client.get(url, headers=bearer(src)).json()
    assert client.get(url, headers=bearer(src)).json() == before
    with session_scope(engine) as session:
        late = {(metric_id, epoch_hour(last_closed_hour())): (500, 0.0, 0.0)}
        add_to_buckets(session.connection(), late)
    after = client.get(url, headers=bearer(src)).json()
    assert after["points"][-1]["observed"] == before["points"][-1]["observed"] + 500
    assert after["points"][:-1] == before["points"][:-1]


def test_a_long_metrics_chart_expects_what_a_replay_of_its_whole_history_expects(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    index = pd.date_range(end=last_closed_hour(), periods=120 * 24, freq="h")
    hours = np.arange(len(index))
    lam = 300 * (0.55 + 0.45 * np.sin(2 * np.pi * hours / 24))
    lam[40 * 24 : 40 * 24 + 5] *= 0.05  # an outage, and later a lasting change, long before
    lam[60 * 24 :] *= 1.6
    counts = pd.Series(np.random.default_rng(3).poisson(lam).astype(float), index=index)
    metric_id = make_metric(engine, src, counts=counts)
    start = index[-30 * 24]
    chart = client.get(
        f"/api/v1/metrics/{metric_id}/series",
        params={"start": start.isoformat()},
        headers=bearer(src),
    ).json()
    whole = replay_expected(counts, stagger=metric_id % 24)
    shown = [p["expected"] for p in chart["points"]]
    np.testing.assert_allclose(shown, whole.expected[start:].to_numpy(), rtol=1e-6)


def test_a_chart_up_to_now_ends_with_the_hour_under_way_counted_so_far_and_marked_partial(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    metric_id = make_metric(engine, src, days=10)
    current = last_closed_hour() + pd.Timedelta(hours=1)
    with session_scope(engine) as session:
        add_to_buckets(session.connection(), {(metric_id, epoch_hour(current)): (7, 0.0, 0.0)})
    now = pd.Timestamp.now(tz="UTC")
    chart = client.get(
        f"/api/v1/metrics/{metric_id}/series",
        params={"start": (now - pd.Timedelta(days=7)).isoformat(), "end": now.isoformat()},
        headers=bearer(src),
    ).json()
    last = chart["points"][-1]
    assert pd.Timestamp(last["t"]) == current
    assert (last["observed"], last["partial"], last["expected"]) == (7, True, None)
    assert not any(p["partial"] for p in chart["points"][:-1])
    assert chart["points"][-2]["expected"] is not None
    closed_only = client.get(f"/api/v1/metrics/{metric_id}/series", headers=bearer(src)).json()
    assert pd.Timestamp(closed_only["points"][-1]["t"]) == last_closed_hour()


def test_a_daily_chart_averages_each_days_hours_and_counts_those_outside_the_band(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    index = pd.date_range(end=last_closed_hour(), periods=40 * 24, freq="h")
    hours = np.arange(len(index))
    counts = pd.Series(
        np.random.default_rng(5).poisson(80 + 50 * np.sin(2 * np.pi * hours / 24)).astype(float),
        index=index,
    )
    # four silent hours two days ago, within one day whatever the time of the run
    silent = last_closed_hour().floor("D") - pd.Timedelta(days=2) + pd.Timedelta(hours=10)
    counts.loc[silent : silent + pd.Timedelta(hours=3)] = 0
    metric_id = make_metric(engine, src, counts=counts)
    start = (last_closed_hour() - pd.Timedelta(days=29)).floor("D")
    params = {"start": start.isoformat(), "end": pd.Timestamp.now(tz="UTC").isoformat()}
    url = f"/api/v1/metrics/{metric_id}/series"
    hourly = client.get(url, params=params, headers=bearer(src)).json()
    daily = client.get(url, params={**params, "step": "day"}, headers=bearer(src)).json()

    assert (hourly["step"], daily["step"]) == ("hour", "day")
    assert len(daily["points"]) == 30
    frame = pd.DataFrame([p for p in hourly["points"] if not p["partial"]])
    frame["day"] = pd.to_datetime(frame["t"]).dt.floor("D")
    frame["out"] = (frame["observed"] < frame["lower"]) | (frame["observed"] > frame["upper"])
    for point in daily["points"]:
        hours_of_day = frame[frame["day"] == pd.Timestamp(point["t"])]
        assert point["hours"] == len(hours_of_day)
        assert point["observed"] == pytest.approx(hours_of_day["observed"].mean())
        assert point["lower"] == pytest.approx(hours_of_day["lower"].mean())
        assert point["outside"] == int(hours_of_day["out"].sum())
    # today's point, while today lasts, is partial (none before it is)
    today = pd.Timestamp.now(tz="UTC").floor("D")
    assert daily["points"][-1]["partial"] is (pd.Timestamp(daily["points"][-1]["t"]) == today)
    assert not any(p["partial"] for p in daily["points"][:-1])
    assert max(p["outside"] for p in daily["points"][-3:]) >= 4


def test_a_metrics_page_shows_the_teams_feedback_and_it_can_be_forgotten(
    client: TestClient, engine: Engine
) -> None:
    src, other = make_source(engine), make_source(engine)
    insight_id = make_insight(engine, src)
    with session_scope(engine) as session:
        metric_id = session.get_one(Insight, insight_id).metric_id
    url = f"/api/v1/metrics/{metric_id}"
    assert client.get(url, headers=bearer(src)).json()["feedback"] == {}
    said = client.post(
        f"/api/v1/insights/{insight_id}/feedback", json={"useful": False}, headers=bearer(src)
    )
    assert said.status_code == 200, said.text
    # the insight is a level shift: its bar rises one setting
    assert client.get(url, headers=bearer(src)).json()["feedback"] == {"level_shift": 1}
    assert client.delete(f"{url}/feedback", headers=bearer(other)).status_code == 404
    forgotten = client.delete(f"{url}/feedback", headers=bearer(src))
    assert forgotten.status_code == 200 and forgotten.json()["feedback"] == {}
    with session_scope(engine) as session:
        assert session.get_one(Insight, insight_id).useful is None
