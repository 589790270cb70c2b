"""One Segment event in, one verdict out: checked, routed, clock-corrected, stripped.

Pure functions with no I/O. Whatever leaves this module has already lost everything
personal: user and anonymous ids, traits, ip, user agent, device ids and every property
but a numeric ``value``/``revenue``. The only thing kept of the ``messageId`` is a digest
(a 64-bit integer).
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lantern.breakdowns.dimensions import Refusal, Spec, event_dimensions
from lantern.metrics.keys import MetricKey, MetricKind

KNOWN_TYPES = frozenset({"track", "page", "screen", "identify", "group", "alias"})
IGNORED_TYPES = frozenset({"group", "alias"})
OUR_NAMES = ("Lantern", "Lazy Lantern")
LAUNCHDARKLY_KINDS = {
    "feature": "feature",
    "click": "click",
    "custom": "custom",
    "page": "page view",
    "page view": "page view",
    "pageview": "page view",
}
MAX_NAME = 200
MAX_MESSAGE_ID = 100
# The largest |value| (or |revenue|, |metricValue|) counted: 2**53, past which a float
# no longer holds every whole number, so a larger one is no measurement. It also keeps
# every stored sum finite: a bucket counts at most 2**63 events, so its sum stays within
# 2**116 (a sum of squares within 2**169), far below the ~2**1024 where floats overflow.
MAX_VALUE = float(2**53)
# The range of `flagVersion`: versions are stored in a 32-bit integer column.
MAX_FLAG_VERSION = 2**31 - 1
VALUE_REASON = (
    "properties.{field} is out of range: send a finite number between -2^53 and 2^53 "
    "(about ±9.007e15)"
)
FLAG_VERSION_REASON = f"properties.flagVersion must be a whole number from 0 to {MAX_FLAG_VERSION}"
NUL_REASON = "{field} contains a NUL character (\\u0000), which cannot be stored: remove it"


@dataclass(frozen=True, slots=True)
class Limits:
    """The time window an event must fall in, relative to when it was received."""

    late: timedelta
    future: timedelta


@dataclass(slots=True)
class Verdict:
    """What became of one event. `increments` is empty for a rejected or ignored event."""

    accepted: bool
    kind: str | None
    reason: str | None = None
    digest: int | None = None
    hour: int = 0
    increments: list[tuple[MetricKey, float | None]] = field(default_factory=list)
    flag: tuple[str, int, datetime] | None = None
    stamp: datetime | None = None
    details: dict[str, Any] | None = None  # name, value, LaunchDarkly fields
    # (dimension id, value) pairs of the source's breakdowns, and a property refused
    # because this event's value of it looked personal (the value is not kept).
    dims: tuple[tuple[int, str], ...] = ()
    refusal: Refusal | None = None

    @property
    def summary(self) -> dict[str, Any]:
        """The event as the debug view shows it: type, corrected time, name and value only.

        Built on demand: a request shows only a few of its events.
        """
        summary: dict[str, Any] = {"type": self.kind}
        if self.stamp is not None:
            summary["timestamp"] = self.stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if self.details:
            summary.update(self.details)
        return summary


@dataclass(frozen=True, slots=True)
class Window:
    """What every event of one request is judged against, worked out once per request."""

    received_at: datetime
    oldest: datetime
    newest: datetime
    late_reason: str
    future_reason: str
    sent_at: Any  # the batch's raw `sentAt`
    sent: datetime | None  # ... read as a time (None if absent or unreadable)

    @classmethod
    def of(cls, *, received_at: datetime, batch_sent_at: Any, limits: Limits) -> Window:
        """The window for a request received at `received_at`."""
        days = limits.late.total_seconds() / 86400
        minutes = limits.future.total_seconds() / 60
        return cls(
            received_at=received_at,
            oldest=received_at - limits.late,
            newest=received_at + limits.future,
            late_reason=f"event time is more than {days:g} days old: send history to /v1/import",
            future_reason=f"event time is more than {minutes:g} minutes in the future",
            sent_at=batch_sent_at,
            sent=parse_time(batch_sent_at) if batch_sent_at is not None else None,
        )


def integrations_allow(integrations: Any) -> bool:
    """Whether the `integrations` object lets the event reach Lantern (Segment's rules)."""
    if not isinstance(integrations, dict) or not integrations:
        return True
    for name in OUR_NAMES:
        if name in integrations:
            value = integrations[name]
            return bool(value) or isinstance(value, dict)
    value = integrations.get("All", True)
    return bool(value) or isinstance(value, dict)


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 time as aware UTC (naive means UTC); None if it is not one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is UTC:  # "Z" and "+00:00", by far the most common: nothing to do
        return stamp
    if stamp.tzinfo is None:
        return stamp.replace(tzinfo=UTC)
    try:
        return stamp.astimezone(UTC)
    except OverflowError:  # an offset that pushes year 1 or 9999 off the calendar
        return None


def corrected_time(event: dict[str, Any], window: Window) -> datetime | str:
    """The event's time as Segment computes it, `receivedAt - (sentAt - timestamp)`.

    Returns a reason string when a time field is present but unreadable, or when the
    correction lands off the calendar. A reason never quotes the value: it could be
    anything, personal data included, and reasons are kept for the debug view.
    """
    raw = event.get("timestamp") or event.get("originalTimestamp")
    if raw is None:
        return window.received_at
    stamp = parse_time(raw)
    if stamp is None:
        return "timestamp is not an ISO-8601 time (e.g. 2024-01-02T03:04:05.678Z)"
    sent_raw = event.get("sentAt")
    if sent_raw:
        sent = parse_time(sent_raw)
    else:
        sent_raw, sent = window.sent_at, window.sent
        if sent_raw is None:
            return stamp
    if sent is None:
        return "sentAt is not an ISO-8601 time (e.g. 2024-01-02T03:04:05.678Z)"
    try:
        return window.received_at - (sent - stamp)
    except OverflowError:
        return (
            "timestamp and sentAt are thousands of years apart: the clock correction "
            "(receivedAt - (sentAt - timestamp)) is off the calendar; check both"
        )


# Type tuples for isinstance, built once: `int | float` written in a call builds a new
# union object each time it runs, and these checks run several times an event.
_NUMBER_TYPES = (int, float)
_CONTAINER_TYPES = (dict, list)


class OutOfRange(ValueError):
    """A number that cannot be counted: infinite, NaN, or beyond `MAX_VALUE`."""


def _number(value: Any) -> float | None:
    """A JSON number as a float; None if it is not one; OutOfRange if it cannot be counted."""
    if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int past the float range
        raise OutOfRange from None
    if not math.isfinite(number) or abs(number) > MAX_VALUE:
        raise OutOfRange
    return number


def _name(value: Any) -> str | None:
    """A trimmed, truncated name; None if there is none. NUL is checked by the caller."""
    if isinstance(value, str):
        value = value.strip()
        if value:
            return value[:MAX_NAME]
    return None


def digest_of(text: str) -> int:
    """The digest ingest remembers of a message id: a signed 64-bit integer.

    It is the first 8 bytes of the id's 16-byte BLAKE2b digest (what was stored before
    migration 0018, so the ids remembered then are still recognised). An integer key
    makes the message-id table's rows and comparisons smaller than a 16-byte string; two
    ids of one source share a digest with a chance of about n / 2^64 for each new id
    against n remembered ones (at a billion ids, one event in 18 billion is taken for a
    repeat).
    """
    value: int = _first_8(_blake2b(text.encode(), digest_size=16).digest())[0]
    return value


_blake2b = hashlib.blake2b
# A signed big-endian integer from a digest's first 8 bytes, without slicing them out
# (this runs for every event: it was a third of the digest's cost).
_first_8 = struct.Struct(">q").unpack_from


def message_digest(message_id: Any) -> int | None:
    """The digest of a message id (`digest_of`), or None when there is no usable id."""
    if message_id is None or isinstance(message_id, _CONTAINER_TYPES):
        return None
    text = str(message_id)
    if not text:
        return None
    return digest_of(text)


def _launchdarkly(event_name: str, props: dict[str, Any]) -> tuple[str, str] | None:
    """(LaunchDarkly kind, key) when the track call is one of LaunchDarkly's exported events."""
    kind = LAUNCHDARKLY_KINDS.get(event_name.lower())
    if kind is None:
        return None
    key = props.get("key")
    if not isinstance(key, str) or not key:
        return None
    if "environment" not in props and "project" not in props:
        return None
    return kind, key[:MAX_NAME]


# Metric kinds as plain strings (an enum member's `.value` is a slow property on 3.11),
# and the increments every event of a type makes, built once.
_TRACK, _VALUE, _MEAN, _FLAG, _EXPERIMENT = (
    MetricKind.TRACK.value,
    MetricKind.VALUE.value,
    MetricKind.MEAN.value,
    MetricKind.FLAG.value,
    MetricKind.EXPERIMENT.value,
)
_TOTALS = {kind: ((MetricKind.TOTAL.value, kind), None) for kind in ("track", "page", "screen")}
_IDENTIFY = ((MetricKind.TOTAL.value, "identify"), None)


def _track(event: dict[str, Any], verdict: Verdict, stamp: datetime) -> str | None:
    name = _name(event.get("event"))
    if name is None:
        return "track call without an `event` name"
    if "\x00" in name:
        return NUL_REASON.format(field="the event name")
    props = event.get("properties")
    props = props if isinstance(props, dict) else {}
    details: dict[str, Any] = {"event": name}
    verdict.details = details
    increments = verdict.increments
    increments.append(_TOTALS["track"])
    launchdarkly = _launchdarkly(name, props)
    if launchdarkly is not None:
        ld_kind, key = launchdarkly
        if "\x00" in key:
            return NUL_REASON.format(field="properties.key")
        details["launchdarkly"] = {"kind": ld_kind, "key": key}
        if ld_kind == "feature":
            increments.append(((_FLAG, key), None))
            version = props.get("flagVersion")
            if isinstance(version, int) and not isinstance(version, bool):
                if not 0 <= version <= MAX_FLAG_VERSION:
                    return FLAG_VERSION_REASON
                verdict.flag = (key, version, stamp)
                details["launchdarkly"]["flagVersion"] = version
        else:
            increments.append(((_EXPERIMENT, key), None))
            try:
                metric_value = _number(props.get("metricValue"))
            except OutOfRange:
                return VALUE_REASON.format(field="metricValue")
            if metric_value is not None:
                increments.append(((_VALUE, key), metric_value))
                increments.append(((_MEAN, key), metric_value))
                details["value"] = metric_value
        return None
    increments.append(((_TRACK, name), None))
    field = "value"
    try:
        value = _number(props.get(field))
        if value is None:
            field = "revenue"
            value = _number(props.get(field))
    except OutOfRange:
        return VALUE_REASON.format(field=field)
    if value is not None:
        # one number, two metrics: the hour's sum (revenue) and its average (a load time)
        increments.append(((_VALUE, name), value))
        increments.append(((_MEAN, name), value))
        details["value"] = value
    return None


def _page_or_screen(event: dict[str, Any], verdict: Verdict, kind: str) -> str | None:
    props = event.get("properties")
    name = _name(event.get("name"))
    if name is None and isinstance(props, dict):
        name = _name(props.get("name"))
    if name is not None and "\x00" in name:
        return NUL_REASON.format(field=f"the {kind} name")
    verdict.increments.append(_TOTALS[kind])
    if name is not None:
        verdict.details = {"name": name}
        verdict.increments.append(((kind, name), None))
    return None


def judge(
    event: Any,
    *,
    received_at: datetime,
    batch_sent_at: Any,
    limits: Limits,
) -> Verdict:
    """Check one event and say which metric buckets it increments, keeping nothing personal."""
    window = Window.of(received_at=received_at, batch_sent_at=batch_sent_at, limits=limits)
    return judge_in(event, window)


def judge_in(event: Any, window: Window, spec: Spec | None = None) -> Verdict:
    """`judge` for a request's events, with the request's window worked out once; `spec`
    names the source's breakdown dimensions, read from each counted event."""
    if not isinstance(event, dict):
        return Verdict(False, None, reason="an event must be a JSON object")
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in KNOWN_TYPES:  # a list or object is unhashable
        # The value itself is never quoted: it could be anything, personal data included.
        said = "unknown type" if kind is not None else "no type"
        reason = f"{said}: use track, page, screen, identify, group or alias"
        return Verdict(False, None, reason=reason)
    integrations = event.get("integrations")
    if integrations and not integrations_allow(integrations):
        return Verdict(False, kind, reason="the integrations object disables Lantern")
    message_id = event.get("messageId")
    digest = None
    if message_id is not None:
        text = message_id if isinstance(message_id, str) else str(message_id)
        if len(text) > MAX_MESSAGE_ID:
            return Verdict(False, kind, reason="messageId is longer than 100 characters")
        if text and not isinstance(message_id, _CONTAINER_TYPES):
            digest = digest_of(text)
    if kind == "alias":
        if not event.get("userId") or not event.get("previousId"):
            return Verdict(False, kind, reason="alias call needs userId and previousId")
    elif not event.get("userId") and not event.get("anonymousId"):
        return Verdict(False, kind, reason="no userId or anonymousId: one of them is required")
    stamp = corrected_time(event, window)
    if isinstance(stamp, str):
        return Verdict(False, kind, reason=stamp)
    if stamp < window.oldest:
        return Verdict(False, kind, reason=window.late_reason, stamp=stamp)
    if stamp > window.newest:
        return Verdict(False, kind, reason=window.future_reason, stamp=stamp)
    verdict = Verdict(True, kind, digest=digest, stamp=stamp)
    verdict.hour = int(stamp.timestamp() // 3600)
    problem = None
    if kind == "track":
        problem = _track(event, verdict, stamp)
    elif kind in ("page", "screen"):
        problem = _page_or_screen(event, verdict, kind)
    elif kind == "identify":
        verdict.increments.append(_IDENTIFY)
    if problem is not None:
        return Verdict(False, kind, reason=problem, stamp=stamp)
    if spec is not None and spec.dimensions and verdict.increments:
        verdict.dims, verdict.refusal = event_dimensions(event, spec)
    return verdict


def merge_batch_fields(event: Any, context: Any, integrations: Any) -> Any:
    """Merge a batch's top-level `context` and `integrations` into an item (the item wins)."""
    if not isinstance(event, dict) or (context is None and integrations is None):
        return event
    merged = dict(event)
    if isinstance(integrations, dict):
        own = event.get("integrations")
        merged["integrations"] = {**integrations, **(own if isinstance(own, dict) else {})}
    if isinstance(context, dict):
        own = event.get("context")
        merged["context"] = {**context, **(own if isinstance(own, dict) else {})}
    return merged
