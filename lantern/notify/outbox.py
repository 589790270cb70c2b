"""The outbox: each notification reaches each channel exactly once, under every fault.

A row is one step about an insight: an alert (its chart uploaded just before and shown in
it; shared into its thread instead, as a `chart` row, only if Slack refused the image),
an update, an incident's follow-up (the story it told is now an incident: a reply that
also rewrites the alert) or a resolution (replies in that thread), a workspace's daily
`digest` (`notify.digest`) or the `summary` of its quiet hours (`notify.summary`). The
workspace's policy may hold a row: for its quiet hours (`next_attempt_at` moves to their
end), for their summary, or, a low-severity alert, for the digest. The rows about an
insight are also fanned out to the workspace's webhooks (`notify.webhooks`), a delivery
each.

One driver, many lanes. A lane is one ordered queue to one destination: a workspace's
Slack channel (`notify.delivery.SlackLane`, its rows in `notifications`) or one webhook
(`notify.webhooks.WebhookLane`, its rows in `webhook_deliveries`). Both implement the
seam of `notify.base` (a `Lane` and its `Channel`), and `notify.driver` drives them all
the same way; each lane runs on its own thread, so one stuck destination delays no other.

Exactly once. A row is claimed (`sending`, committed) before the channel is called and
recorded (`sent`) after it, and its id goes with every try (Slack: in the message's
metadata and the chart's file name; a webhook: `X-Lantern-Delivery`). When the outcome
is unknown - a 5xx, no answer in time, or the process died between the call and the
record - the row stays `sending`, and before anything is sent again the channel is asked:
Slack's is read (`conversations.history` for alerts, `conversations.replies` of the
alert's thread for replies and charts): found, the row is recorded as sent; not found, it
is sent. A webhook's receiver cannot be asked: it gets the delivery again with the same id.
slack-sdk's own retries are off (see `notify.slack`).

Every failure stays with its row or its lane: a reconcile that fails, a revoked token, a
missing channel, a rate limit (`Retry-After` becomes the workspace's `paused_until`, or
the webhook delivery's next attempt; nobody sleeps), a timeout. The row keeps the reason
in `error` and a `next_attempt_at` with backoff; a workspace's Slack connection keeps what
needs a person in `error`; Settings and `GET /api/v1/slack` and `/api/v1/webhooks` show
them while they last. A row is given up (`failed`) only when the channel refuses that
message itself, or after MAX_ATTEMPTS; reconnecting Slack puts a workspace's recent failed
rows back in line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import Engine, exists, or_, select, update
from sqlalchemy.orm import Session

from lantern.config import Settings
from lantern.db.session import session_scope
from lantern.notify.base import Notifier
from lantern.notify.delivery import SlackLane
from lantern.notify.driver import AfterSend, drive
from lantern.notify.models import Notification, SlackConnection, Webhook
from lantern.notify.policy import UNDELIVERED, FlushResult, NotifierFactory
from lantern.notify.webhooks import WebhookFactory, WebhookLane, new_webhook_notifier

log = logging.getLogger(__name__)

# Rows of a workspace without Slack wait this long for it to be connected.
HOLD = timedelta(days=7)
# Lanes flushed at once; each has its own thread, so one slow destination delays no other.
LANE_THREADS = 8
NOT_CONNECTED = "Slack is not connected for this workspace: waiting for it to be connected"


def _notifier(token: str, settings: Settings) -> Notifier:
    from lantern.notify.slack import SlackNotifier

    return SlackNotifier(token, base_url=settings.slack_base_url)


def _hold_unconnected(engine: Engine, now: datetime) -> int:
    """Rows of workspaces without Slack wait, saying so; past HOLD they are dropped."""
    connected = exists().where(SlackConnection.workspace_id == Notification.workspace_id)
    with session_scope(engine) as session:
        session.execute(
            update(Notification)
            .where(
                Notification.status.in_(UNDELIVERED),
                ~connected,
                Notification.error.is_(None),
            )
            .values(error=NOT_CONNECTED)
        )
        dropped = session.execute(
            update(Notification)
            .where(
                Notification.status.in_(UNDELIVERED),
                ~connected,
                Notification.created_at < now - HOLD,
            )
            .values(status="skipped", error="not sent: Slack was not connected within a week")
        )
    return int(getattr(dropped, "rowcount", 0) or 0)


def _due_workspaces(engine: Engine, now: datetime) -> list[int]:
    awake = or_(SlackConnection.paused_until.is_(None), SlackConnection.paused_until <= now)
    with session_scope(engine) as session:
        return list(
            session.scalars(
                select(Notification.workspace_id)
                .join(SlackConnection, SlackConnection.workspace_id == Notification.workspace_id)
                .where(
                    or_(
                        Notification.status.in_(UNDELIVERED)
                        & (Notification.next_attempt_at <= now),
                        # its digest, or the summary of its quiet hours, may be due
                        Notification.status.in_(("digest", "summary")),
                    ),
                    awake,
                )
                .distinct()
                .order_by(Notification.workspace_id)
            ).all()
        )


def _webhooks(engine: Engine) -> list[int]:
    with session_scope(engine) as session:
        return list(session.scalars(select(Webhook.id).order_by(Webhook.id)).all())


def flush_outbox(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    notifier_factory: NotifierFactory = _notifier,
    webhook_factory: WebhookFactory = new_webhook_notifier,
    after_send: AfterSend | None = None,
) -> FlushResult:
    """Deliver every due row of every lane, each on its own thread.

    `after_send` is a test hook: it runs between a send and its record (a crash there).
    """
    result = FlushResult(skipped=_hold_unconnected(engine, now))
    lanes: list[tuple[str, Callable[[], FlushResult]]] = []
    for workspace_id in _due_workspaces(engine, now):
        slack = SlackLane(
            engine, settings, workspace_id=workspace_id, notifier_factory=notifier_factory
        )
        lanes.append((slack.name, partial(drive, engine, slack, now=now, after_send=after_send)))
    for webhook_id in _webhooks(engine):
        hook = WebhookLane(engine, settings, webhook_id=webhook_id, factory=webhook_factory)
        lanes.append((hook.name, partial(drive, engine, hook, now=now, after_send=after_send)))

    def one(lane: tuple[str, Callable[[], FlushResult]]) -> FlushResult:
        name, flush = lane
        try:
            return flush()
        except Exception:  # never lets one lane stop the others
            log.exception("flushing the outbox's lane %s failed", name)
            return FlushResult()

    if len(lanes) <= 1:
        outcomes = [one(lane) for lane in lanes]
    else:
        with ThreadPoolExecutor(
            max_workers=min(LANE_THREADS, len(lanes)), thread_name_prefix="outbox"
        ) as pool:
            outcomes = list(pool.map(one, lanes))
    for outcome in outcomes:
        result.add(outcome)
    return result


def requeue_after_reconnect(session: Session, *, workspace_id: int, now: datetime) -> int:
    """Put a workspace's undelivered and recently failed rows back in line, due now.

    A row that ever reached Slack's door goes back as `sending`, so it is reconciled
    before it can be posted again.
    """
    session.execute(
        update(SlackConnection)
        .where(SlackConnection.workspace_id == workspace_id)
        .values(paused_until=None, error=None)
    )
    rows = session.scalars(
        select(Notification).where(
            Notification.workspace_id == workspace_id,
            or_(
                Notification.status.in_(UNDELIVERED),
                (Notification.status == "failed") & (Notification.created_at >= now - HOLD),
            ),
        )
    ).all()
    for row in rows:
        if row.status == "failed":
            row.status = "sending" if row.attempts else "pending"
        row.attempts = 0  # a fresh start: the backoff begins again at a minute
        if row.error == NOT_CONNECTED:
            row.error = None
        row.next_attempt_at = now
    session.flush()
    return len(rows)
