"""Breakdowns through the HTTP API: events as the official libraries send them, split by
dimensions that are never personal, a cap on values, and personal properties refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from lantern.analysis import Lantern
from lantern.breakdowns.models import BreakdownDimension, BreakdownValue
from lantern.breakdowns.service import VALUES_PER_DIMENSION
from lantern.config import Settings
from lantern.metrics.models import Metric
from lantern.pipeline import clean_up
from tests.factories import MadeSource, make_source

# The context each library fills in, as analytics-ios, analytics-android and analytics.js
# send it (context fields per Segment's spec; the ip and ids are what must never count).
IOS = {
    "app": {"name": "Shop", "version": "5.2", "build": "520"},
    "device": {"id": "B5372DB0-C21E-11E4-8DFC-AA07A5B093DB", "model": "iPhone7,2"},
    "library": {"name": "analytics-ios", "version": "4.1.0"},
    "locale": "en-US",
    "os": {"name": "iOS", "version": "17.1"},
    "ip": "203.0.113.9",
    "traits": {"email": "jane@example.com"},
}
ANDROID = {
    "app": {"name": "Shop", "version": "5.1.3"},
    "library": {"name": "analytics-android", "version": "4.11.3"},
    "locale": "de_DE",
    "os": {"name": "Android", "version": "14"},
}
WEB = {
    "library": {"name": "analytics.js", "version": "next-1.55.0"},
    "locale": "fr-FR",
    "page": {"path": "/pricing", "url": "https://shop.example/pricing?utm=x", "title": "Pricing"},
    "userAgent": "Mozilla/5.0",
}


def event(context: dict[str, Any], name: str = "Checkout", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "track",
        "event": name,
        "userId": f"user-{uuid.uuid4().hex[:6]}",
        "messageId": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        "context": context,
    }
    body.update(extra)
    return body


def send(client: TestClient, src: MadeSource, events: list[dict[str, Any]]) -> None:
    response = client.post("/v1/batch", json={"batch": events}, auth=(src.key, ""))
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == []


def split(engine: Engine, src: MadeSource, dimension: str, name: str = "Checkout") -> pd.Series:
    """The total per value of a track metric's breakdown, over every hour."""
    with engine.connect() as connection:
        metric_id = connection.scalar(
            select(Metric.id).where(
                Metric.source_id == src.id, Metric.kind == "track", Metric.name == name
            )
        )
    assert metric_id is not None
    frame = Lantern(engine).breakdown(metric_id, dimension)
    return frame.sum().astype(int)


def bearer(src: MadeSource) -> dict[str, str]:
    return {"Authorization": f"Bearer {src.token}"}


def test_each_library_s_events_are_counted_by_os_app_version_library_and_country(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    contexts = [IOS, IOS, IOS, ANDROID, ANDROID, WEB]
    send(client, src, [event(context) for context in contexts])
    assert split(engine, src, "os").to_dict() == {"iOS": 3, "Android": 2}
    assert split(engine, src, "app_version").to_dict() == {"5.2": 3, "5.1.3": 2}
    assert split(engine, src, "library").to_dict() == {
        "analytics-ios": 3,
        "analytics-android": 2,
        "analytics.js": 1,
    }
    assert split(engine, src, "country").to_dict() == {"US": 3, "DE": 2, "FR": 1}
    assert split(engine, src, "page_path").to_dict() == {"/pricing": 1}


def test_a_repeated_message_id_is_counted_once_in_the_breakdowns_too(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    once = event(IOS)
    send(client, src, [once])
    send(client, src, [once, event(ANDROID)])
    assert split(engine, src, "os").to_dict() == {"iOS": 1, "Android": 1}


def test_a_page_path_loses_its_query_string_and_its_id_like_segments(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    paths = ["/orders/88123/receipt?token=abc", "/u/jane@example.com", "/docs#install", "/docs"]
    send(
        client,
        src,
        [event({"page": {"path": path}, "library": {"name": "analytics.js"}}) for path in paths],
    )
    assert split(engine, src, "page_path").to_dict() == {
        "/docs": 2,
        "/orders/:id/receipt": 1,
        "/u/:id": 1,
    }


def test_values_past_the_cap_are_counted_as_other_and_create_no_metric(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    versions = [f"1.{n}" for n in range(VALUES_PER_DIMENSION + 5)]
    send(client, src, [event({"app": {"version": v}}) for v in versions])
    send(client, src, [event({"app": {"version": "9.9"}}), event({"app": {"version": "1.0"}})])
    counts = split(engine, src, "app_version")
    with engine.connect() as connection:
        metrics = connection.scalar(
            select(func.count()).select_from(Metric).where(Metric.source_id == src.id)
        )
        stored = connection.scalar(select(func.count()).select_from(BreakdownValue))
    assert len(counts) == VALUES_PER_DIMENSION + 1
    assert counts["(other)"] == 6  # five past the cap in the first batch, one in the next
    assert counts["1.0"] == 2  # a value with a row of its own keeps counting there
    assert list(counts.index)[-1] == "(other)"
    assert metrics == 2  # Checkout and all track calls, whatever the values
    assert stored is not None and stored >= VALUES_PER_DIMENSION + 1
    debug = client.get(f"/api/v1/sources/{src.id}/debug", headers=bearer(src)).json()
    app_version = next(d for d in debug["dimensions"] if d["name"] == "app_version")
    assert app_version["full"] is True
    assert app_version["values"][-1] == {"value": "(other)", "events": 6}


def test_a_property_key_that_names_something_personal_is_refused_with_the_reason(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    for name, word in [
        ("properties.email", "email"),
        ("properties.userId", "user"),
        ("properties.customer_name", "name"),
        ("properties.phone", "phone"),
        ("properties.ip", "IP"),
        ("traits.plan", "not a dimension"),
        ("properties.value", "measured"),
    ]:
        response = client.put(
            f"/api/v1/sources/{src.id}/breakdowns",
            json={"dimensions": ["os", name]},
            headers=bearer(src),
        )
        assert response.status_code == 400, name
        assert word in response.json()["detail"], response.json()
    kept = client.get(f"/api/v1/sources/{src.id}/breakdowns", headers=bearer(src)).json()
    assert [d["name"] for d in kept["dimensions"]] == [
        "os",
        "app_version",
        "library",
        "country",
        "page_path",
    ]


def test_an_allowed_property_is_counted_by_value(client: TestClient, engine: Engine) -> None:
    src = make_source(engine)
    response = client.put(
        f"/api/v1/sources/{src.id}/breakdowns",
        json={"dimensions": ["os", "properties.plan"]},
        headers=bearer(src),
    )
    assert response.status_code == 200, response.text
    assert [d["name"] for d in response.json()["dimensions"]] == ["os", "properties.plan"]
    plans = [("pro", 2), ("pro", 4), ("free", 1), ("team", 5)]
    send(client, src, [event(IOS, properties={"plan": p, "value": v}) for p, v in plans])
    send(client, src, [event(IOS, properties={"plan": "free"})])  # no value: counted only
    assert split(engine, src, "properties.plan").to_dict() == {"pro": 2, "free": 2, "team": 1}
    assert split(engine, src, "os").to_dict() == {"iOS": 5}
    with engine.connect() as connection:
        rows = connection.execute(
            select(Metric.kind, Metric.id).where(
                Metric.source_id == src.id, Metric.name == "Checkout"
            )
        )
        ids = {str(kind): int(metric_id) for kind, metric_id in rows}
    lantern = Lantern(engine)
    sums = lantern.breakdown(ids["value"], "properties.plan").sum()
    means = lantern.breakdown(ids["mean"], "properties.plan").mean()
    assert sums.to_dict() == {"pro": 6.0, "team": 5.0, "free": 1.0}
    assert means.to_dict() == {"pro": 3.0, "team": 5.0, "free": 1.0}


def test_a_property_whose_values_are_email_addresses_is_refused_and_its_counts_deleted(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    client.put(
        f"/api/v1/sources/{src.id}/breakdowns",
        json={"dimensions": ["properties.contact"]},
        headers=bearer(src),
    )
    send(client, src, [event(IOS, properties={"contact": "sales"})])
    send(client, src, [event(IOS, properties={"contact": "jane.doe@example.com"})])
    send(client, src, [event(IOS, properties={"contact": "sales"})])
    shown = client.get(f"/api/v1/sources/{src.id}/breakdowns", headers=bearer(src)).json()
    contact = shown["dimensions"][0]
    assert contact["recording"] is False
    assert "email addresses" in contact["refused"]
    assert contact["values"] == []
    debug = client.get(f"/api/v1/sources/{src.id}/debug", headers=bearer(src)).json()
    assert "email addresses" in debug["dimensions"][0]["refused"]
    assert "jane.doe" not in str(shown) + str(debug)
    with engine.connect() as connection:
        values = connection.scalars(select(BreakdownValue.value)).all()
    assert "sales" not in values and not any("@" in v for v in values)


def test_a_property_with_one_value_per_event_is_refused_as_an_id(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    client.put(
        f"/api/v1/sources/{src.id}/breakdowns",
        json={"dimensions": ["properties.cohort"]},
        headers=bearer(src),
    )
    send(client, src, [event(ANDROID, properties={"cohort": f"c{n}"}) for n in range(60)])
    shown = client.get(f"/api/v1/sources/{src.id}/breakdowns", headers=bearer(src)).json()
    assert "almost every event has a value of its own" in shown["dimensions"][0]["refused"]
    assert shown["dimensions"][0]["values"] == []


def test_the_debug_view_lists_the_dimensions_seen_with_their_values(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    send(client, src, [event(IOS), event(IOS), event(WEB)])
    debug = client.get(f"/api/v1/sources/{src.id}/debug", headers=bearer(src)).json()
    seen = {d["name"]: d["values"] for d in debug["dimensions"]}
    assert seen["os"] == [{"value": "iOS", "events": 2}]
    assert seen["library"] == [
        {"value": "analytics-ios", "events": 2},
        {"value": "analytics.js", "events": 1},
    ]
    assert seen["country"] == [{"value": "US", "events": 2}, {"value": "FR", "events": 1}]


def test_a_breakdown_frame_is_hourly_and_zero_filled_like_the_metric_s_series(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    earlier = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    response = client.post(
        "/v1/import",
        json={"batch": [event(IOS, timestamp=earlier), event(ANDROID)]},
        auth=(src.key, ""),
    )
    assert response.status_code == 200
    lantern = Lantern(engine)
    with engine.connect() as connection:
        metric = connection.scalar(
            select(Metric.id).where(Metric.source_id == src.id, Metric.kind == "track")
        )
    assert metric is not None
    frame = lantern.breakdown(metric, "os")
    series = lantern.series(metric)
    assert list(frame.columns) == ["Android", "iOS"]  # as many events each: by name
    assert frame.index.equals(series.index)
    assert (frame.sum(axis=1) == series).all()
    assert frame.loc[series.index[0], "iOS"] == 1 and frame.loc[series.index[1], "iOS"] == 0


def test_the_daily_clean_up_drops_breakdown_hours_past_the_retention(
    fresh_client: TestClient, fresh_engine: Engine, tmp_path: Path
) -> None:
    src = make_source(fresh_engine)
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    response = fresh_client.post(
        "/v1/import",
        json={"batch": [event(IOS, timestamp=old), event(ANDROID)]},
        auth=(src.key, ""),
    )
    assert response.status_code == 200 and response.json()["accepted"] == 2
    settings = Settings(data_dir=tmp_path, retention_days=30, scheduler_enabled=False)
    clean_up(fresh_engine, settings, now=datetime.now(UTC))
    assert split(fresh_engine, src, "os").to_dict() == {"Android": 1}


def test_a_dimension_taken_off_the_list_is_deleted_with_its_counts_and_an_empty_list_stops_all(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    send(client, src, [event(IOS)])
    url = f"/api/v1/sources/{src.id}/breakdowns"
    kept = client.put(url, json={"dimensions": ["os"]}, headers=bearer(src))
    assert [d["name"] for d in kept.json()["dimensions"]] == ["os"]
    send(client, src, [event(ANDROID)])
    assert split(engine, src, "os").to_dict() == {"iOS": 1, "Android": 1}
    client.put(url, json={"dimensions": []}, headers=bearer(src))
    send(client, src, [event(ANDROID)])
    with engine.connect() as connection:
        stored = connection.scalars(
            select(BreakdownValue.value)
            .join(BreakdownDimension, BreakdownDimension.id == BreakdownValue.dimension_id)
            .where(BreakdownDimension.source_id == src.id)
        ).all()
    assert stored == []
    debug = client.get(f"/api/v1/sources/{src.id}/debug", headers=bearer(src)).json()
    assert debug["dimensions"] == []


def test_a_wrong_list_of_breakdowns_is_refused_with_a_reason_and_changes_nothing(
    client: TestClient, engine: Engine
) -> None:
    src, other = make_source(engine), make_source(engine)
    url = f"/api/v1/sources/{src.id}/breakdowns"
    before = client.get(url, headers=bearer(src)).json()
    hostile: list[Any] = [
        None,
        [],
        "os",
        {"dimensions": None},
        {"dimensions": "os"},
        {"dimensions": [1, 2]},
        {"dimensions": [["os"]]},
        {"dimensions": [{"name": "os"}]},
        {"dimensions": ["os"], "extra": True},
        {"dimensions": ["x" * 201]},
        {"dimensions": ["properties." + "k" * 150]},
        {"dimensions": ["os"] * 51},
        {"dimensions": [f"properties.plan{i}" for i in range(11)]},
        {"dimensions": ["properties."]},
        {"dimensions": ["properties.a.b"]},
        {"dimensions": ["properties.plan\x00"]},
        {"dimensions": ["properties.plan\n; DROP TABLE sources"]},
        {"dimensions": ["properties.🙂"]},
        {"dimensions": ["browser"]},
        {"dimensions": ["context.ip"]},
        {"dimensions": ["userId"]},
        {"dimensions": ["anonymousId"]},
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
    for target in ("0", "-1", "99999999999999999999", "abc", str(other.id)):
        response = client.put(
            f"/api/v1/sources/{target}/breakdowns",
            json={"dimensions": ["os"]},
            headers=bearer(src),
        )
        assert response.status_code in (404, 422), (target, response.status_code)
    response = client.put(url, json={"dimensions": ["os"]})
    assert response.status_code == 401
    assert client.get(url, headers=bearer(src)).json() == before
    assert (
        client.get(f"/api/v1/sources/{other.id}/breakdowns", headers=bearer(other)).json()[
            "dimensions"
        ]
        == before["dimensions"]
    )
