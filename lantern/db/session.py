"""Engines and sessions: one engine per URL per process, and the unit-of-work scope."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from lantern.config import get_settings
from lantern.db.arrays import register_packed
from lantern.db.checkpoint import WAL_AUTOCHECKPOINT_PAGES
from lantern.db.dialect import SQLITE_LOWER, sqlite_lower

# Page cache per SQLite connection, in KB: a bound on what each may hold, whatever the
# size of the file.
SQLITE_CACHE_KB = 32 * 1024
# What SQLite may hold in all of the process's connections together (a soft limit: past
# it, a connection reuses its oldest cached pages rather than allocating). Without it each
# of a dozen pooled connections could fill its own cache, and the memory freed when a
# cache is emptied is kept by the allocator.
SQLITE_HEAP_LIMIT_BYTES = 64 * 1024 * 1024

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (dashboard, detection) run while ingest writes; NORMAL sync is
    # durable against a crash of the process, which is what a 2xx promises.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # A multi-row INSERT keeps a statement journal (to undo just that statement); past
    # 64 KB it spilled to a temporary file, created and unlinked for every statement.
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KB}")
    cursor.execute(f"PRAGMA soft_heap_limit={SQLITE_HEAP_LIMIT_BYTES}")
    # No memory-mapped I/O: every page of the file a connection touches through a map
    # stays in the process's resident set, once per connection, up to the map's size.
    # Random message digests touch pages all over a table of a day's ids, so under
    # sustained ingest the maps alone grew the server past its 500 MB budget.
    cursor.execute("PRAGMA mmap_size=0")
    cursor.close()
    dbapi_connection.create_function(SQLITE_LOWER, 1, sqlite_lower, deterministic=True)


def make_engine(url: str) -> Engine:
    """A new engine for `url`, with the settings Lantern relies on for each engine."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            pool_use_lifo=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    event.listen(engine, "connect", _postgres_adapters)
    return engine


def _postgres_adapters(dbapi_connection: Any, _record: Any) -> None:
    # Packed arrays (ingest's statement) travel as they are.
    register_packed(dbapi_connection.adapters)


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for `url` (default: the configured database)."""
    url = url or get_settings().resolved_database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


_write_locks: dict[str | None, tuple[threading.Lock, IO[str] | None]] = {}


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
    database = engine.url.database
    with _lock:
        lock = _write_locks.get(database)
        if lock is None:
            # The lock file stays open for the life of the process: opening it for each
            # transaction cost two system calls on ingest's path.
            handle: IO[str] | None = None
            if database and database != ":memory:":
                handle = open(f"{database}.write.lock", "a")  # noqa: SIM115
            lock = _write_locks[database] = (threading.Lock(), handle)
    thread_lock, lock_file = lock
    with thread_lock:
        if lock_file is None:
            yield
            return
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


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
