"""Webhooks: every notification as a signed JSON POST, through the outbox, to any receiver.

A team routes Lantern to Teams, PagerDuty or its own bot by adding a webhook (a URL; Lantern
makes the secret and shows it once). Each outbox row about an insight (its alert, a louder
update, its story now an incident, its end) becomes one delivery per webhook of the
workspace, fanned out when the outbox is flushed. Each webhook is a lane of the outbox
(`WebhookLane`), delivered by its one driver (`notify.driver`) as Slack is, under the
same guarantees.

The request. `POST <url>` with `Content-Type: application/json` and

    X-Lantern-Event: insight.opened | insight.updated | insight.resolved | insight.accepted | test
    X-Lantern-Delivery: <the delivery id>
    X-Lantern-Timestamp: <seconds since the epoch>
    X-Lantern-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>

The body is `{"delivery_id", "event", "insight": {...}}` (`payload`). A receiver checks the
signature over the exact bytes received and that the timestamp is recent, then keeps the
delivery ids it has acted on.

Exactly once. A delivery is claimed (`sending`) before its POST and recorded (`sent`)
when the receiver answers 2xx. An answer that is lost (a timeout, a dropped connection,
the process dying after the POST) leaves it `sending`; a receiver cannot be asked whether
it acted, so it is sent again with the same delivery id, and a receiver that ignores an
id it has already processed acts on each notification exactly once. A failure (no
answer, any other status) is retried with the outbox's backoff (1, 2, 4 … minutes, at most
an hour; `Retry-After` on a 429 is honoured) and given up after the outbox's MAX_ATTEMPTS;
while one delivery of a webhook waits, the webhook's later ones wait behind it, in order.
Each webhook is a lane on its own thread: one slow receiver delays no other, nor Slack.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from lantern.config import Settings
from lantern.db.session import session_scope
from lantern.errors import BadRequest, NotFound, Unreachable
from lantern.notify.base import (
    NotifyError,
    RateLimited,
    SentMessage,
    TransientNotifyError,
    UnknownOutcome,
)
from lantern.notify.models import Notification, Webhook, WebhookDelivery
from lantern.notify.policy import UNDELIVERED
from lantern.notify.types import InsightMessage

log = logging.getLogger(__name__)

PURPOSES = ("alert", "update", "incident", "resolution")
MAX_WEBHOOKS = 10  # per workspace
TIMEOUT_SECONDS = 10.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Lantern-Signature value: HMAC-SHA256 of "<timestamp>.<body>" with the secret."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def event_of(purpose: str, status: str) -> str:
    """The event name of an outbox row about an insight in `status`."""
    if purpose == "alert":
        return "insight.opened"
    if purpose in ("update", "incident"):  # louder, or its story is now an incident
        return "insight.updated"
    return "insight.accepted" if status == "accepted" else "insight.resolved"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _incident(message: InsightMessage) -> dict[str, Any] | None:
    """The source- or workspace-wide incident the insight leads (`insights.incidents`), or
    None; `sources` gives each source's part, the leader's first."""
    incident = message.incident
    if incident is None:
        return None
    return {
        "scope": incident.scope,
        "metrics": incident.metrics,
        "of": incident.of,
        "since": _iso(incident.since),
        "ended_at": _iso(incident.ended_at),
        "names": list(incident.names),
        "text": incident.text,
        "sources": [
            {
                "source": part.source_name,
                "metrics": part.metrics,
                "of": part.of,
                "names": list(part.names),
            }
            for part in incident.parts
        ],
    }


def payload(message: InsightMessage, *, event: str, delivery_id: int) -> dict[str, Any]:
    """The JSON body of a delivery: the insight as the alert tells it."""
    span = message.span
    return {
        "delivery_id": delivery_id,
        "event": event,
        "insight": {
            "id": message.insight_id,
            "url": message.dashboard_url,
            "metric": message.metric_name,
            "metric_kind": message.metric_kind,
            "measure": message.measure,
            "source": message.source_name,
            "kind": message.kind,
            "direction": message.direction,
            "relative_change": message.relative_change,
            "status": message.status,
            "severity": message.severity,
            "score": message.score,
            "start": _iso(span.start if span is not None else message.start),
            "detected_at": _iso(message.detected_at),
            "ended_at": _iso(message.ended_at),
            "observed": span.observed if span is not None else message.observed,
            "expected": span.expected if span is not None else message.expected,
            "lower": span.lower if span is not None else message.lower,
            "upper": span.upper if span is not None else message.upper,
            "hours": span.hours if span is not None else 1,
            "causes": [
                {
                    "flag": c.flag_key,
                    "old_version": c.old_version,
                    "new_version": c.new_version,
                    "changed_at": _iso(c.changed_at),
                }
                for c in message.causes
            ],
            "related": list(message.related),
            "root_cause": message.root_cause,
            "incident": _incident(message),
            "tracking_break": message.tracking_break,
            "owner": message.owner,
            "note": message.note,
        },
    }


class WebhookNotifier:
    """Posts signed JSON to one webhook; errors say what the outbox may do next."""

    def __init__(self, url: str, secret: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url, self.secret = url, secret
        self.client = httpx.Client(timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def post(self, body: dict[str, Any], *, event: str, delivery_id: str) -> None:
        """One POST; returns when the receiver answered 2xx.

        Not reached (refused, no route) is worth a retry; sent without an answer (a
        timeout, a dropped connection) is an unknown outcome: the receiver may have acted.
        """
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Lantern-Webhook",
            "X-Lantern-Event": event,
            "X-Lantern-Delivery": delivery_id,
            "X-Lantern-Timestamp": str(stamp),
            "X-Lantern-Signature": sign(self.secret, stamp, raw),
        }
        try:
            answer = self.client.post(self.url, content=raw, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
            reason = str(exc) or exc.__class__.__name__
            raise TransientNotifyError(
                f"the webhook could not be reached ({reason}); will retry",
                reason=f"the webhook could not be reached: {reason}",
            ) from None
        except httpx.HTTPError as exc:
            reason = str(exc) or exc.__class__.__name__
            raise UnknownOutcome(
                f"the webhook did not answer ({reason}); will send it again with the same "
                "delivery id",
                reason=f"the webhook did not answer: {reason}",
            ) from None
        if 200 <= answer.status_code < 300:
            return
        if answer.status_code == 429:
            wait = answer.headers.get("retry-after", "")
            seconds = float(wait) if wait.isdigit() else 60.0
            raise RateLimited(f"the webhook asked Lantern to wait {seconds:.0f} s", seconds)
        raise TransientNotifyError(
            f"the webhook answered {answer.status_code}; will retry",
            reason=f"the webhook answered {answer.status_code}",
        )


WebhookFactory = Callable[[str, str], WebhookNotifier]


def new_webhook_notifier(url: str, secret: str) -> WebhookNotifier:
    return WebhookNotifier(url, secret)


def _fan_out(session: Session, webhook: Webhook, now: datetime) -> None:
    """A delivery for every outbox row about an insight queued since the webhook's last turn."""
    rows = session.execute(
        select(Notification.id, Notification.purpose, Notification.status, Notification.insight_id)
        .where(
            Notification.workspace_id == webhook.workspace_id,
            Notification.id > webhook.cursor,  # set to the newest row when it was added
        )
        .order_by(Notification.id)
        .limit(5000)
    ).all()
    told: set[int] = set()  # insights whose alert this webhook is owed, in this batch
    for row_id, purpose, status, insight_id in rows:
        # history's alerts are never sent (recorded as skipped); nor what follows them
        wanted = purpose == "alert" and status != "skipped"
        if purpose in PURPOSES[1:]:
            wanted = insight_id in told or _alert_owed(session, webhook.id, insight_id)
        if wanted:
            if purpose == "alert":
                told.add(insight_id)
            session.add(
                WebhookDelivery(
                    webhook_id=webhook.id,
                    notification_id=row_id,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        webhook.cursor = row_id
    session.flush()


def _alert_owed(session: Session, webhook_id: int, insight_id: int) -> bool:
    return (
        session.scalar(
            select(WebhookDelivery.id)
            .join(Notification, Notification.id == WebhookDelivery.notification_id)
            .where(
                WebhookDelivery.webhook_id == webhook_id,
                Notification.insight_id == insight_id,
                Notification.purpose == "alert",
            )
            .limit(1)
        )
        is not None
    )


@dataclass(frozen=True)
class WebhookStep:
    """One delivery owed to a webhook: its id, its event and its JSON body."""

    delivery_id: int
    event: str
    body: dict[str, Any]


class WebhookChannel:
    """One webhook, as the driver delivers to it."""

    def __init__(self, notifier: WebhookNotifier) -> None:
        self.notifier = notifier

    def close(self) -> None:
        self.notifier.close()

    def find(self, step: WebhookStep) -> SentMessage | None:
        """A receiver cannot be asked: the delivery is sent again, with the same id."""
        return None

    def deliver(self, step: WebhookStep) -> SentMessage:
        """One signed POST; it landed when the receiver answered 2xx."""
        self.notifier.post(step.body, event=step.event, delivery_id=str(step.delivery_id))
        return SentMessage(channel=self.notifier.url, ts=str(step.delivery_id))


class WebhookLane:
    """One webhook's deliveries, strictly in order: a waiting one holds the later ones."""

    noun = "webhook"  # its log lines: "webhook delivered: id=31 webhook=2 notification=17 …"
    log = log
    model = WebhookDelivery

    def __init__(
        self, engine: Engine, settings: Settings, *, webhook_id: int, factory: WebhookFactory
    ) -> None:
        self.engine, self.settings, self.webhook_id = engine, settings, webhook_id
        self.factory = factory
        self.name = f"webhook {webhook_id}"

    def open(self, now: datetime) -> WebhookChannel | None:
        """Fan out what was queued since the last flush; the channel if anything is due."""
        with session_scope(self.engine) as session:
            webhook = session.get(Webhook, self.webhook_id)
            if webhook is None:
                return None
            _fan_out(session, webhook, now)
            if self.next_due(session, after=0, now=now) is None:
                return None
            url, secret = webhook.url, webhook.secret
        return WebhookChannel(self.factory(url, secret))

    def next_due(self, session: Session, *, after: int, now: datetime) -> int | None:
        """The oldest undelivered delivery after `after`, if it is due."""
        first = session.scalars(
            select(WebhookDelivery)
            .where(
                WebhookDelivery.webhook_id == self.webhook_id,
                WebhookDelivery.id > after,
                WebhookDelivery.status.in_(UNDELIVERED),
            )
            .order_by(WebhookDelivery.id)
            .limit(1)
        ).first()
        if first is None or first.next_attempt_at > now:
            return None  # in order: a waiting delivery holds the later ones behind it
        return first.id

    def describe(self, row: WebhookDelivery) -> str:
        """The delivery's ids for its log lines."""
        return f"webhook={row.webhook_id} notification={row.notification_id}"

    def prepare(self, session: Session, row: WebhookDelivery, now: datetime) -> WebhookStep:
        """The insight as the notification tells it now, as the JSON body of its event."""
        from lantern.insights.models import Insight
        from lantern.notify.message import build_message

        notification = session.get(Notification, row.notification_id)
        assert notification is not None
        insight = session.get(Insight, notification.insight_id)
        assert insight is not None
        message, _ = build_message(session, notification, self.settings, with_chart=False)
        event = event_of(notification.purpose, insight.status)
        return WebhookStep(row.id, event, payload(message, event=event, delivery_id=row.id))

    def sent(
        self, session: Session, row: WebhookDelivery, where: SentMessage, now: datetime
    ) -> None:
        pass  # nothing follows a delivery

    def pause(self, until: datetime, error: str | None) -> None:
        pass  # the delivery waits until then, and holds the later ones behind it


# --- the workspace's webhooks, for Settings and the API ----------------------------------


def _check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest("a webhook URL starts with https:// (or http://) and names a host")
    if any(ch.isspace() for ch in url):
        raise BadRequest("a webhook URL has no spaces")
    return url


def _counts(session: Session, webhook_id: int) -> dict[str, Any]:
    rows = session.execute(
        select(WebhookDelivery.status, func.count())
        .where(WebhookDelivery.webhook_id == webhook_id)
        .group_by(WebhookDelivery.status)
    ).all()
    counts = {status: int(n) for status, n in rows}
    last_error = session.scalars(
        select(WebhookDelivery.error)
        .where(
            WebhookDelivery.webhook_id == webhook_id,
            WebhookDelivery.error.is_not(None),
            WebhookDelivery.status.in_((*UNDELIVERED, "failed")),
        )
        .order_by(WebhookDelivery.id.desc())
        .limit(1)
    ).first()
    return {
        "sent": counts.get("sent", 0),
        "waiting": counts.get("pending", 0) + counts.get("sending", 0),
        "failed": counts.get("failed", 0),
        "last_error": last_error,
    }


def describe(session: Session, webhook: Webhook) -> dict[str, Any]:
    """A webhook as Settings shows it: never its secret."""
    return {
        "id": webhook.id,
        "url": webhook.url,
        "created_at": webhook.created_at,
        **_counts(session, webhook.id),
    }


def list_webhooks(session: Session, *, workspace_id: int) -> list[dict[str, Any]]:
    """The workspace's webhooks, oldest first, with how their deliveries went."""
    hooks = session.scalars(
        select(Webhook).where(Webhook.workspace_id == workspace_id).order_by(Webhook.id)
    ).all()
    return [describe(session, hook) for hook in hooks]


def add_webhook(session: Session, *, workspace_id: int, url: str, now: datetime) -> dict[str, Any]:
    """A new webhook with a new secret, shown this once; it receives what is queued from now."""
    count = session.scalar(
        select(func.count()).select_from(Webhook).where(Webhook.workspace_id == workspace_id)
    )
    if (count or 0) >= MAX_WEBHOOKS:
        raise BadRequest(f"a workspace has at most {MAX_WEBHOOKS} webhooks: remove one first")
    cursor = session.scalar(select(func.max(Notification.id))) or 0
    hook = Webhook(
        workspace_id=workspace_id,
        url=_check_url(url),
        secret="whsec_" + secrets.token_urlsafe(32),
        cursor=cursor,
        created_at=now,
    )
    session.add(hook)
    session.flush()
    return {**describe(session, hook), "secret": hook.secret}


def get_webhook(session: Session, *, workspace_id: int, webhook_id: int) -> Webhook:
    """One of the workspace's webhooks, or NotFound."""
    hook = session.get(Webhook, webhook_id)
    if hook is None or hook.workspace_id != workspace_id:
        raise NotFound(f"no webhook {webhook_id} in this workspace")
    return hook


def remove_webhook(session: Session, *, workspace_id: int, webhook_id: int) -> None:
    """Stop sending to a webhook; what it was owed is dropped with it."""
    session.delete(get_webhook(session, workspace_id=workspace_id, webhook_id=webhook_id))
    session.flush()


def send_webhook_test(
    session: Session,
    *,
    workspace_id: int,
    webhook_id: int,
    factory: WebhookFactory = new_webhook_notifier,
) -> None:
    """Send a signed `test` event now; 502 saying what the receiver did if it was not 2xx."""
    hook = get_webhook(session, workspace_id=workspace_id, webhook_id=webhook_id)
    notifier = factory(hook.url, hook.secret)
    delivery = f"test-{secrets.token_hex(8)}"
    try:
        notifier.post(
            {"delivery_id": delivery, "event": "test", "text": "Lantern can reach this webhook."},
            event="test",
            delivery_id=delivery,
        )
    except NotifyError as exc:
        raise Unreachable(
            f"the test was not delivered: {exc.reason}", error="webhook_unreachable"
        ) from None
    finally:
        notifier.close()
