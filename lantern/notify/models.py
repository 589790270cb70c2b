"""Tables for the notification outbox, each workspace's Slack connection and its webhooks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lantern.db.base import Base, UTCDateTime, utcnow


class DeliveryState:
    """What the outbox keeps of one step owed to one channel, whatever the channel.

    `status` is pending → sending → sent, or failed (given up, with `error`); `sending`
    means claimed and its outcome unknown: the channel is asked whether it landed before
    it is ever sent again (`notify.driver`). `error` also says why an undelivered row waits.
    """

    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sending_since: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Notification(DeliveryState, Base):
    """A step about an insight, owed to the workspace's Slack: the outbox row (`notify.outbox`).

    Beside the states of `DeliveryState`, a row may be `skipped` (with `error`), and an
    alert may wait as `digest` for the daily digest or as `summary` for the summary of the
    quiet hours. Webhooks receive the same rows as deliveries of their own.
    """

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("insight_id", "purpose", "sequence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    insight_id: Mapped[int] = mapped_column(ForeignKey("insights.id", ondelete="CASCADE"))
    # alert | chart | update | incident | resolution | digest | summary
    purpose: Mapped[str] = mapped_column(String(16))
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[str | None] = mapped_column(String(100), default=None)
    ts: Mapped[str | None] = mapped_column(String(50), default=None)
    # An alert's chart, uploaded to Slack before the alert and shown in it (Slack's file id).
    file_id: Mapped[str | None] = mapped_column(String(50), default=None)


class SlackConnection(Base):
    """A workspace's Slack bot: from "Add to Slack" or a pasted bot token and channel."""

    __tablename__ = "slack_connections"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    method: Mapped[str] = mapped_column(String(10))  # oauth | token
    bot_token: Mapped[str] = mapped_column(String(300))
    channel: Mapped[str] = mapped_column(String(100))  # Slack's channel id (C…)
    channel_name: Mapped[str | None] = mapped_column(String(100), default=None)
    team_id: Mapped[str | None] = mapped_column(String(50), default=None)
    team_name: Mapped[str | None] = mapped_column(String(200), default=None)
    app_id: Mapped[str | None] = mapped_column(String(50), default=None)
    bot_user_id: Mapped[str | None] = mapped_column(String(50), default=None)
    bot_id: Mapped[str | None] = mapped_column(String(50), default=None)
    scopes: Mapped[str | None] = mapped_column(String(500), default=None)
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # Rate-limited or unreachable: nothing is sent to this workspace before then.
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # A pasted bot token's own app signs its button clicks with this; Add to Slack
    # installs use LANTERN_SLACK_SIGNING_SECRET.
    signing_secret: Mapped[str | None] = mapped_column(String(200), default=None)


class SlackAction(Base):
    """A button clicked on an alert in Slack: who did what to which insight, and when."""

    __tablename__ = "slack_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    insight_id: Mapped[int] = mapped_column(
        ForeignKey("insights.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(32))  # useful | not_useful | mute | snooze_*
    slack_team_id: Mapped[str] = mapped_column(String(50))
    slack_user_id: Mapped[str] = mapped_column(String(50))
    slack_user_name: Mapped[str | None] = mapped_column(String(200), default=None)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)  # a snooze's end
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SlackOAuthState(Base):
    """A one-time state value of an "Add to Slack" flow in progress."""

    __tablename__ = "slack_oauth_states"

    state: Mapped[str] = mapped_column(String(100), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Webhook(Base):
    """A URL that receives each notification as a signed JSON POST (see `notify.webhooks`).

    `cursor` is the last outbox row fanned out to it: rows after it get a delivery each.
    """

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(100))  # signs each POST; the receiver holds it
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(DeliveryState, Base):
    """One notification owed to one webhook; its id is the delivery id the receiver sees.

    The states are `DeliveryState`'s. The same id is sent on every try, so a receiver that
    keeps the ids it has processed acts on each notification exactly once.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("webhook_id", "notification_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
