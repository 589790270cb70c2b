"""A workspace's Slack connection: "Add to Slack" (OAuth v2), a pasted token, a test message."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from lantern.config import Settings
from lantern.db.base import utcnow
from lantern.errors import BadRequest, Unreachable
from lantern.notify.base import NotifyError, TransientNotifyError
from lantern.notify.models import Notification, SlackConnection, SlackOAuthState
from lantern.notify.slack import SlackNotifier

T = TypeVar("T")

STATE_LIFETIME = timedelta(minutes=10)
# Slack's signing secrets are 32 hexadecimal digits; a little leeway for the future.
SIGNING_SECRET = re.compile(r"^[0-9A-Za-z]{16,128}$")


def _count(session: Session, workspace_id: int, *conditions: Any) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.workspace_id == workspace_id, *conditions)
        )
        or 0
    )


def connection_status(session: Session, *, workspace_id: int, settings: Settings) -> dict[str, Any]:
    """Whether Slack is connected, to which channel, and every delivery problem while it lasts.

    `error` is what a person must act on (the connection's error), else why notifications
    are waiting; `failed_notifications` were given up, `waiting_notifications` are still
    being tried; `last_failure` is the newest reason among them.
    """
    row = session.get(SlackConnection, workspace_id)
    troubled = (Notification.status.in_(("failed", "pending", "sending"))) & (
        Notification.error.is_not(None)
    )
    latest = session.scalars(
        select(Notification)
        .where(Notification.workspace_id == workspace_id, troubled)
        .order_by(Notification.id.desc())
        .limit(1)
    ).first()
    waiting = _count(
        session, workspace_id, Notification.status.in_(("pending", "sending")), troubled
    )
    error = row.error if row else None
    if error is None and waiting:
        newest = session.scalars(
            select(Notification.error)
            .where(
                Notification.workspace_id == workspace_id,
                Notification.status.in_(("pending", "sending")),
                troubled,
            )
            .order_by(Notification.id.desc())
            .limit(1)
        ).first()
        error = f"{waiting} notification(s) waiting to be delivered: {newest}"
    from lantern.notify.interactivity import INTERACTIVITY_PATH, interactive

    return {
        "connected": row is not None,
        "buttons": interactive(row, settings),
        "interactivity_url": settings.resolved_public_url.rstrip("/") + INTERACTIVITY_PATH,
        "public_url_warning": settings.public_url_warning,
        "method": row.method if row else None,
        "channel": row.channel if row else None,
        "channel_name": row.channel_name if row else None,
        "team_name": row.team_name if row else None,
        "installed_at": row.installed_at if row else None,
        "error": error,
        "add_to_slack_available": bool(settings.slack_client_id and settings.slack_client_secret),
        "failed_notifications": _count(session, workspace_id, Notification.status == "failed"),
        "waiting_notifications": waiting,
        "paused_until": row.paused_until if row else None,
        "last_failure": latest.error if latest else None,
    }


def ask_slack(doing: str, call: Callable[[], T], *, refused: str) -> T:
    """One call to Slack made for a person waiting on it.

    Slack unreachable, failing or rate-limiting is a 502 saying why (nothing was changed,
    try again); Slack refusing is a 400 starting with `refused`.
    """
    try:
        return call()
    except TransientNotifyError as exc:
        raise Unreachable(
            f"Lantern could not {doing}: {exc.reason}. Nothing was changed: check that this "
            "server can reach Slack (LANTERN_SLACK_BASE_URL), then try again",
            error="slack_unreachable",
        ) from None
    except NotifyError as exc:
        raise BadRequest(f"{refused}: {exc}") from None


def _notifier(settings: Settings, bot_token: str) -> SlackNotifier:
    return SlackNotifier(bot_token, base_url=settings.slack_base_url, timeout=10)


def resolve_channel(settings: Settings, *, bot_token: str, channel: str) -> tuple[str, str]:
    """(id, name) of a pasted channel name or id; a clear error if Slack cannot find it.

    Slack's reading methods (used to reconcile) want the id, so the id is what is stored.
    """
    notifier = _notifier(settings, bot_token)
    return ask_slack(
        "ask Slack for the channel",
        lambda: notifier.resolve_channel(channel),
        refused="Lantern could not find the channel in Slack",
    )


def connect_with_token(
    session: Session,
    *,
    workspace_id: int,
    bot_token: str,
    channel: str,
    settings: Settings,
    signing_secret: str | None = None,
) -> SlackConnection:
    """Store a pasted bot token and channel, after Slack confirms the token works.

    With the app's signing secret, alerts carry buttons whose clicks Lantern can check.
    """
    bot_token, channel = bot_token.strip(), channel.strip().lstrip("#")
    if not bot_token.startswith("xoxb-"):
        raise BadRequest("a bot token starts with xoxb-: copy it from your Slack app's OAuth page")
    secret = (signing_secret or "").strip() or None
    if secret is not None and not SIGNING_SECRET.match(secret):
        raise BadRequest(
            "a signing secret is 32 letters and digits: copy it from your Slack app's Basic "
            "Information page (App Credentials), not the bot token or the client secret"
        )
    existing = session.get(SlackConnection, workspace_id)
    if secret is None and existing is not None and existing.method == "token":
        secret = existing.signing_secret  # a new channel or token keeps the buttons working
    if not channel:
        raise BadRequest("name the channel Lantern should post to, e.g. alerts")
    notifier = _notifier(settings, bot_token)
    try:
        identity = ask_slack(
            "check the token with Slack", notifier.identify, refused="Slack refused the token"
        )
    except BadRequest:
        raise BadRequest(
            "Slack refused the token: copy the Bot User OAuth Token (xoxb-…) from your Slack "
            "app's OAuth & Permissions page"
        ) from None
    channel_id, channel_name = resolve_channel(settings, bot_token=bot_token, channel=channel)
    return _store(
        session,
        workspace_id=workspace_id,
        method="token",
        bot_token=bot_token,
        channel=channel_id,
        channel_name=channel_name,
        team_id=identity.get("team_id"),
        team_name=identity.get("team"),
        bot_user_id=identity.get("user_id"),
        bot_id=identity.get("bot_id"),
        signing_secret=secret,
    )


def _store(session: Session, *, workspace_id: int, **fields: Any) -> SlackConnection:
    """Keep the connection; what waited for it (or failed without it) is due again now."""
    from lantern.notify.outbox import requeue_after_reconnect

    row = session.get(SlackConnection, workspace_id)
    if row is None:
        row = SlackConnection(workspace_id=workspace_id, **fields)
        session.add(row)
    else:
        for name, value in fields.items():
            setattr(row, name, value)
        row.installed_at = utcnow()
        row.error = None
    session.flush()
    requeue_after_reconnect(session, workspace_id=workspace_id, now=utcnow())
    return row


def _state_key(state: str, browser_session: str) -> str:
    """What is stored for a state: bound to the browser session that started the install.

    Only the browser holding that session cookie can finish the install, so nobody can
    send someone else's browser to the callback with their own code (login CSRF), and a
    leaked state is useless alone.
    """
    return hashlib.sha256(f"{state}:{browser_session}".encode()).hexdigest()


def start_oauth(
    session: Session,
    *,
    workspace_id: int,
    settings: Settings,
    redirect_uri: str,
    browser_session: str,
) -> str:
    """The Slack authorize URL for "Add to Slack", with a one-time state for this browser."""
    from lantern.notify.oauth import authorize_url

    if not (settings.slack_client_id and settings.slack_client_secret):
        raise BadRequest(
            "Add to Slack needs LANTERN_SLACK_CLIENT_ID and LANTERN_SLACK_CLIENT_SECRET "
            "from your Slack app; or paste a bot token and a channel instead"
        )
    now = utcnow()
    session.execute(delete(SlackOAuthState).where(SlackOAuthState.expires_at < now))
    state = secrets.token_urlsafe(24)
    session.add(
        SlackOAuthState(
            state=_state_key(state, browser_session),
            workspace_id=workspace_id,
            expires_at=now + STATE_LIFETIME,
        )
    )
    session.flush()
    return authorize_url(settings.slack_client_id, redirect_uri, state)


def finish_oauth(
    session: Session,
    *,
    state: str,
    code: str,
    settings: Settings,
    redirect_uri: str,
    browser_session: str,
) -> int:
    """Complete "Add to Slack": check the state once, for this browser; exchange the code."""
    from lantern.notify.oauth import exchange_code

    row = session.get(SlackOAuthState, _state_key(state, browser_session))
    if row is None or row.expires_at < utcnow():
        raise BadRequest(
            "this Add to Slack link has expired, was used, or was started in another browser "
            "or session: start again from Settings"
        )
    workspace_id = row.workspace_id
    session.delete(row)
    session.flush()
    assert settings.slack_client_id and settings.slack_client_secret
    installation = exchange_code(
        settings.slack_client_id,
        settings.slack_client_secret,
        code,
        redirect_uri,
        settings.slack_base_url,
    )
    existing = session.get(SlackConnection, workspace_id)
    channel = installation.incoming_webhook_channel_id or (existing.channel if existing else "")
    name = (installation.incoming_webhook_channel or "").lstrip("#") or (
        existing.channel_name if existing else None
    )
    _store(
        session,
        workspace_id=workspace_id,
        method="oauth",
        bot_token=installation.bot_token,
        channel=channel,
        channel_name=name,
        team_id=installation.team_id,
        team_name=installation.team_name,
        app_id=installation.app_id,
        bot_user_id=installation.bot_user_id,
        bot_id=installation.bot_id,
        scopes=",".join(installation.scopes),
    )
    return workspace_id


def send_test_message(session: Session, *, workspace_id: int, settings: Settings) -> None:
    """Post a test message to the workspace's channel; a readable error if Slack refuses."""
    row = session.get(SlackConnection, workspace_id)
    if row is None or not row.channel:
        raise BadRequest("connect Slack and choose a channel first")
    notifier = _notifier(settings, row.bot_token)
    channel = row.channel
    ask_slack(
        "send the test message",
        lambda: notifier.send_test(channel),
        refused="Slack refused the test message",
    )
