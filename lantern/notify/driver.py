"""The outbox's one driver: every lane (Slack, webhooks) delivered under the same guarantees.

For each due row of a lane, oldest first: the lane says what it owes (or that the
workspace's policy holds it, or that it waits for another row). A row whose earlier
outcome is unknown (`sending`) is first looked for through the channel; found, it is
recorded as sent, never sent again. Otherwise the row is claimed (`sending`, committed)
before the channel is called, and recorded (`sent`) after. The same delivery id (the
row's id) goes with every try, so a channel that cannot look (a webhook) is sent again
with an id its receiver has seen.

What the channel raises decides what comes next (`notify.base`): a refused message is
failed; a rate limit pauses the lane until the time it was given; a fault a person must
fix pauses it and says so; anything else is retried with backoff (1, 2, 4 … minutes, at
most an hour) and given up after MAX_ATTEMPTS. A fault stops the lane's turn, never
another lane's: `notify.outbox` runs each lane on its own thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Engine

from lantern.db.session import session_scope
from lantern.notify.base import (
    Channel,
    Lane,
    PermanentNotifyError,
    RateLimited,
    SentMessage,
    TransientNotifyError,
    UnknownOutcome,
    WorkspaceNotifyError,
)
from lantern.notify.models import DeliveryState
from lantern.notify.policy import MAX_ATTEMPTS, UNDELIVERED, FlushResult, backoff

StepT = TypeVar("StepT")
RowT = TypeVar("RowT", bound=DeliveryState)

# Rows one lane sends in one flush at most; the rest go at the next one.
MAX_ROWS_PER_FLUSH = 500

AfterSend = Callable[[DeliveryState], None]


def drive(
    engine: Engine,
    lane: Lane[StepT, RowT],
    *,
    now: datetime,
    after_send: AfterSend | None = None,
) -> FlushResult:
    """Deliver the lane's due rows until done or until its channel says stop."""
    result = FlushResult()
    channel = lane.open(now)
    if channel is None:
        return result
    try:
        cursor = 0
        for _ in range(MAX_ROWS_PER_FLUSH):
            with session_scope(engine) as session:
                row_id = lane.next_due(session, after=cursor, now=now)
            if row_id is None:
                break
            cursor = row_id
            if not _step(engine, lane, channel, row_id, now, after_send, result):
                break
    finally:
        channel.close()
    return result


def _step(
    engine: Engine,
    lane: Lane[StepT, RowT],
    channel: Channel[StepT],
    row_id: int,
    now: datetime,
    after_send: AfterSend | None,
    result: FlushResult,
) -> bool:
    """Reconcile or send one row; False when the lane should wait for a later flush."""
    started = time.perf_counter()
    claimed = False
    try:
        with session_scope(engine) as session:
            row = session.get(lane.model, row_id)
            if row is None or row.status not in UNDELIVERED or row.next_attempt_at > now:
                return True
            step = lane.prepare(session, row, now)
            uncertain, attempts, ids = row.status == "sending", row.attempts, lane.describe(row)
        if step in ("held", "skipped", "failed"):
            setattr(result, str(step), getattr(result, str(step)) + 1)
            return True
        if step == "waiting":
            return True
        assert not isinstance(step, str)
        if uncertain:
            found = channel.find(step)
            if found is not None:
                _record(engine, lane, row_id, found, now)
                result.reconciled += 1
                _log_delivered(lane, row_id, ids, "reconciled", attempts, started)
                return True
        with session_scope(engine) as session:
            row = session.get(lane.model, row_id)
            assert row is not None
            row.status, row.sending_since = "sending", now
            row.attempts += 1
            attempts = row.attempts
        claimed = True
        where = channel.deliver(step)
        if after_send is not None:
            with session_scope(engine) as session:
                stored = session.get(lane.model, row_id)
                assert stored is not None
                after_send(stored)
        _record(engine, lane, row_id, where, now)
        result.sent += 1
        _log_delivered(lane, row_id, ids, "sent", attempts, started)
        return True
    except RateLimited as exc:
        until = now + timedelta(seconds=exc.retry_after)
        back = "pending" if claimed else None
        _retry_later(
            engine, lane, row_id, str(exc), now, until=until, status=back, tried=not claimed
        )
        lane.pause(until, None)
        result.retrying += 1
        return False
    except UnknownOutcome as exc:
        _retry_later(engine, lane, row_id, str(exc), now, status="sending")
        result.retrying += 1
        return False
    except WorkspaceNotifyError as exc:
        status = "pending" if claimed else None
        until = _retry_later(engine, lane, row_id, str(exc), now, status=status, give_up=False)
        lane.pause(until, str(exc))
        result.retrying += 1
        return False
    except PermanentNotifyError as exc:
        _fail(engine, lane, row_id, str(exc))
        result.failed += 1
        return True
    except TransientNotifyError as exc:
        back = "pending" if claimed else None
        _retry_later(engine, lane, row_id, str(exc), now, status=back, tried=not claimed)
        result.retrying += 1
        return False
    except Exception as exc:  # a row that cannot be built or read never stops the others
        lane.log.exception("%s %s could not be delivered", lane.noun, row_id)
        _retry_later(
            engine,
            lane,
            row_id,
            f"Lantern could not prepare this notification ({exc.__class__.__name__}: {exc}); "
            "will retry",
            now,
            status="sending" if claimed else None,
            tried=not claimed,
        )
        result.retrying += 1
        return True


def _log_delivered(
    lane: Lane[StepT, RowT], row_id: int, ids: str, outcome: str, attempts: int, started: float
) -> None:
    """One line per row delivered: its ids, how, and how long it took.

    `outcome` is `sent`, or `reconciled` when an earlier try was found delivered.
    """
    lane.log.info(
        "%s delivered: id=%d %s outcome=%s attempts=%d ms=%.1f",
        lane.noun,
        row_id,
        ids,
        outcome,
        attempts,
        (time.perf_counter() - started) * 1000,
    )


def _record(
    engine: Engine, lane: Lane[StepT, RowT], row_id: int, where: SentMessage, now: datetime
) -> None:
    """The row landed: record it, and let the lane record what follows."""
    with session_scope(engine) as session:
        row = session.get(lane.model, row_id)
        assert row is not None
        row.status, row.sent_at, row.error = "sent", now, None
        lane.sent(session, row, where, now)


def _fail(engine: Engine, lane: Lane[StepT, RowT], row_id: int, error: str) -> None:
    with session_scope(engine) as session:
        row = session.get(lane.model, row_id)
        assert row is not None
        row.status, row.error = "failed", error
    lane.log.warning("%s %s failed: %s", lane.noun, row_id, error)


def _retry_later(
    engine: Engine,
    lane: Lane[StepT, RowT],
    row_id: int,
    error: str,
    now: datetime,
    *,
    until: datetime | None = None,
    status: str | None = None,
    give_up: bool = True,
    tried: bool = False,
) -> datetime:
    """Write the reason, and when to try again; past MAX_ATTEMPTS the row is given up.

    `tried` counts a try that failed before any send (a reconcile, the message's
    preparation), so that its backoff grows too.
    """
    with session_scope(engine) as session:
        row = session.get(lane.model, row_id)
        assert row is not None
        row.error = error
        if tried:
            row.attempts += 1
        if status is not None:
            row.status = status
        row.next_attempt_at = until or now + backoff(row.attempts)
        if give_up and row.attempts >= MAX_ATTEMPTS:
            row.status = "failed"
            lane.log.warning(
                "%s %s gave up after %s tries: %s", lane.noun, row_id, row.attempts, error
            )
        else:
            lane.log.info(
                "%s %s will be retried at %s: %s", lane.noun, row_id, row.next_attempt_at, error
            )
        return row.next_attempt_at
