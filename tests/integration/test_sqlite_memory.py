"""A SQLite database of any size costs the server a bounded amount of memory."""

from __future__ import annotations

import contextlib
import ctypes
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from lantern.db.session import SQLITE_CACHE_KB, SQLITE_HEAP_LIMIT_BYTES, make_engine

pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc (Linux)")


def mapped_bytes(path: Path) -> int:
    """How much of the file at `path` this process has mapped into memory."""
    total = 0
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith(str(path)):
            start, end = line.split()[0].split("-")
            total += int(end, 16) - int(start, 16)
    return total


def test_reading_a_whole_sqlite_database_maps_none_of_it_into_the_process(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE ids (digest BLOB PRIMARY KEY)"))
            connection.execute(
                text("INSERT INTO ids VALUES (:digest)"),
                [{"digest": os.urandom(16)} for _ in range(200_000)],
            )
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # into the file itself
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM ids")).scalar() == 200_000
            assert path.stat().st_size > 8_000_000
            assert mapped_bytes(path) == 0
    finally:
        engine.dispose()


def test_each_sqlite_connection_caches_at_most_its_bounded_share_of_pages(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'cache.db'}")
    try:
        with engine.connect() as connection:
            cache = connection.execute(text("PRAGMA cache_size")).scalar()
    finally:
        engine.dispose()
    assert cache == -SQLITE_CACHE_KB
    assert SQLITE_CACHE_KB <= 32 * 1024


def sqlite_memory_used() -> int:
    """Bytes SQLite holds now in this process, all connections together."""
    import _sqlite3  # the module linked to the SQLite library in use

    library = ctypes.CDLL(_sqlite3.__file__)
    library.sqlite3_memory_used.restype = ctypes.c_int64
    return int(library.sqlite3_memory_used())


@pytest.mark.slow
def test_all_sqlite_connections_together_hold_at_most_the_heap_limit(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'shared.db'}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE ids (digest BLOB PRIMARY KEY) WITHOUT ROWID"))
            for _ in range(10):
                connection.execute(
                    text("INSERT INTO ids VALUES (:digest)"),
                    [{"digest": os.urandom(16)} for _ in range(100_000)],
                )
        with contextlib.ExitStack() as stack:
            # Five connections at once, each reading the whole table (about 22 MB).
            for _ in range(5):
                connection = stack.enter_context(engine.connect())
                connection.execute(text("SELECT count(*) FROM ids WHERE digest > x'00'")).all()
            used = sqlite_memory_used()
    finally:
        engine.dispose()
    assert used <= SQLITE_HEAP_LIMIT_BYTES + 8 * 1024 * 1024
