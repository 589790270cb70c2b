"""The wire: Segment request bodies and credentials, read exactly as Segment's API reads them."""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from lantern.errors import BadRequest, Unauthorized


@dataclass(frozen=True, slots=True)
class Payload:
    """A request body's events, with the batch-level fields that apply to each of them."""

    events: list[Any]
    sent_at: Any = None
    context: Any = None
    integrations: Any = None
    write_key: str | None = None


def decompress(body: bytes, encoding: str | None, *, limit: int) -> bytes:
    """The request body, gunzipped when it says so, never larger than `limit` bytes."""
    if not encoding or encoding.strip().lower() in ("identity", ""):
        return body
    if encoding.strip().lower() not in ("gzip", "x-gzip", "deflate"):
        raise BadRequest(
            f"Content-Encoding {encoding!r} is not supported: send gzip or an uncompressed body",
            error="unsupported_encoding",
        )
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding.lower() else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(
            f"the body is not valid {encoding} data ({exc})", error="bad_encoding"
        ) from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise BadRequest(
            f"the decompressed body is larger than {limit // 1024} KB", error="payload_too_large"
        )
    if not inflater.eof:
        raise BadRequest(
            f"the {encoding} body ends before its stream does: send the whole body",
            error="bad_encoding",
        )
    if inflater.unused_data:
        # Several gzip members (or bytes after one) would be read only in part, silently.
        raise BadRequest(
            f"the body holds more than one {encoding} stream, or bytes after it: "
            f"compress the whole body as one {encoding} stream",
            error="bad_encoding",
        )
    return data


def parse_body(raw: bytes, *, batch: bool) -> Payload:
    """Events from a JSON body: `{"batch": [...]}`, one event object, or an array of events."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", error="invalid_json") from None
    if isinstance(body, list):
        return Payload(events=body)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object or an array of events")
    write_key = body.get("writeKey")
    write_key = write_key if isinstance(write_key, str) and write_key else None
    if "batch" in body or batch:
        items = body.get("batch")
        if not isinstance(items, list):
            raise BadRequest('a batch body needs a "batch" array of events', error="invalid_batch")
        return Payload(
            events=items,
            sent_at=body.get("sentAt"),
            context=body.get("context"),
            integrations=body.get("integrations"),
            write_key=write_key,
        )
    return Payload(events=[body], sent_at=None, write_key=write_key)


def key_from_header(authorization: str | None) -> str | None:
    """The source key in an Authorization header: Basic base64("key:"), Basic key, or a raw key."""
    if not authorization:
        return None
    scheme, _, rest = authorization.strip().partition(" ")
    if not rest:
        return scheme or None
    if scheme.lower() == "bearer":
        return None  # an OAuth token: the key travels as writeKey in the body
    if scheme.lower() != "basic":
        return authorization.strip()
    rest = rest.strip()
    try:
        decoded = base64.b64decode(rest, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return rest  # "Basic <raw key>", as some destinations send it
    return decoded.split(":", 1)[0] or None


def source_key(authorization: str | None, payload: Payload) -> str:
    """The key that authenticates the request, from the header or the body's writeKey."""
    key = key_from_header(authorization) or payload.write_key
    if not key:
        raise Unauthorized(
            "no source API key: send it as Basic auth (base64 of 'KEY:') or as writeKey",
            error="missing_key",
        )
    return key
