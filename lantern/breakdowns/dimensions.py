"""Which dimensions an event has, read from Segment's context: pure functions, no I/O.

A dimension is one of the defaults below, taken from fields Segment's libraries fill in
and that never name a person, or `properties.<key>` for a key a user allowed in the
source's settings. Nothing else ever becomes one: user and anonymous ids, traits, ip,
user agent and device ids are not read here at all. Every value is checked before it is
kept: trimmed, truncated to `MAX_VALUE` characters, and dropped when it is not a short
label. A property value that looks personal (an email address, a long random id, a
phone number) or is free text refuses its dimension, with the reason (`Refusal`): the
value itself is never kept, quoted or logged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

T = TypeVar("T")

# The defaults, in the order they are shown: each is read by a function of the context.
DEFAULT_DIMENSIONS = ("os", "app_version", "library", "country", "page_path")
PROPERTY_PREFIX = "properties."
# A source's dimensions at most: each multiplies the rows an hour of a metric may take.
MAX_DIMENSIONS = 10
# Characters kept of a value: enough for a version, an OS, a short path or a plan name.
MAX_VALUE = 64
# Characters of a value read at most: a longer one is no label (and is not scanned).
MAX_CHECKED = 4 * MAX_VALUE
# Characters of a property key: Segment's own keys are far shorter.
MAX_KEY = 64
# How an hour's values past the cap are shown; stored as the empty string, which no
# real value can be (an empty value is no value).
OTHER = "(other)"
# The words in a property key that say it holds something personal or free text.
PERSONAL_KEY_WORDS = {
    "email": "an email address",
    "mail": "an email address",
    "user": "a user",
    "userid": "a user id",
    "uid": "a user id",
    "id": "an id",
    "ids": "ids",
    "anonymous": "an anonymous id",
    "anon": "an anonymous id",
    "firstname": "a name",
    "lastname": "a name",
    "username": "a name",
    "phone": "a phone number",
    "mobile": "a phone number",
    "ip": "an IP address",
    "address": "an address",
    "street": "an address",
    "city": "a place",
    "zip": "a postcode",
    "postcode": "a postcode",
    "postal": "a postcode",
    "lat": "a location",
    "lng": "a location",
    "latitude": "a location",
    "longitude": "a location",
    "location": "a location",
    "birthday": "a birth date",
    "dob": "a birth date",
    "ssn": "an identity number",
    "passport": "an identity number",
    "card": "a payment card",
    "iban": "a bank account",
    "token": "a secret",
    "password": "a secret",
    "secret": "a secret",
    "session": "a session id",
    "device": "a device id",
    "email_address": "an email address",
    "url": "a URL (free text that can carry anything)",
    "referrer": "a URL (free text that can carry anything)",
    "search": "search terms (free text)",
    "query": "search terms (free text)",
    "title": "a title (free text)",
    "text": "free text",
    "message": "free text",
    "comment": "free text",
    "description": "free text",
    "note": "free text",
    "traits": "traits",
}
# "name" alone, or after one of these words, is a person's name ("plan_name" is not).
PERSON_WORDS = frozenset(
    {"first", "last", "full", "display", "user", "nick", "given", "family", "customer", "contact"}
)
MEASURED_KEYS = frozenset({"value", "revenue"})

_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
_KEY = re.compile(r"^[A-Za-z0-9_\- ]+$")
_KEY_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
# A label: letters and digits of any script, spaces and the punctuation versions and
# product names use. Anything else (controls, quotes, brackets, @) is not a label.
_LABEL = re.compile(r"^[\w .+\-/()]+$")
_WHITESPACE = re.compile(r"\s+")
_PHONE_CHARS = re.compile(r"^[\d\s+\-().]+$")
# A value with this many words is a sentence, not a category.
MAX_WORDS = 4
# A token this long with this many digits (or mixed case and digits) is a random id.
ID_LENGTH = 16
ID_DIGITS = 4
# A whole number with this many digits is an id, an account or a phone number.
NUMBER_DIGITS = 7
# A path segment with this many digits, or this long, is an id: replaced by ":id".
SEGMENT_DIGITS = 3
SEGMENT_LENGTH = 32
PATH_ID = ":id"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a property cannot be a dimension; never quotes the value that showed it."""

    dimension_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Spec:
    """A source's dimensions as ingest reads them: (id, name) pairs, defaults first.

    Worked out once per source: which default each id is (`defaults`, positions in
    `DEFAULT_DIMENSIONS`), the property keys, and a memo of the defaults' values per
    combination of the context fields they are read from (a source's clients send a few
    hundred combinations, again and again).
    """

    dimensions: tuple[tuple[int, str], ...]
    defaults: tuple[tuple[int, int], ...] = field(init=False, compare=False, repr=False)
    properties: tuple[tuple[int, str], ...] = field(init=False, compare=False, repr=False)
    memo: dict[tuple[Any, ...], tuple[tuple[int, str], ...]] = field(
        init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        defaults = tuple(
            (DEFAULT_DIMENSIONS.index(name), dimension_id)
            for dimension_id, name in self.dimensions
            if name in DEFAULT_DIMENSIONS
        )
        properties = tuple(
            (dimension_id, name[len(PROPERTY_PREFIX) :])
            for dimension_id, name in self.dimensions
            if name.startswith(PROPERTY_PREFIX)
        )
        object.__setattr__(self, "defaults", defaults)
        object.__setattr__(self, "properties", properties)
        object.__setattr__(self, "memo", {})


def _clean_label(raw: Any) -> str | None:
    """A short label from a string field of the context; None if it is not one."""
    if not isinstance(raw, str) or len(raw) > MAX_CHECKED:
        return None
    value = raw.strip()
    # Checked whole, then cut: a cut could keep a harmless-looking part of a personal value.
    if not value or not _LABEL.match(value) or _looks_personal(value) is not None:
        return None
    return value[:MAX_VALUE].strip()


def _looks_personal(value: str) -> str | None:
    """Why a value looks personal or is free text, or None."""
    if "@" in value and _EMAIL.search(value):
        return "its values look like email addresses"
    if _PHONE_CHARS.match(value) and sum(c.isdigit() for c in value) >= NUMBER_DIGITS:
        return "its values look like phone numbers or numeric ids"
    words = _WHITESPACE.split(value)
    if len(words) > MAX_WORDS:
        return "its values are free text, not categories"
    for word in words:
        if len(word) >= ID_LENGTH:
            digits = sum(c.isdigit() for c in word)
            mixed = digits and any(c.islower() for c in word) and any(c.isupper() for c in word)
            if digits >= ID_DIGITS or mixed:
                return "its values look like long random ids (one per user or device)"
    return None


class Remembered(Generic[T]):
    """A check's verdicts on the strings it saw last: a field takes the same few values
    again and again, and ingest reads it on every event. Bounded: emptied when full."""

    SIZE = 4096

    def __init__(self, check: Callable[[Any], T]) -> None:
        self.check = check
        self.seen: dict[str, T] = {}

    def __call__(self, raw: Any) -> T:
        if not isinstance(raw, str) or len(raw) > MAX_CHECKED:
            return self.check(raw)
        if raw in self.seen:
            return self.seen[raw]
        if len(self.seen) >= self.SIZE:
            self.seen.clear()
        found = self.seen[raw] = self.check(raw)
        return found


def _country(locale: Any) -> str | None:
    """The region of `context.locale` ("en-US" -> "US"); never anything from the IP."""
    if not isinstance(locale, str) or len(locale) > 35:
        return None
    for part in re.split(r"[-_]", locale)[1:]:
        if len(part) == 2 and part.isascii() and part.isalpha():
            return part.upper()
        if len(part) == 3 and part.isascii() and part.isdigit():
            return part  # a UN M.49 region, such as 419 (Latin America)
    return None


def _clean_path(path: Any) -> str | None:
    """The page's path without query string or fragment, its id-like segments as ":id"."""
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 2048:
        return None
    path = path.split("?", 1)[0].split("#", 1)[0]
    kept: list[str] = []
    size = 0
    for segment in path.split("/")[1:]:
        piece = _path_segment(segment)
        size += len(piece) + 1
        if size > MAX_VALUE:
            break
        kept.append(piece)
    return "/" + "/".join(kept)


def _path_segment(segment: str) -> str:
    """A path segment as kept: itself if it is a plain word, else ":id"."""
    plain = unquote(segment)
    if (
        len(plain) > SEGMENT_LENGTH
        or sum(c.isdigit() for c in plain) >= SEGMENT_DIGITS
        or "@" in plain
        or not _LABEL.match(plain or "x")
        or _looks_personal(plain) is not None
    ):
        return PATH_ID
    return plain


def property_value(raw: Any) -> str | Refusal | None:
    """A property's value as a dimension's value; a reason (dimension id 0) if it is personal.

    None for no usable value (absent, empty, an object or list, NUL or controls): the
    event is counted in its metric, only not under this dimension.
    """
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int):
        if len(str(abs(raw))) >= NUMBER_DIGITS:
            return Refusal(0, "its values are numbers of 7 digits or more: ids or phone numbers")
        return str(raw)
    if isinstance(raw, float):
        if raw.is_integer() and abs(raw) < 10 ** (NUMBER_DIGITS - 1):
            return str(int(raw))
        return Refusal(0, "its values are measurements (decimal numbers), not categories")
    if not isinstance(raw, str):
        return None
    value = raw.strip()
    if not value or "\x00" in value or not value.isprintable():
        return None
    reason = _looks_personal(value[:MAX_CHECKED])
    if reason is not None:
        return Refusal(0, reason)
    return value[:MAX_VALUE].strip()


# The checks of the defaults, in the order of DEFAULT_DIMENSIONS, and of property values.
_CHECKS: tuple[Callable[[Any], str | None], ...] = (
    _clean_label,
    _clean_label,
    _clean_label,
    _country,
    _clean_path,
)
_property = Remembered(property_value)
# Context combinations a spec remembers at most (each field at most MAX_CHECKED long, so
# about a megabyte at worst); past it, its memo starts again. Ingest reads a source's spec
# afresh every few seconds, memo included.
MEMO_SIZE = 1024
_NO_CONTEXT: dict[str, Any] = {}


def _section(context: dict[str, Any], section: str, name: str) -> Any:
    part = context.get(section)
    return part.get(name) if type(part) is dict else None


def _raw_defaults(event: dict[str, Any], context: dict[str, Any]) -> tuple[Any, ...]:
    """The fields the defaults are read from, as sent: os.name, app.version, library.name,
    locale, and the page path (a page call's `properties.path`, else `context.page.path`)."""
    path = None
    if event.get("type") == "page":
        props = event.get("properties")
        if type(props) is dict:
            path = props.get("path")
    if type(path) is not str:
        path = _section(context, "page", "path")
    return (
        _section(context, "os", "name"),
        _section(context, "app", "version"),
        _section(context, "library", "name"),
        context.get("locale"),
        path,
    )


def _default_values(spec: Spec, raw: tuple[Any, ...]) -> tuple[tuple[int, str], ...]:
    """The spec's default dimensions' values for these raw fields, each checked."""
    found: list[tuple[int, str]] = []
    for position, dimension_id in spec.defaults:
        value = _CHECKS[position](raw[position])
        if value is not None:
            found.append((dimension_id, value))
    return tuple(found)


def event_dimensions(
    event: dict[str, Any], spec: Spec
) -> tuple[tuple[tuple[int, str], ...], Refusal | None]:
    """The event's (dimension id, value) pairs, and the first property refused on its value."""
    context = event.get("context")
    if type(context) is not dict:
        context = _NO_CONTEXT
    found: tuple[tuple[int, str], ...] = ()
    if spec.defaults:
        raw = _raw_defaults(event, context)
        try:
            known = spec.memo.get(raw)
        except TypeError:  # an object or a list where a string belongs: no memo
            found = _default_values(spec, raw)
        else:
            if known is None:
                known = _default_values(spec, raw)
                # Only short fields are remembered: the memo's memory stays small.
                if all(type(v) is not str or len(v) <= MAX_CHECKED for v in raw):
                    if len(spec.memo) >= MEMO_SIZE:
                        spec.memo.clear()
                    spec.memo[raw] = known
            found = known
    if not spec.properties:
        return found, None
    refusal: Refusal | None = None
    props = event.get("properties")
    props = props if type(props) is dict else _NO_CONTEXT
    kept = list(found)
    for dimension_id, key in spec.properties:
        got = _property(props.get(key))
        if isinstance(got, Refusal):
            refusal = refusal or Refusal(dimension_id, got.reason)
        elif got is not None:
            kept.append((dimension_id, got))
    return tuple(kept), refusal


def check_dimension_name(name: str) -> str | None:
    """Why `name` cannot be a dimension, or None: a default, or `properties.<key>` not personal."""
    if name in DEFAULT_DIMENSIONS:
        return None
    if not name.startswith(PROPERTY_PREFIX):
        defaults = ", ".join(DEFAULT_DIMENSIONS)
        return f"{name[:80]!r} is not a dimension: use one of {defaults} or properties.<key>"
    key = name[len(PROPERTY_PREFIX) :]
    if not key or len(key) > MAX_KEY or not _KEY.match(key):
        return (
            f"{name[:80]!r}: a property key is 1 to {MAX_KEY} letters, digits, spaces, "
            "'_' or '-' (nested keys are not supported)"
        )
    if key.lower() in MEASURED_KEYS:
        return f"{name!r} is measured (its sum and average are metrics), not a category"
    words = [word.lower() for word in _KEY_WORDS.findall(key)]
    meaning = next((PERSONAL_KEY_WORDS[w] for w in words if w in PERSONAL_KEY_WORDS), None)
    if meaning is None and "name" in words:
        at = words.index("name")
        if at == 0 or words[at - 1] in PERSON_WORDS:
            meaning = "a name"
    if meaning is None:
        meaning = PERSONAL_KEY_WORDS.get("".join(words))
    if meaning is not None:
        return f"{name!r} looks like it holds {meaning}, which is personal: never a breakdown"
    return None
