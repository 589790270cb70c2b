"""Engines and sessions: one engine per URL per process, and the unit-of-work scope."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from lantern.config import get_settings

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (dashboard, detection) run while ingest writes; NORMAL sync is
    # durable against a crash of the process, which is what a 2xx promises.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MB of page cache per connection
    cursor.execute("PRAGMA mmap_size=268435456")
    cursor.close()


def make_engine(url: str) -> Engine:
    """A new engine for `url`, with the settings Lantern relies on for each engine."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for `url` (default: the configured database)."""
    url = url or get_settings().resolved_database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


_write_locks: dict[str, threading.Lock] = {}


@contextmanager
def write_serialized(engine: Engine) -> Iterator[None]:
    """Serialise write transactions on a SQLite engine, across threads and processes.

    SQLite admits one writer at a time and makes the others poll with growing sleeps;
    queueing writers on a lock instead keeps ingest latency flat: a thread lock within the
    process, and an exclusive `flock` on a file beside the database between processes
    (`lantern serve --workers N`). PostgreSQL needs none.
    """
    if engine.dialect.name != "sqlite":
        yield
        return
    key = str(engine.url)
    with _lock:
        lock = _write_locks.setdefault(key, threading.Lock())
    database = engine.url.database
    with lock:
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.write.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def reset_engines() -> None:
    """Dispose every cached engine (tests, and after a fork)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """One unit of work: commit when the block ends, roll back if it raises."""
    factory = sessionmaker(bind=engine or get_engine(), expire_on_commit=False)
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
