"""Group commit: one thread per database commits whatever requests queued meanwhile, together.

Ingest's cost is mostly per transaction (the commit, the B-tree pages it rewrites, the
round trips), not per event. While one group commits, the next requests queue; the
thread then takes them all (up to `max_events`) into the next transaction. Under light
load a group is one request and nothing waits; under heavy load groups grow by themselves.
Each request still gets its own answer, sent only after its group is committed. Requests
from the event loop (`submit_async`) get their answers in one call onto the loop per
group, not a wake-up of the loop per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from lantern.breakdowns.service import specs, value_ids
from lantern.db.checkpoint import checkpointer_for
from lantern.errors import Unauthorized
from lantern.ingest.service import source_exists, store
from lantern.ingest.types import IngestResult, Judged
from lantern.metrics.service import metric_ids
from lantern.workspaces.service import source_keys

log = logging.getLogger(__name__)

# Events per transaction at most: bounds a group's latency and its statements' sizes.
MAX_GROUP_EVENTS = 5000
# A writer thread with nothing to do for this long ends; the next request starts another.
IDLE_SECONDS = 30.0


@dataclass(slots=True)
class _Item:
    judged: Judged
    answer: Future[IngestResult] | asyncio.Future[IngestResult]
    loop: asyncio.AbstractEventLoop | None = None  # the loop an asyncio answer belongs to

    def start(self) -> bool:
        """Whether the caller still waits: one that gave up before its turn is dropped."""
        if self.loop is None:
            assert isinstance(self.answer, Future)
            return self.answer.set_running_or_notify_cancel()
        # Read from this thread; a cancel that lands after this look finds the request
        # running, as a thread's future would.
        return not self.answer.cancelled()


class GroupWriter:
    """Commits requests for one engine on one thread, as many per transaction as are waiting."""

    def __init__(self, engine: Engine, *, max_events: int = MAX_GROUP_EVENTS) -> None:
        self.engine = engine
        self.max_events = max_events
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._checkpointer = checkpointer_for(engine)

    def submit(self, judged: Judged) -> Future[IngestResult]:
        """Queue a request; the future resolves once its increments are committed."""
        answer: Future[IngestResult] = Future()
        self._put(_Item(judged, answer))
        return answer

    def submit_async(self, judged: Judged) -> asyncio.Future[IngestResult]:
        """`submit` for a caller on the running event loop: await the answer there."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[IngestResult] = loop.create_future()
        self._put(_Item(judged, answer, loop))
        return answer

    def _put(self, item: _Item) -> None:
        with self._lock:
            self._queue.put(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    # submit() queues under this lock, so nothing can slip in unseen.
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            group, events, item = [], 0, first
            while True:
                # A request whose caller gave up before its turn is dropped unanswered, as
                # if never sent; once running, its answer can no longer be cancelled.
                if item.start():
                    group.append(item)
                    events += len(item.judged.verdicts)
                if events >= self.max_events:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if group:
                self._commit(group)

    def _commit(self, group: list[_Item]) -> None:
        started = time.perf_counter()
        requests = [item.judged for item in group]
        outcomes = store_together(self.engine, requests)
        if self._checkpointer is not None:
            self._checkpointer.nudge()
        on_loops: dict[asyncio.AbstractEventLoop, list[tuple[_Item, Any]]] = {}
        for item, outcome in zip(group, outcomes, strict=True):
            if item.loop is not None:
                on_loops.setdefault(item.loop, []).append((item, outcome))
            elif isinstance(outcome, Exception):
                item.answer.set_exception(outcome)
            else:
                item.answer.set_result(outcome)
        for loop, answers in on_loops.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody left to answer
                loop.call_soon_threadsafe(_answer_all, answers)
        if log.isEnabledFor(logging.DEBUG):
            _log_group(requests, outcomes, time.perf_counter() - started)


def _answer_all(answers: list[tuple[_Item, IngestResult | Exception]]) -> None:
    """On the event loop: settle each waiting request's answer (unless it gave up)."""
    for item, outcome in answers:
        if item.answer.done():
            continue
        if isinstance(outcome, Exception):
            item.answer.set_exception(outcome)
        else:
            item.answer.set_result(outcome)


def _log_group(
    requests: list[Judged], outcomes: list[IngestResult | Exception], seconds: float
) -> None:
    """One line per group commit: how many requests and events, what became of them, how long."""
    stored = [o for o in outcomes if not isinstance(o, Exception)]
    log.debug(
        "ingest group written: requests=%d failed=%d sources=%s events=%d accepted=%d "
        "duplicates=%d rejected=%d over_cap=%d ms=%.1f",
        len(requests),
        len(outcomes) - len(stored),
        ",".join(str(s) for s in sorted({r.source_id for r in requests})),
        sum(len(r.verdicts) for r in requests),
        sum(o.accepted for o in stored),
        sum(o.duplicates for o in stored),
        sum(len(o.rejected) for o in stored),
        sum(o.over_cap for o in stored),
        seconds * 1000,
    )


def store_together(engine: Engine, requests: list[Judged]) -> list[IngestResult | Exception]:
    """Store requests in one transaction; if it fails, each alone, so a failure stays its own."""
    try:
        return list(store(engine, requests=requests))
    except Exception as exc:
        if len(requests) == 1:
            return [_store_again(engine, requests[0], exc)]
        # One request's rows may be what failed (its source deleted meanwhile, say).
        log.info("%d ingest requests failed together (%s); storing each alone", len(requests), exc)
        return [outcome for request in requests for outcome in store_together(engine, [request])]


def _store_again(engine: Engine, request: Judged, exc: Exception) -> IngestResult | Exception:
    """What a request that failed alone gets: 401 if its source is gone, else one more try.

    A source deleted by another process leaves its key and metric ids in this one's caches
    for a while; its rows then break a foreign key (as do the value ids of a breakdown
    dimension another process removed or refused). The key no longer exists: that is a
    401, which clients do not retry, never a 5xx, which they retry forever. If the source
    still exists, a cached metric id was stale (SQLite may give a deleted source's id to a
    new one): the caches are dropped and the request stored once more.
    """
    if not isinstance(exc, IntegrityError):
        return exc
    source_keys.clear()
    metric_ids.clear()
    value_ids.clear()
    specs.clear()
    # Nothing may escape: the writer thread must live to answer the next requests.
    try:
        if not source_exists(engine, source_id=request.source_id):
            return Unauthorized(
                "this API key's source was deleted: create a source and send with its key",
                error="invalid_key",
            )
        return store(engine, requests=[request])[0]
    except Exception as again:
        return again


_writers: dict[Engine, GroupWriter] = {}
_writers_lock = threading.Lock()


def writer_for(engine: Engine) -> GroupWriter:
    """The process's group writer for `engine`."""
    with _writers_lock:
        writer = _writers.get(engine)
        if writer is None:
            writer = _writers[engine] = GroupWriter(engine)
        return writer
