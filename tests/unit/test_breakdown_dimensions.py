"""Which dimensions an event has: read from Segment's context, never from anything personal."""

from __future__ import annotations

from typing import Any

import pytest

from lantern.breakdowns.dimensions import (
    DEFAULT_DIMENSIONS,
    MAX_VALUE,
    Refusal,
    Spec,
    check_dimension_name,
    event_dimensions,
    property_value,
)

DEFAULTS = Spec(tuple(enumerate(DEFAULT_DIMENSIONS, start=1)))
NAMES = dict(DEFAULTS.dimensions)


def dims(event: dict[str, Any], spec: Spec = DEFAULTS) -> dict[str, str]:
    found, refusal = event_dimensions(event, spec)
    assert refusal is None
    names = dict(spec.dimensions)
    return {names[i]: value for i, value in found}


def test_the_defaults_come_from_os_app_library_locale_and_page_path() -> None:
    event = {
        "type": "page",
        "properties": {"path": "/pricing?plan=pro#top"},
        "context": {
            "os": {"name": "iOS", "version": "17.1"},
            "app": {"version": "5.2.1 (520)"},
            "library": {"name": "analytics-ios"},
            "locale": "en-US",
        },
    }
    assert dims(event) == {
        "os": "iOS",
        "app_version": "5.2.1 (520)",
        "library": "analytics-ios",
        "country": "US",
        "page_path": "/pricing",
    }


@pytest.mark.parametrize(
    ("locale", "country"),
    [("de_DE", "DE"), ("zh-Hant-TW", "TW"), ("es-419", "419"), ("en", None), ("", None)],
)
def test_the_country_is_the_locale_s_region_and_nothing_else(
    locale: str, country: str | None
) -> None:
    event = {"context": {"locale": locale, "ip": "203.0.113.9", "location": {"country": "FR"}}}
    assert dims(event).get("country") == country


def test_ids_traits_ip_and_user_agent_never_become_a_value() -> None:
    event = {
        "userId": "user-77",
        "anonymousId": "anon-77",
        "traits": {"email": "a@example.com"},
        "context": {
            "ip": "203.0.113.9",
            "userAgent": "Mozilla/5.0",
            "traits": {"name": "Jane"},
            "device": {"id": "device-77"},
        },
    }
    assert dims(event) == {}


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("/orders/88123/receipt", "/orders/:id/receipt"),
        ("/u/jane%40example.com/", "/u/:id/"),
        ("/reset/9f2c7a1be44d4c0e8a3f5b6c7d8e9f00", "/reset/:id"),
        ("/v2/docs", "/v2/docs"),
        ("pricing", None),  # not a path
    ],
)
def test_a_page_path_keeps_its_words_and_hides_its_ids(path: str, kept: str | None) -> None:
    assert dims({"context": {"page": {"path": path}}}).get("page_path") == kept


def test_a_long_path_is_cut_at_a_segment_within_the_length_of_a_value() -> None:
    path = "/" + "/".join(["section"] * 30)
    value = dims({"context": {"page": {"path": path}}})["page_path"]
    assert len(value) <= MAX_VALUE and value.endswith("section")


@pytest.mark.parametrize("bad", ["iOS\x00", "<script>", "a" * 200 + "@example.com", 42, None])
def test_a_context_field_that_is_no_label_gives_no_value(bad: Any) -> None:
    assert "os" not in dims({"context": {"os": {"name": bad}}})


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("jane.doe@example.com", "email addresses"),
        ("+1 (555) 010-0199", "phone numbers"),
        ("5f0c2b8e-3c1d-4e8a-9b7f-2d6e1a0c9b44", "long random ids"),
        ("AbCdEfGh12345678xyz", "long random ids"),
        ("I could not find the checkout button anywhere", "free text"),
        (1234567890, "7 digits"),
        (3.75, "measurements"),
    ],
)
def test_a_personal_looking_property_value_refuses_its_dimension(raw: Any, reason: str) -> None:
    refused = property_value(raw)
    assert isinstance(refused, Refusal) and reason in refused.reason
    assert str(raw) not in refused.reason


@pytest.mark.parametrize(
    ("raw", "kept"),
    [("pro", "pro"), (" team ", "team"), (True, "true"), (3, "3"), (2.0, "2"), ({}, None)],
)
def test_a_category_property_value_is_kept_trimmed(raw: Any, kept: str | None) -> None:
    assert property_value(raw) == kept


def test_a_refused_property_is_named_by_its_dimension_and_the_others_still_count() -> None:
    spec = Spec(((1, "os"), (7, "properties.plan")))
    event = {"properties": {"plan": "jane@example.com"}, "context": {"os": {"name": "Android"}}}
    found, refusal = event_dimensions(event, spec)
    assert found == ((1, "Android"),)
    assert refusal is not None and refusal.dimension_id == 7


@pytest.mark.parametrize(
    "name",
    [
        "properties.email",
        "properties.userEmail",
        "properties.user_id",
        "properties.anonymousId",
        "properties.firstName",
        "properties.name",
        "properties.phone_number",
        "properties.ip",
        "properties.shipping address",
        "properties.search_query",
        "properties.value",
        "properties.a.b",
        "traits.plan",
        "context.ip",
    ],
)
def test_a_personal_or_unknown_dimension_name_is_refused_with_a_reason(name: str) -> None:
    assert check_dimension_name(name)


@pytest.mark.parametrize(
    "name", [*DEFAULT_DIMENSIONS, "properties.plan", "properties.plan_name", "properties.tier"]
)
def test_defaults_and_category_properties_are_allowed(name: str) -> None:
    assert check_dimension_name(name) is None
