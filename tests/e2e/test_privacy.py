"""Nothing personal reaches the database, the logs or the debug view: Lantern counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import segment.analytics as segment
from sqlalchemy import Engine, inspect, text

from lantern.db.models import Base
from tests.e2e.conftest import start_server
from tests.factories import make_source
from tests.helpers import totals

PII = {
    "user_id": "pii-user-5c1e9",
    "anonymous_id": "pii-anon-8d2f7",
    "email": "pii.person.3391@example.org",
    "name": "Pii Personname Zq",
    "ip": "198.51.100.177",
    "user_agent": "PiiAgent/77.1 (Piitest)",
    "device_id": "pii-device-41ab",
    "advertising_id": "pii-adid-90fe",
    "property": "pii-property-value-6612",
    "url": "https://example.org/u/pii-path-7731",
    "city": "Piicity Vqx",
    "group_id": "pii-group-2288",
    "previous_id": "pii-previous-1199",
    "message_id": "pii-message-3ef0",
    "phone": "+1-555-0100-7788",
    "path": "/u/pii-path-7731",
}


def context() -> dict[str, object]:
    return {
        "ip": PII["ip"],
        "userAgent": PII["user_agent"],
        "device": {"id": PII["device_id"], "advertisingId": PII["advertising_id"]},
        "traits": {"email": PII["email"], "name": PII["name"], "phone": PII["phone"]},
        "location": {"city": PII["city"]},
        "page": {"url": PII["url"], "path": PII["path"]},
        "locale": "en-GB",
        "os": {"name": "iOS", "version": "17.1"},
    }


READ_FILE = """
import sys
try:
    with open(sys.argv[1], "rb") as handle:
        sys.stdout.buffer.write(handle.read())
except FileNotFoundError:
    pass
"""


def database_text(engine: Engine) -> str:
    """Every row of every table, as text, plus the raw SQLite files."""
    parts: list[str] = []
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                parts.append(repr(tuple(row)))
    if engine.dialect.name == "sqlite" and engine.url.database:
        # Read by another process: closing a descriptor of the database file here would
        # drop this process's POSIX locks on it, and SQLite in another process could then
        # take itself for the last connection and delete the write-ahead log under ours.
        for suffix in ("", "-wal"):
            raw = subprocess.run(
                [sys.executable, "-c", READ_FILE, engine.url.database + suffix],
                capture_output=True,
                check=True,
            )
            parts.append(raw.stdout.decode("latin-1"))
    return "\n".join(parts)


@pytest.mark.slow
def test_pii_in_every_field_reaches_no_table_log_or_debug_view(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    process, url = start_server(database_url, tmp_path, LANTERN_LOG_LEVEL="debug")
    src = make_source(engine)
    auth = {"Authorization": f"Bearer {src.token}"}
    # `plan` carries a personal-looking value below: a breakdown on it must refuse itself.
    allowed = httpx.put(
        f"{url}/api/v1/sources/{src.id}/breakdowns",
        json={"dimensions": ["os", "library", "country", "page_path", "properties.plan"]},
        headers=auth,
    )
    assert allowed.status_code == 200, allowed.text
    client = segment.Client(src.key, host=url, gzip=True)
    props = {"plan": PII["property"], "email": PII["email"], "value": 5, "url": PII["url"]}
    client.track(
        PII["user_id"],
        "Checkout",
        props,
        context=context(),
        anonymous_id=PII["anonymous_id"],
        message_id=PII["message_id"],
    )
    client.page(
        PII["user_id"],
        "Docs",
        "Home",
        {"url": PII["url"], "title": PII["name"]},
        context=context(),
        anonymous_id=PII["anonymous_id"],
    )
    client.screen(PII["user_id"], "App", "Profile", {"phone": PII["phone"]}, context=context())
    client.identify(
        PII["user_id"],
        {"email": PII["email"], "name": PII["name"], "phone": PII["phone"]},
        context=context(),
        anonymous_id=PII["anonymous_id"],
    )
    client.group(PII["user_id"], PII["group_id"], {"name": PII["name"]}, context=context())
    client.alias(PII["user_id"], PII["previous_id"], context=context())
    client.flush()
    client.shutdown()
    debug = httpx.get(f"{url}/api/v1/sources/{src.id}/debug", headers=auth).text
    dimensions = json.loads(debug)
    process.terminate()
    logs = process.communicate(timeout=10)[0].decode()

    assert totals(engine, src.id)[("track", "Checkout")] == 1
    assert totals(engine, src.id)[("total", "identify")] == 1
    stored = database_text(engine)
    assert "Checkout" in stored  # the metric is there, so the search below is meaningful
    # ... and so are its breakdowns: the library, the locale's country, the path's words
    assert {"analytics-python", "GB", "iOS", "/u/:id"} <= set(
        v["value"] for d in dimensions["dimensions"] for v in d["values"]
    )
    plan = next(d for d in dimensions["dimensions"] if d["name"] == "properties.plan")
    assert plan["recording"] is False and "random ids" in plan["refused"]
    for label, value in PII.items():
        assert value not in stored, f"{label} reached the database"
        assert value not in logs, f"{label} reached the logs"
        assert value not in debug, f"{label} reached the debug view"
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
