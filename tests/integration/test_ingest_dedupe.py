"""Message ids are remembered for the dedupe horizon, purged hourly, and survive the upgrades."""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select, text

from lantern.api.app import create_app
from lantern.config import Settings
from lantern.db.migrate import alembic_config, upgrade
from lantern.ingest.dedupe import seen_second
from lantern.ingest.events import message_digest
from lantern.ingest.models import SeenMessage
from lantern.scheduler import build_scheduler, dedupe_tick
from tests.factories import MadeSource, make_source
from tests.helpers import totals

# The revision before message ids were stamped with a second number.
BEFORE_SECONDS = "9b471d9b8a39"
# The revision before message ids were remembered as 64-bit integers.
BEFORE_INTEGER_DIGESTS = "1a5b6c7d8e9f"


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def track(message_id: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {"type": "track", "event": "Signed Up", "userId": "u1", "messageId": message_id,
            "timestamp": now}  # fmt: skip


def remembered(engine: Engine, source_id: int) -> int:
    with engine.connect() as connection:
        return (
            connection.scalar(
                select(func.count())
                .select_from(SeenMessage)
                .where(SeenMessage.source_id == source_id)
            )
            or 0
        )


def remember_at(engine: Engine, source_id: int, message_id: str, at: datetime) -> None:
    """A message id as ingest would have stored it at `at`."""
    with engine.begin() as connection:
        connection.execute(
            insert(SeenMessage).values(
                source_id=source_id, digest=message_digest(message_id), seen_second=seen_second(at)
            )
        )


def test_a_repeat_within_the_horizon_is_still_counted_once_after_the_hourly_purge(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    src = make_source(engine)
    event = track(str(uuid.uuid4()))
    client.post("/v1/track", json=event, headers=basic(src.key))
    dedupe_tick(engine, settings, now=datetime.now(UTC) + timedelta(hours=23))
    again = client.post("/v1/track", json=event, headers=basic(src.key))
    assert again.json()["duplicates"] == 1
    assert totals(engine, src.id)[("track", "Signed Up")] == 1


def test_message_ids_older_than_the_horizon_are_gone_after_the_hourly_purge(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    src = make_source(engine)
    now = datetime.now(UTC)
    old, recent = str(uuid.uuid4()), str(uuid.uuid4())
    remember_at(engine, src.id, old, now - timedelta(hours=settings.dedupe_hours + 1.5))
    remember_at(engine, src.id, recent, now - timedelta(hours=settings.dedupe_hours - 1))
    dedupe_tick(engine, settings, now=now)
    assert remembered(engine, src.id) == 1
    answers = [
        client.post("/v1/track", json=track(message_id), headers=basic(src.key)).json()
        for message_id in (old, recent)
    ]
    assert [answer["accepted"] for answer in answers] == [1, 0]
    assert totals(engine, src.id)[("track", "Signed Up")] == 1


def test_the_purge_removes_every_old_row_even_beyond_one_chunk(
    engine: Engine, settings: Settings
) -> None:
    from lantern.ingest import dedupe

    src = make_source(engine)
    long_ago = datetime.now(UTC) - timedelta(days=3)
    with engine.begin() as connection:
        connection.execute(
            insert(SeenMessage),
            [
                {
                    "source_id": src.id,
                    "digest": random.getrandbits(64) - 2**63,
                    "seen_second": seen_second(long_ago),
                }
                for _ in range(dedupe.PURGE_CHUNK_ROWS + 7)
            ],
        )
    dedupe_tick(engine, settings, now=datetime.now(UTC))
    assert remembered(engine, src.id) == 0


def test_the_scheduler_purges_message_ids_every_hour(settings: Settings, engine: Engine) -> None:
    trigger = build_scheduler(settings, engine).get_job("dedupe").trigger
    start = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    first = trigger.get_next_fire_time(None, start)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    assert second - first == timedelta(hours=1)


def old_digest(message_id: str) -> bytes:
    """The 16-byte digest of a message id, as ingest stored it before migration 0018."""
    return hashlib.blake2b(message_id.encode(), digest_size=16).digest()


def downgrade_to(engine: Engine, revision: str) -> None:
    """Take the schema back to `revision`, keeping its data."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def duplicates_when_sent_again(
    engine: Engine, tmp_path: Any, src: MadeSource, message_id: str
) -> int:
    """The duplicates a server on `engine` counts in a track call with `message_id`."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=engine.url.render_as_string(hide_password=False),
        scheduler_enabled=False,
    )
    with TestClient(create_app(settings, engine)) as client:
        again = client.post("/v1/track", json=track(message_id), headers=basic(src.key))
    duplicates: int = again.json()["duplicates"]
    return duplicates


def _insert_old_shape(engine: Engine, src: MadeSource, message_id: str, at: datetime) -> None:
    """A message id as ingest stored it before 0006: a 16-byte digest and a timestamp."""
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO seen_messages (source_id, digest, seen_at) VALUES (:s, :d, :t)"),
            {"s": src.id, "d": old_digest(message_id), "t": at.replace(tzinfo=None)},
        )


def test_message_ids_remembered_before_the_upgrade_are_still_repeats_after_it(
    fresh_engine: Engine, tmp_path: Any
) -> None:
    # The source is made with today's tables (the models are today's), then the schema
    # goes back to before the change, keeping it.
    src = make_source(fresh_engine)
    downgrade_to(fresh_engine, BEFORE_SECONDS)
    now = datetime.now(UTC)
    message_id = str(uuid.uuid4())
    _insert_old_shape(fresh_engine, src, message_id, now - timedelta(hours=2))
    _insert_old_shape(fresh_engine, src, str(uuid.uuid4()), now - timedelta(hours=30))
    upgrade(fresh_engine)
    with fresh_engine.connect() as connection:
        stamps = sorted(connection.scalars(select(SeenMessage.seen_second)))
    assert stamps == [seen_second(now - timedelta(hours=30)), seen_second(now - timedelta(hours=2))]
    assert duplicates_when_sent_again(fresh_engine, tmp_path, src, message_id) == 1
    assert totals(fresh_engine, src.id) == {}


def test_downgrading_keeps_each_remembered_row_with_the_time_it_was_seen(
    fresh_engine: Engine,
) -> None:
    # The 16-byte digest cannot be rebuilt from the 8 bytes kept since 0018: the row and
    # its time are kept, with those 8 bytes.
    src = make_source(fresh_engine)
    at = datetime(2026, 11, 29, 10, 42, 7, tzinfo=UTC)
    remember_at(fresh_engine, src.id, "m-1", at)
    downgrade_to(fresh_engine, BEFORE_SECONDS)
    with fresh_engine.connect() as connection:
        rows = connection.execute(text("SELECT digest, seen_at FROM seen_messages")).all()
    assert [(bytes(digest), str(stamp)[:19]) for digest, stamp in rows] == [
        (old_digest("m-1")[:8], "2026-11-29 10:42:07")
    ]


def test_message_ids_remembered_as_16_byte_digests_are_still_repeats_after_the_upgrade(
    fresh_engine: Engine, tmp_path: Any
) -> None:
    src = make_source(fresh_engine)
    downgrade_to(fresh_engine, BEFORE_INTEGER_DIGESTS)
    seen = datetime(2026, 11, 29, 10, 42, 7, tzinfo=UTC)
    message_id = str(uuid.uuid4())
    with fresh_engine.begin() as connection:
        connection.execute(
            text("INSERT INTO seen_messages (source_id, digest, seen_second) VALUES (:s, :d, :t)"),
            [
                {"s": src.id, "d": old_digest(message_id), "t": seen_second(seen)},
                {"s": src.id, "d": old_digest("other"), "t": seen_second(seen) + 1},
            ],
        )
    upgrade(fresh_engine)
    with fresh_engine.connect() as connection:
        rows = connection.execute(select(SeenMessage.digest, SeenMessage.seen_second)).all()
    assert sorted(rows) == sorted(
        [
            (message_digest(message_id), seen_second(seen)),
            (message_digest("other"), seen_second(seen) + 1),
        ]
    )
    assert duplicates_when_sent_again(fresh_engine, tmp_path, src, message_id) == 1
    assert totals(fresh_engine, src.id) == {}
