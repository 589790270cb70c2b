"""A button clicked on an alert in Slack does what the same click in the dashboard does.

The request is checked before anything in it is read (`notify.interactivity.signed_with`);
then the click is tied to a workspace by the message it was made on: the alert this
server posted to that channel with that ts, whose workspace's Slack connection is the
clicker's Slack team and is checked by the secret that signed the request. A click that
fails any of these changes nothing. The action itself is the dashboard's own service call
(`give_feedback`, `silence_metric_of`); the click is kept (`SlackAction`), and the alert
is rewritten in place to say who did what.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from lantern.config import Settings
from lantern.dashboard.feed import give_feedback, silence_metric_of
from lantern.db.session import session_scope
from lantern.errors import BadRequest, Forbidden
from lantern.notify.base import NotifyError
from lantern.notify.delivery import in_summary
from lantern.notify.interactivity import signing_secret
from lantern.notify.message import build_message
from lantern.notify.models import Notification, SlackAction, SlackConnection
from lantern.notify.slack import SlackNotifier
from lantern.notify.types import BUTTONS

log = logging.getLogger(__name__)

SNOOZES = {"snooze_day": timedelta(days=1), "snooze_week": timedelta(days=7)}


def candidate_secrets(session: Session, settings: Settings) -> list[str]:
    """Every secret a click may be signed with: Lantern's app's, and each pasted app's."""
    pasted = session.scalars(
        select(SlackConnection.signing_secret)
        .where(SlackConnection.method == "token", SlackConnection.signing_secret.is_not(None))
        .distinct()
    ).all()
    return [s for s in [settings.slack_signing_secret, *pasted] if s]


@dataclass(frozen=True)
class Click:
    """One of Lantern's buttons, clicked: what, on which message, by whom."""

    action: str  # a value of BUTTONS
    insight_id: int
    team_id: str
    user_id: str
    user_name: str | None
    channel: str
    message_ts: str


def _text(value: Any, name: str, *, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit or "\x00" in value:
        raise BadRequest(f"payload.{name}: expected a non-empty string")
    return value


def _object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def parse_click(body: bytes) -> Click | None:
    """The click in a signed interaction request; None when there is nothing to do.

    Slack sends `application/x-www-form-urlencoded` with one field, `payload`, holding
    JSON. Anything but a `block_actions` click on one of Lantern's buttons (the "Open in
    Lantern" link, other interaction types) is acknowledged and ignored.
    """
    try:
        form = parse_qs(body.decode("utf-8"), max_num_fields=20)
        payload = json.loads(form["payload"][-1])
    except (UnicodeDecodeError, KeyError, IndexError, ValueError):
        raise BadRequest(
            "expected a form with a `payload` field holding JSON, as Slack sends"
        ) from None
    if not isinstance(payload, dict):
        raise BadRequest("payload: expected a JSON object")
    if payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise BadRequest("payload.actions: expected a list of actions")
    action_id = actions[0].get("action_id")
    if action_id not in BUTTONS:
        return None
    value = actions[0].get("value")
    if not isinstance(value, str) or not value.isdigit() or len(value) > 10:
        raise BadRequest("payload.actions[0].value: expected the insight's id")
    team, user, container, channel = (
        _object(payload, key) for key in ("team", "user", "container", "channel")
    )
    name = user.get("username") or user.get("name")
    return Click(
        action=BUTTONS[action_id],
        insight_id=int(value),
        # the clicker's own team: in a channel shared between organisations, theirs
        team_id=_text(user.get("team_id") or team.get("id"), "user.team_id"),
        user_id=_text(user.get("id"), "user.id", limit=50),
        user_name=name if isinstance(name, str) and len(name) <= 200 else None,
        channel=_text(container.get("channel_id") or channel.get("id"), "container.channel_id"),
        message_ts=_text(container.get("message_ts"), "container.message_ts", limit=50),
    )


def apply_click(
    session: Session, *, click: Click, secret: str, settings: Settings, now: datetime
) -> int:
    """Do what the click asks, as the dashboard would; returns the alert's outbox row id.

    Forbidden (nothing changes) unless the message is an alert this server posted, to a
    workspace connected to the clicker's Slack team, whose app signed the request.
    """
    alert = session.scalars(
        select(Notification)
        .where(
            Notification.purpose == "alert",
            Notification.status == "sent",
            Notification.channel == click.channel,
            Notification.ts == click.message_ts,
        )
        .limit(1)
    ).first()
    if alert is None or in_summary(session, channel=click.channel, ts=click.message_ts):
        raise Forbidden("this message is not an alert Lantern posted: nothing was changed")
    connection = session.get(SlackConnection, alert.workspace_id)
    expected = signing_secret(connection, settings) if connection is not None else None
    if (
        connection is None
        or connection.team_id != click.team_id
        or expected is None
        or not hmac.compare_digest(expected, secret)
    ):
        raise Forbidden(
            "this click comes from a Slack team or app that is not connected to the "
            "alert's workspace: nothing was changed"
        )
    if click.insight_id != alert.insight_id:
        raise Forbidden("the button does not belong to this message: nothing was changed")
    workspace_id, insight_id = alert.workspace_id, alert.insight_id
    until: datetime | None = None
    if click.action in ("useful", "not_useful"):
        give_feedback(
            session,
            workspace_id=workspace_id,
            insight_id=insight_id,
            useful=click.action == "useful",
            now=now,
        )
    else:
        until = now + SNOOZES[click.action] if click.action in SNOOZES else None
        silence_metric_of(
            session, workspace_id=workspace_id, insight_id=insight_id, until=until, now=now
        )
    session.add(
        SlackAction(
            workspace_id=workspace_id,
            insight_id=insight_id,
            action=click.action,
            slack_team_id=click.team_id,
            slack_user_id=click.user_id,
            slack_user_name=click.user_name,
            until=until,
            created_at=now,
        )
    )
    session.flush()
    log.info(
        "slack click: workspace=%d insight=%d action=%s", workspace_id, insight_id, click.action
    )
    return alert.id


def refresh_alert(engine: Engine, settings: Settings, *, notification_id: int) -> None:
    """Rewrite the alert in Slack with what was done to it ("Muted by @ana").

    Run after the click's answer is sent (Slack wants one within three seconds); a failure
    is logged, and the next click rewrites the whole message again.
    """
    with session_scope(engine) as session:
        row = session.get(Notification, notification_id)
        connection = session.get(SlackConnection, row.workspace_id) if row else None
        if row is None or connection is None or not row.channel or not row.ts:
            return
        message, _ = build_message(session, row, settings, with_chart=False)
        token, channel, ts = connection.bot_token, row.channel, row.ts
    notifier = SlackNotifier(token, base_url=settings.slack_base_url, timeout=10)
    try:
        notifier.update_alert(message, channel=channel, ts=ts, notification_id=notification_id)
    except NotifyError as exc:
        log.warning("the alert of notification %s was not updated: %s", notification_id, exc)
