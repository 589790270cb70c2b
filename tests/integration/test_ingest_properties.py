"""Whatever a client sends to ingest, it never gets a 5xx, and what is accepted is counted.

Hypothesis writes arbitrary JSON within the size limits to every ingest route: extreme
numbers, times at the ends of the calendar and with offsets, NUL and control characters,
every field of the wrong type, huge strings, repeated message ids, gzip bodies. Each
request is either refused as a whole with a reason (4xx), or answered 200 with every
event accepted, repeated or rejected with a reason; the buckets then hold exactly the
accepted events, and every value sum is finite. The run is derandomized and keeps no
example database, so it is the same on every machine (Hypothesis's own cache, .hypothesis/,
is git-ignored).
"""

from __future__ import annotations

import base64
import gzip
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from lantern.ingest.models import DebugMinute
from lantern.metrics.models import Bucket, Metric
from tests.factories import make_source

TYPES = ("track", "page", "screen", "identify", "group", "alias")
IGNORED = ("group", "alias")  # accepted, counted in no bucket
ROUTES = ("batch", "import", "webhook", *TYPES)


# Text that databases and JSON find awkward: NUL, controls, quotes, non-Latin, emoji.
AWKWARD = st.characters(exclude_categories=["Cs"])
text = st.one_of(
    st.text(AWKWARD, max_size=30),
    st.sampled_from(["\u0000", "a\u0000b", "\n\t\r\u007f\u0085", "'; DROP TABLE buckets; --"]),
)
huge = st.sampled_from([201, 5_000, 17_000]).map(lambda n: "\u00e9" * n)  # 17,000: over 32 KB
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),  # NaN and Infinity are not JSON: a 400
    st.sampled_from([1e308, -1e308, 2.0**53, 2.0**53 + 2, -(2.0**53), 5e-324, -0.0, 0]),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, text, huge),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
recent = st.integers(-6 * 24 * 60, 5).map(
    lambda m: (datetime.now(UTC) + timedelta(minutes=m)).isoformat()
)
odd_times = st.one_of(
    st.datetimes(timezones=st.none() | offsets).map(lambda t: t.isoformat()),
    st.sampled_from(
        [
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "2024-02-30T00:00:00Z",
        ]
    ),
    json_values,
)
good_properties = st.fixed_dictionaries(
    {},
    optional={
        "value": st.floats(-1e6, 1e6) | st.integers(-(10**6), 10**6),
        "revenue": st.floats(0, 1e4),
        "metricValue": st.floats(0, 100),
        "key": st.sampled_from(["new-checkout", "dark-mode"]),
        "environment": st.just("production"),
        "flagVersion": st.integers(0, 9),
        "name": st.sampled_from(["Home", "Feed"]),
    },
)
odd_properties = st.dictionaries(
    st.sampled_from(["value", "revenue", "metricValue", "key", "flagVersion", "name"]),
    numbers | json_values | st.integers(-(2**40), 2**40),
    max_size=4,
)
good_events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(TYPES),
        "userId": st.just("u1"),
        "timestamp": recent,
        # a few ids repeat, so some events are repeats of others
        "messageId": st.uuids().map(str) | st.sampled_from(["m1", "m2", 7]),
        "event": st.sampled_from(["Signed Up", "Paid", "feature", "custom"]),
        "previousId": st.just("p1"),
    },
    optional={
        "name": st.sampled_from(["Home", "Pricing"]),
        "properties": good_properties,
        "integrations": st.sampled_from([{"Salesforce": False}, {"All": False, "Lantern": True}]),
    },
)
# What each field may be instead; a missing field is drawn as `MISSING`.
MISSING = object()
hostile_fields: dict[str, st.SearchStrategy[Any]] = {
    "type": json_values,
    "userId": json_values,
    "anonymousId": json_values,
    "previousId": json_values,
    "event": text | huge | json_values,
    "name": text | huge | json_values,
    "messageId": text | huge | json_values,
    "timestamp": odd_times,
    "originalTimestamp": odd_times,
    "sentAt": recent | odd_times,
    "properties": odd_properties | json_values,
    "integrations": st.just({"All": False}) | json_values,
    "context": json_values,
}


@st.composite
def events(draw: st.DrawFn) -> Any:
    """Usually a well-formed event with a few fields wrong, missing or extreme; else anything."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    event = draw(good_events)
    for name in draw(st.lists(st.sampled_from(sorted(hostile_fields)), max_size=3)):
        value = draw(st.just(MISSING) | hostile_fields[name])
        if value is MISSING:
            event.pop(name, None)
        else:
            event[name] = value
    return event


batches = st.fixed_dictionaries(
    {"batch": st.lists(events(), min_size=1, max_size=12)},
    optional={"sentAt": recent | odd_times, "context": json_values, "integrations": json_values},
)
bodies = {
    "batch": st.one_of(batches, st.lists(events(), max_size=12), json_values),
    "webhook": st.one_of(events(), st.lists(events(), max_size=12), batches),
    "single": st.one_of(events(), batches, st.lists(events(), max_size=3)),
}
requests = st.sampled_from(ROUTES).flatmap(
    lambda route: st.tuples(
        st.just(route),
        bodies["batch" if route == "import" else route if route in bodies else "single"],
        st.sampled_from(["plain", "plain", "plain", "gzip", "two gzip members"]),
    )
)


def sent_events(route: str, body: Any) -> list[Any]:
    """The events of a body as the server reads them (its JSON parser, its path rules)."""
    if isinstance(body, list):
        found = body
    elif route in ("batch", "import") or "batch" in body:
        found = body["batch"]
    else:
        found = [body]
    if route in TYPES and found and isinstance(found[0], dict):
        found[0]["type"] = route
    return found


def repeats(found: list[Any], rejected: set[int]) -> set[int]:
    """Indices of events whose message id an earlier accepted one of the request carried."""
    seen: set[str] = set()
    repeated: set[int] = set()
    for index, event in enumerate(found):
        if index in rejected:
            continue
        message_id = event.get("messageId")
        if message_id is None or isinstance(message_id, dict | list) or str(message_id) == "":
            continue
        if str(message_id) in seen:
            repeated.add(index)
        seen.add(str(message_id))
    return repeated


def counted(engine: Engine, source_id: int) -> tuple[int, int]:
    """(events in the source's per-type total buckets, accepted events per the debug minutes)."""
    with engine.connect() as connection:
        sums = connection.scalars(
            select(Bucket.value_sum)
            .join(Metric, Metric.id == Bucket.metric_id)
            .where(Metric.source_id == source_id)
        ).all()
        assert all(math.isfinite(value) for value in sums), sums
        totals = connection.scalar(
            select(func.coalesce(func.sum(Bucket.count), 0))
            .join(Metric, Metric.id == Bucket.metric_id)
            .where(Metric.source_id == source_id, Metric.kind == "total")
        )
        minutes = connection.scalar(
            select(func.coalesce(func.sum(DebugMinute.accepted), 0)).where(
                DebugMinute.source_id == source_id
            )
        )
    return int(totals or 0), int(minutes or 0)


@settings(
    max_examples=250,
    derandomize=True,  # the same examples on every run: CI is reproducible
    database=None,  # no example database: a failure is reproduced by the same seed anyway
    deadline=None,  # database latency varies; time is not what this test is about
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one app and engine serve every example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@pytest.mark.slow
@given(request=requests)
def test_any_json_is_answered_without_a_5xx_and_what_is_accepted_is_counted(
    client: TestClient, engine: Engine, request: tuple[str, Any, str]
) -> None:
    route, body, encoding = request
    src = make_source(engine)
    raw = json.dumps(body).encode()  # Python's json writes NaN and 2**70; both must be handled
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{src.key}:".encode()).decode(),
        "Content-Type": "application/json",
    }
    if encoding != "plain":
        headers["Content-Encoding"] = "gzip"
        raw = gzip.compress(raw) + (gzip.compress(b"[]") if encoding == "two gzip members" else b"")

    response = client.post(f"/v1/{route}", content=raw, headers=headers)

    assert response.status_code < 500, response.text
    assert response.status_code in (200, 400, 401), response.text
    answer = response.json()
    refused = response.status_code != 200
    # A refused request says why and counts nothing; a body of two gzip streams is refused.
    assert bool(answer.get("error") and answer.get("detail")) is refused
    assert refused or encoding != "two gzip members"
    found = [] if refused else sent_events(route, orjson.loads(json.dumps(body)))
    outcome: dict[str, Any] = (
        {"accepted": 0, "duplicates": 0, "rejected": []} if refused else answer
    )
    rejected = {item["index"]: item["reason"] for item in outcome["rejected"]}
    assert len(rejected) == len(outcome["rejected"])
    assert all(0 <= index < len(found) for index in rejected)
    assert all(isinstance(reason, str) and reason for reason in rejected.values())
    assert outcome["accepted"] + outcome["duplicates"] + len(rejected) == len(found)
    repeated = repeats(found, set(rejected))
    assert outcome["duplicates"] == len(repeated)
    accepted = [
        event
        for index, event in enumerate(found)
        if index not in rejected and index not in repeated
    ]
    ignored = sum(1 for event in accepted if event["type"] in IGNORED)
    assert counted(engine, src.id) == (len(accepted) - ignored, len(accepted))
