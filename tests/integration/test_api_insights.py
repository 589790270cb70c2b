"""The dashboard API's insights: the paged newsfeed, one insight, feedback and muting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from lantern.db import session_scope
from lantern.insights.models import Insight, InsightCause
from lantern.metrics.models import FlagChange
from tests.factories import (
    MadeSource,
    add_insight,
    last_closed_hour,
    make_insight,
    make_metric,
    make_source,
)


def bearer(src: MadeSource) -> dict[str, str]:
    return {"Authorization": f"Bearer {src.token}"}


def feed(client: TestClient, src: MadeSource, **params: object) -> dict:
    response = client.get("/api/v1/insights", params=params, headers=bearer(src))
    assert response.status_code == 200, response.text
    return response.json()


def test_the_newsfeed_pages_newest_first_without_gaps_or_repeats(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    metrics = [make_metric(engine, src, name=f"Event {i}", days=1) for i in range(2)]
    base = last_closed_hour() - pd.Timedelta(days=1)
    made = []
    for i in range(7):
        at = base + pd.Timedelta(hours=i // 2)  # pairs detected in the same hour
        made.append((at, add_insight(engine, src, metrics[i % 2], detected_at=at)))
    expected = [i for _, i in sorted(made, reverse=True)]

    seen, cursor, pages = [], None, 0
    while True:
        page = feed(client, src, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == expected
    first = feed(client, src, limit=3)["items"][0]
    assert first["metric_label"] == "Event 0"
    assert first["source_name"] == "web"
    assert (first["kind"], first["status"], first["related"]) == ("spike", "open", 0)


def test_grouped_insights_are_listed_under_their_lead_unless_the_metric_is_asked_for(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    lead_metric = make_metric(engine, src, name="Checkout", days=1)
    total_metric = make_metric(engine, src, name="track", kind="total", days=1)
    at = last_closed_hour()
    lead = add_insight(engine, src, lead_metric, detected_at=at)
    child = add_insight(engine, src, total_metric, detected_at=at, parent_id=lead)
    (listed,) = feed(client, src)["items"]
    assert (listed["id"], listed["related"]) == (lead, 1)
    assert [i["id"] for i in feed(client, src, metric_id=total_metric)["items"]] == [child]

    detail = client.get(f"/api/v1/insights/{lead}", headers=bearer(src)).json()
    assert [r["id"] for r in detail["related"]] == [child]
    assert detail["related"][0]["metric_label"] == "All track calls"


def test_the_newsfeed_filters_by_status_kind_source_metric_and_time(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    other_source = make_source(engine, workspace=src.workspace, name="app")
    web_metric = make_metric(engine, src, name="Search", days=1)
    app_metric = make_metric(engine, other_source, name="Open", days=1)
    now = last_closed_hour()
    old = add_insight(
        engine, src, web_metric, detected_at=now - pd.Timedelta(days=3), status="resolved"
    )
    drop = add_insight(engine, src, web_metric, detected_at=now, kind="drop", direction="down")
    elsewhere = add_insight(engine, other_source, app_metric, detected_at=now)

    def ids(**params: object) -> set[int]:
        return {item["id"] for item in feed(client, src, **params)["items"]}

    assert ids() == {old, drop, elsewhere}
    assert ids(status="resolved") == {old}
    assert ids(kind="drop") == {drop}
    assert ids(source_id=other_source.id) == {elsewhere}
    assert ids(metric_id=web_metric) == {old, drop}
    assert ids(since=(now - pd.Timedelta(days=1)).isoformat()) == {drop, elsewhere}
    assert ids(until=(now - pd.Timedelta(days=1)).isoformat()) == {old}


def test_unknown_filter_values_a_bad_cursor_and_a_limit_out_of_range_are_rejected(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    cases = {
        "status": {"status": "closed"},
        "kind": {"kind": "wobble"},
        "limit": {"limit": 0},
        "since": {"since": "last week"},
        "cursor": {"cursor": "not-a-cursor"},
    }
    for field, params in cases.items():
        response = client.get("/api/v1/insights", params=params, headers=bearer(src))
        assert response.status_code == 422, params
        assert field in response.json()["detail"]
    too_many = client.get("/api/v1/insights", params={"limit": 201}, headers=bearer(src))
    assert too_many.status_code == 422
    other = make_source(engine)
    foreign = client.get("/api/v1/insights", params={"source_id": other.id}, headers=bearer(src))
    assert foreign.status_code == 404


def test_one_insight_shows_its_causes_notifications_and_metric(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    insight_id = make_insight(engine, src)
    changed = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4)
    with session_scope(engine) as session:
        change = FlagChange(
            source_id=src.id,
            flag_key="new-checkout",
            old_version=3,
            new_version=4,
            changed_at=changed,
        )
        session.add(change)
        session.flush()
        session.add(InsightCause(insight_id=insight_id, flag_change_id=change.id))
    detail = client.get(f"/api/v1/insights/{insight_id}", headers=bearer(src)).json()
    assert detail["id"] == insight_id
    assert (detail["kind"], detail["direction"], detail["severity"]) == (
        "level_shift",
        "down",
        "high",
    )
    assert detail["causes"] == [
        {
            "flag_key": "new-checkout",
            "old_version": 3,
            "new_version": 4,
            "changed_at": changed.isoformat().replace("+00:00", "Z"),
        }
    ]
    assert detail["notifications"] == [
        {"purpose": "alert", "status": "pending", "error": None, "sent_at": None}
    ]
    assert detail["metric"]["label"] == "Signed Up"
    assert detail["metric"]["open_insights"] == 1
    assert detail["related"] == []
    missing = client.get("/api/v1/insights/999999999", headers=bearer(src))
    assert missing.status_code == 404


def test_feedback_is_kept_on_the_insight_and_counted_per_detector_kind(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    metric = make_metric(engine, src, days=1)
    now = last_closed_hour()
    spike = add_insight(engine, src, metric, detected_at=now)
    shifts = [
        add_insight(
            engine, src, metric, detected_at=now - pd.Timedelta(hours=h), kind="level_shift"
        )
        for h in (1, 2)
    ]
    url = "/api/v1/insights/{}/feedback"
    answered = client.post(url.format(spike), json={"useful": True}, headers=bearer(src))
    assert answered.status_code == 200
    assert answered.json()["useful"] is True
    assert answered.json()["metric"]["id"] == metric
    for insight_id in shifts:
        client.post(url.format(insight_id), json={"useful": True}, headers=bearer(src))
    # the latest answer counts
    client.post(url.format(shifts[0]), json={"useful": False}, headers=bearer(src))

    counts = client.get("/api/v1/insights/feedback", headers=bearer(src)).json()
    by_kind = {c["kind"]: (c["useful"], c["not_useful"]) for c in counts}
    assert by_kind["spike"] == (1, 0)
    assert by_kind["level_shift"] == (1, 1)
    assert by_kind["outage"] == (0, 0)
    with engine.connect() as connection:
        useful, at = connection.execute(
            select(Insight.useful, Insight.feedback_at).where(Insight.id == shifts[0])
        ).one()
    assert useful is False
    assert at is not None
    bad = client.post(url.format(spike), json={"useful": "maybe"}, headers=bearer(src))
    assert bad.status_code == 422


def test_muting_from_an_insight_mutes_or_snoozes_its_metric(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    insight_id = make_insight(engine, src)
    url = f"/api/v1/insights/{insight_id}/mute"
    until = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)).floor("s")
    snoozed = client.post(url, json={"until": until.isoformat()}, headers=bearer(src)).json()
    assert (snoozed["status"], snoozed["muted"]) == ("snoozed", False)
    assert pd.Timestamp(snoozed["snoozed_until"]) == until
    muted = client.post(url, json={"until": None}, headers=bearer(src)).json()
    assert (muted["status"], muted["muted"]) == ("muted", True)
    assert pd.Timestamp(muted["snoozed_until"]) == until
    past = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=1)).isoformat()
    rejected = client.post(url, json={"until": past}, headers=bearer(src))
    assert rejected.status_code == 422


def test_the_newsfeed_the_chart_and_the_feedback_name_each_kind_as_people_read_it(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    metric = make_metric(engine, src, days=1)
    now = last_closed_hour()
    add_insight(engine, src, metric, detected_at=now, kind="seasonality_change")
    (item,) = feed(client, src)["items"]
    assert (item["kind"], item["kind_label"]) == ("seasonality_change", "Rhythm change")

    chart = client.get(f"/api/v1/metrics/{metric}/series", headers=bearer(src)).json()
    assert [a["kind_label"] for a in chart["anomalies"]] == ["Rhythm change"]

    counts = client.get("/api/v1/insights/feedback", headers=bearer(src)).json()
    assert {c["kind"]: c["kind_label"] for c in counts} == {
        "level_shift": "Level shift",
        "trend_change": "Trend change",
        "seasonality_change": "Rhythm change",
        "spike": "Spike",
        "drop": "Drop",
        "outage": "Outage",
        "tracking_break": "Tracking break",
    }


def test_every_insight_says_how_sure_lantern_is_its_range_and_what_to_do_in_words(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    insight_id = make_insight(engine, src)  # score 8, 20 an hour against 45-75, 3 hours
    (item,) = client.get("/api/v1/insights", headers=bearer(src)).json()["items"]
    detail = client.get(f"/api/v1/insights/{insight_id}", headers=bearer(src)).json()
    words = item["words"]
    assert words["sureness"] == "very_sure"
    assert words["how_sure"] == (
        "Very unlikely to be chance: by chance, a change this large comes about once in "
        "11,000 years of this metric's hours."
    )
    assert words["normal_range"] == (
        "Normally 45\u201375 events an hour at this time of day and week; 20 an hour observed "
        "over 3 hours."
    )
    assert words["severity"].startswith("high: ")
    assert words["status"].startswith("open: going on now")
    assert "release" in words["next_step"]
    assert detail["words"] == words
