"""The metrics list a page at a time: order, cursors, search, status filter, bad parameters."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from lantern.metrics.keys import MetricKind, display_name
from lantern.metrics.service import epoch_hour
from tests.factories import MadeSource, last_closed_hour, make_metric, make_source


def bearer(src: MadeSource) -> dict[str, str]:
    return {"Authorization": f"Bearer {src.token}"}


def listed(client: TestClient, src: MadeSource, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/metrics", params=params, headers=bearer(src))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def every_page(client: TestClient, src: MadeSource, **params: Any) -> list[dict[str, Any]]:
    """Every page of the list, following next_cursor; each page's total is checked."""
    pages = [listed(client, src, **params)]
    while pages[-1]["next_cursor"] is not None:
        pages.append(listed(client, src, **params, cursor=pages[-1]["next_cursor"]))
    assert {page["total"] for page in pages} == {sum(len(p["items"]) for p in pages)}
    return pages


def labels(page: dict[str, Any]) -> list[str]:
    return [item["label"] for item in page["items"]]


def test_the_list_comes_a_page_at_a_time_in_its_order_with_the_count_of_every_match(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    names = ["Signed Up", "Added to Cart", "Zoomed", "Checkout", "Logged In", "Searched", "Paid"]
    for name in names:
        make_metric(engine, src, name=name, days=2)
    whole = listed(client, src, limit=200)
    assert labels(whole) == sorted(names)
    assert (whole["total"], whole["next_cursor"]) == (7, None)

    pages = every_page(client, src, limit=3)
    assert [len(page["items"]) for page in pages] == [3, 3, 1]
    assert [label for page in pages for label in labels(page)] == sorted(names)
    # a page's items are the list's, with the same figures (the training countdown ticks on)
    for paged, listed_once in zip(pages[0]["items"], whole["items"], strict=False):
        del paged["training_left_seconds"], listed_once["training_left_seconds"]
        assert paged == listed_once
    assert len(listed(client, src)["items"]) == 7  # 50 a page unless asked


def test_paging_goes_on_across_sources_in_order_of_source_then_label(
    client: TestClient, engine: Engine
) -> None:
    web = make_source(engine, name="web")
    api = client.post("/api/v1/sources", json={"name": "app"}, headers=bearer(web)).json()
    app = MadeSource(api["id"], "app", api["api_key"], web.workspace_id, web.workspace, web.token)
    for src, name in [(web, "B"), (web, "A"), (app, "C"), (app, "B"), (web, "A2")]:
        make_metric(engine, src, name=name, days=2)
    pages = every_page(client, web, limit=2)
    seen = [(item["source_name"], item["label"]) for page in pages for item in page["items"]]
    assert seen == [("app", "B"), ("app", "C"), ("web", "A"), ("web", "A2"), ("web", "B")]
    only_web = every_page(client, web, limit=2, source_id=web.id)
    assert [label for page in only_web for label in labels(page)] == ["A", "A2", "B"]


def test_search_finds_text_in_the_label_or_the_source_name_in_any_case(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine, name="shop")
    for kind, name in [
        ("track", "Signed Up"),
        ("page", "Pricing"),
        ("screen", "Home"),
        ("total", "identify"),
        ("total", "page"),
        ("value", "Checkout"),
        ("mean", "Page Load"),
        ("flag", "new-nav"),
        ("experiment", "cta-click"),
        ("overflow", "(over the metric cap)"),
        ("track", "École Visit"),
        ("track", "50%_off"),
        ("track", "50 off"),
        # one value of a breakdown, watched as a metric (alerts per value), named in full
        ("breakdown", "Signed Up \u2014 OS iOS"),
    ]:
        make_metric(engine, src, kind=kind, name=name, days=2)
    everything = listed(client, src, limit=200)["items"]
    assert len(everything) == 14
    # every kind's label, as the list shows it, finds its metric, in any case
    for item in everything:
        assert item["label"] == display_name(item["kind"], item["name"])
        for text in (item["label"], item["label"].upper(), item["label"].lower()):
            assert item["label"] in labels(listed(client, src, q=text, limit=200)), text
    assert {item["kind"] for item in everything} == {kind.value for kind in MetricKind}

    def found(text: str) -> set[str]:
        return {label for page in every_page(client, src, q=text) for label in labels(page)}

    assert found("(page)") == {"Pricing (page)"}
    assert found("page") == {"Pricing (page)", "All page calls", "Page Load (average value)"}
    assert found("identify VOL") == {"Identify volume"}
    assert found("  average value ") == {"Page Load (average value)"}
    assert found("over the cap") == {"Metrics over the cap"}
    assert found("école") == found("ÉCOLE") == {"École Visit"}
    # % and _ are letters to search for, not wildcards
    assert found("50%") == found("%_") == {"50%_off"}
    assert found("_") == {"50%_off"}
    assert found("50") == {"50%_off", "50 off"}
    assert found("os ios") == {"Signed Up \u2014 OS iOS"}
    # the source's name matches all of its metrics
    assert listed(client, src, q="SHO")["total"] == 14
    assert listed(client, src, q="no such metric") == {"items": [], "next_cursor": None, "total": 0}


def test_the_status_filter_matches_the_status_each_metric_shows_and_pages(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    # first seen on either side of the end of the training week, and long trained ones
    last = last_closed_hour()
    week = epoch_hour(last) - 7 * 24
    for offset in range(-3, 4):
        counts = pd.Series(
            5.0,
            index=pd.date_range(end=last, periods=epoch_hour(last) - week - offset + 1, freq="h"),
        )
        make_metric(engine, src, name=f"Edge {offset:+d}", counts=counts)
    ids = {name: make_metric(engine, src, name=name, days=10) for name in ("Mute", "Snooze", "On")}
    client.put(f"/api/v1/metrics/{ids['Mute']}/watch", json={"muted": True}, headers=bearer(src))
    until = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=3)).isoformat()
    client.put(
        f"/api/v1/metrics/{ids['Snooze']}/watch",
        json={"muted": False, "snoozed_until": until},
        headers=bearer(src),
    )
    everything = listed(client, src, limit=200)["items"]
    shown = {item["label"]: item["status"] for item in everything}
    assert {shown["Mute"], shown["Snooze"], shown["On"]} == {"muted", "snoozed", "active"}
    assert {shown["Edge -3"], shown["Edge +3"]} == {"active", "training"}
    for status in ("training", "active", "muted", "snoozed"):
        pages = every_page(client, src, status=status, limit=2)
        got = [item for page in pages for item in page["items"]]
        assert {item["status"] for item in got} <= {status}
        assert {item["label"] for item in got} == {k for k, v in shown.items() if v == status}
    assert [len(p["items"]) for p in every_page(client, src, status="muted", q="mut")] == [1]
    assert listed(client, src, status="muted", q="on")["total"] == 0


def test_a_cursor_whose_metric_is_gone_asks_to_start_again(
    client: TestClient, engine: Engine
) -> None:
    src = make_source(engine)
    made = client.post("/api/v1/sources", json={"name": "gone"}, headers=bearer(src)).json()
    gone = MadeSource(made["id"], "gone", made["api_key"], src.workspace_id, src.workspace, "")
    for name in ("A", "B", "C"):
        make_metric(engine, gone, name=name, days=2)
    make_metric(engine, src, name="Kept", days=2)
    first = listed(client, src, limit=2)
    assert labels(first) == ["A", "B"]
    deleted = client.delete(f"/api/v1/sources/{made['id']}", headers=bearer(src))
    assert deleted.is_success, deleted.text
    stale = client.get(
        "/api/v1/metrics", params={"cursor": first["next_cursor"]}, headers=bearer(src)
    )
    assert stale.status_code == 422
    assert stale.json()["error"] == "invalid_request"
    assert "start again from the first page" in stale.json()["detail"]


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": "bWV0cmljOng"}, "cursor"),  # "metric:x"
        ({"cursor": "aW5zaWdodDox"}, "cursor"),  # "insight:1"
        ({"cursor": "c" * 201}, "cursor"),
        ({"cursor": "a\x00b"}, "cursor"),
        ({"q": "x" * 201}, "q"),
        ({"status": "sleeping"}, "status"),
        ({"source_id": 0}, "source_id"),
    ],
)
def test_bad_paging_search_and_filter_parameters_are_refused_with_a_reason(
    client: TestClient, engine: Engine, params: dict[str, Any], names: str
) -> None:
    src = make_source(engine)
    make_metric(engine, src, days=2)
    response = client.get("/api/v1/metrics", params=params, headers=bearer(src))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert names in body["detail"]


def test_a_cursor_from_another_workspace_is_refused(client: TestClient, engine: Engine) -> None:
    mine, theirs = make_source(engine), make_source(engine)
    for name in ("A", "B"):
        make_metric(engine, theirs, name=name, days=2)
    their_cursor = listed(client, theirs, limit=1)["next_cursor"]
    assert their_cursor is not None
    response = client.get("/api/v1/metrics", params={"cursor": their_cursor}, headers=bearer(mine))
    assert response.status_code == 422
    assert "start again" in response.json()["detail"]
