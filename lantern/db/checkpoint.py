"""SQLite's write-ahead log copied back into the database file on a thread of its own.

By itself SQLite checkpoints inside the commit that leaves more than `wal_autocheckpoint`
pages in the log: that commit waits for the copy and its two fsyncs. Ingest commits all
the time and answers only once committed, so its writer nudges a `Checkpointer` after
each commit instead, and the automatic checkpoint, set high
(`WAL_AUTOCHECKPOINT_PAGES`), is only a backstop for processes that run none.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

# Pages (4 KB) the log may hold before a commit checkpoints by itself: about 40 MB.
WAL_AUTOCHECKPOINT_PAGES = 10_000
# At most one checkpoint per this many seconds: each copies a page once however many
# times it was rewritten meanwhile.
PAUSE_SECONDS = 0.25
# A checkpointer not nudged for this long ends; the next nudge starts another.
IDLE_SECONDS = 30.0


class Checkpointer:
    """Runs passive checkpoints of one SQLite database, soon after it is nudged."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        """Ask for a checkpoint soon: the log has grown."""
        self._wake.set()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sqlite-checkpoint", daemon=True
                )
                self._thread.start()

    def checkpoint(self) -> None:
        """Copy what the log holds into the database file, without waiting for anyone."""
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except OperationalError as exc:  # another process is checkpointing: it does the work
            log.debug("checkpoint skipped: %s", exc)

    def _run(self) -> None:
        while True:
            if not self._wake.wait(IDLE_SECONDS):
                with self._lock:
                    # nudge() sets the event before it looks at the thread: none is lost.
                    if not self._wake.is_set():
                        self._thread = None
                        return
                continue
            self._wake.clear()
            self.checkpoint()
            time.sleep(PAUSE_SECONDS)


_checkpointers: dict[Engine, Checkpointer] = {}
_lock = threading.Lock()


def checkpointer_for(engine: Engine) -> Checkpointer | None:
    """The process's checkpointer for a SQLite file database; None for any other."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    with _lock:
        found = _checkpointers.get(engine)
        if found is None:
            found = _checkpointers[engine] = Checkpointer(engine)
        return found
