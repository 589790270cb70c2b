"""One event in, one verdict out: the rules of lantern.ingest.events and protocol."""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime, timedelta

import pytest

from lantern.errors import BadRequest
from lantern.ingest.events import Limits, integrations_allow, judge, message_digest
from lantern.ingest.protocol import decompress, key_from_header, parse_body

NOW = datetime(2026, 3, 4, 12, 30, tzinfo=UTC)
LIVE = Limits(late=timedelta(days=7), future=timedelta(minutes=10))


def test_the_corrected_time_removes_the_device_clock_skew() -> None:
    event = {"type": "track", "event": "E", "userId": "u", "timestamp": "2026-03-04T15:00:00+00:00"}
    verdict = judge(event, received_at=NOW, batch_sent_at="2026-03-04T15:25:00Z", limits=LIVE)
    # sent 25 minutes after it happened, by the device's clock: it happened at 12:05 here.
    assert verdict.accepted
    assert verdict.summary["timestamp"] == "2026-03-04T12:05:00Z"
    assert verdict.hour == int(datetime(2026, 3, 4, 12, tzinfo=UTC).timestamp() // 3600)


def test_an_offset_time_is_the_same_instant_and_shown_in_utc() -> None:
    stamp = "2026-03-04T13:05:00+01:00"
    event = {"type": "page", "name": "Home", "userId": "u", "timestamp": stamp}
    verdict = judge(event, received_at=NOW, batch_sent_at=None, limits=LIVE)
    assert verdict.accepted
    assert verdict.summary == {"type": "page", "timestamp": "2026-03-04T12:05:00Z", "name": "Home"}


def test_an_event_own_sent_at_wins_over_the_batch_one_and_a_bad_one_is_a_reason() -> None:
    event = {"type": "track", "event": "E", "userId": "u", "timestamp": "2026-03-04T15:00:00Z"}
    own = judge(
        {**event, "sentAt": "2026-03-04T15:10:00Z"},
        received_at=NOW,
        batch_sent_at="2026-03-04T18:00:00Z",
        limits=LIVE,
    )
    unreadable = judge(event, received_at=NOW, batch_sent_at="soon", limits=LIVE)
    assert own.summary["timestamp"] == "2026-03-04T12:20:00Z"
    assert not unreadable.accepted
    assert unreadable.reason == "sentAt is not an ISO-8601 time (e.g. 2024-01-02T03:04:05.678Z)"


def test_an_event_without_timestamp_is_counted_at_reception() -> None:
    verdict = judge(
        {"type": "identify", "userId": "u"}, received_at=NOW, batch_sent_at=None, limits=LIVE
    )
    assert verdict.accepted
    assert verdict.increments == [(("total", "identify"), None)]


@pytest.mark.parametrize(
    ("integrations", "allowed"),
    [
        (None, True),
        ({}, True),
        ({"All": False}, False),
        ({"All": False, "Lantern": True}, True),
        ({"Lantern": {"x": 1}, "All": False}, True),
        ({"Lazy Lantern": False}, False),
        ({"All": True, "Lantern": False}, False),
        ({"lantern": False}, True),
    ],
)
def test_integrations_follow_segment_rules_with_case_sensitive_names(
    integrations: object, allowed: bool
) -> None:
    assert integrations_allow(integrations) is allowed


def test_nothing_personal_is_in_the_summary_or_the_increments() -> None:
    event = {
        "type": "track",
        "event": "Paid",
        "userId": "secret-user",
        "anonymousId": "anon",
        "properties": {"email": "e@x.org", "revenue": 9.5},
        "context": {"ip": "1.2.3.4", "traits": {"name": "N"}},
        "messageId": "m-1",
    }
    verdict = judge(event, received_at=NOW, batch_sent_at=None, limits=LIVE)
    text = repr(verdict)
    for secret in ("secret-user", "anon", "e@x.org", "1.2.3.4", "'N'", "m-1"):
        assert secret not in text
    assert verdict.summary["value"] == 9.5
    assert verdict.digest == message_digest("m-1")


def test_a_key_is_read_from_basic_raw_or_colonless_headers() -> None:
    encoded = base64.b64encode(b"abc123:").decode()
    no_colon = base64.b64encode(b"abc123").decode()
    assert key_from_header(f"Basic {encoded}") == "abc123"
    assert key_from_header(f"Basic {no_colon}") == "abc123"
    assert key_from_header("abc123") == "abc123"
    assert key_from_header("Basic abc_123!") == "abc_123!"
    assert key_from_header("Bearer tok") is None
    assert key_from_header(None) is None


def test_gzip_is_bounded_by_the_decompressed_size() -> None:
    small = gzip.compress(b'{"batch": []}')
    assert decompress(small, "gzip", limit=100) == b'{"batch": []}'
    with pytest.raises(BadRequest, match="decompressed"):
        decompress(gzip.compress(b"x" * 1000), "gzip", limit=100)
    with pytest.raises(BadRequest, match="not supported"):
        decompress(small, "br", limit=100)


def test_bodies_may_be_a_batch_one_event_or_an_array() -> None:
    assert len(parse_body(b'{"batch": [{}, {}], "writeKey": "k"}', batch=True).events) == 2
    assert parse_body(b'{"type": "track"}', batch=False).events == [{"type": "track"}]
    assert len(parse_body(b"[{}, {}, {}]", batch=False).events) == 3
    with pytest.raises(BadRequest, match='"batch" array'):
        parse_body(b'{"type": "track"}', batch=True)


@pytest.mark.parametrize("kind", [[], ["track"], {"track": 1}, 3, True, None])
def test_a_type_of_any_json_shape_is_rejected_with_a_reason(kind: object) -> None:
    verdict = judge({"type": kind, "userId": "u"}, received_at=NOW, batch_sent_at=None, limits=LIVE)
    assert not verdict.accepted
    assert verdict.reason is not None
    assert "use track, page, screen, identify, group or alias" in verdict.reason
