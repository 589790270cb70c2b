"""The Slack lane: a workspace's outbox rows, as the driver (`notify.driver`) delivers them.

The lane decides what a due row owes: the workspace's policy may hold it (the daily
digest, the quiet hours); a reply or a chart waits for its alert's thread; a digest or a
summary lists the rows it tells. The channel (`SlackChannel`) posts it with the row's id
in the message's metadata (a chart: in its file name), and finds it there when an earlier
try's outcome is unknown. See `notify.outbox` for the guarantee.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from lantern.config import Settings
from lantern.db.session import session_scope
from lantern.insights.models import Insight
from lantern.notify.base import Notifier, NotifyError, PermanentNotifyError, SentMessage, Settled
from lantern.notify.digest import close_digest, digest_message, for_digest, queue_digest
from lantern.notify.message import build_message
from lantern.notify.models import Notification, SlackConnection
from lantern.notify.policy import RECONCILE_MARGIN, UNDELIVERED, NotifierFactory, backoff
from lantern.notify.policy import quiet_until as quiet_end_of
from lantern.notify.slack import is_channel_id
from lantern.notify.summary import close_summary, queue_summary, summary_message
from lantern.notify.types import InsightMessage
from lantern.workspaces.models import Workspace

log = logging.getLogger(__name__)

# Rows that list other rows, posted at the top of the channel like an alert.
LISTINGS = ("digest", "summary")


@dataclass(frozen=True)
class SlackStep:
    """What one outbox row owes Slack, and where it goes."""

    row_id: int  # the delivery id, in the message's metadata
    purpose: str  # alert | chart | update | incident | resolution | digest | summary
    target: str  # the channel
    thread_ts: str | None  # the alert's ts, for a reply or a chart
    since: datetime  # how far back a reconcile looks
    file_id: str | None  # an alert's chart, already uploaded
    message: InsightMessage | None = None
    chart: bytes | None = None
    listing: tuple[str, list[dict[str, Any]]] | None = None  # a digest's or summary's text, blocks
    # an incident's follow-up: its alert as it reads now, and the alert's row id (chat.update)
    rewrite: tuple[InsightMessage, int] | None = None


class SlackChannel:
    """A workspace's Slack channel, as the driver delivers to it."""

    def __init__(self, engine: Engine, notifier: Notifier) -> None:
        self.engine, self.notifier = engine, notifier

    def close(self) -> None:
        pass

    def _target(self, step: SlackStep) -> str:
        # Older versions recorded the channel by name; Slack's reading methods want its id.
        if is_channel_id(step.target):
            return step.target
        return self.notifier.resolve_channel(step.target)[0]

    def find(self, step: SlackStep) -> SentMessage | None:
        """The step's message (a chart: its file) in the channel or the thread, if there."""
        target = self._target(step)
        found = self.notifier.find_sent(
            channel=target,
            notification_id=step.row_id,
            since=step.since,
            thread_ts=step.thread_ts,
            chart=step.purpose == "chart",
        )
        if found is None:
            return None
        # an alert posted with its chart's file id showed the chart itself
        return SentMessage(target, found, step.purpose == "alert" and step.file_id is not None)

    def deliver(self, step: SlackStep) -> SentMessage:
        """Post the step: a listing or an alert in the channel, the rest in the alert's thread."""
        target = self._target(step)
        if step.listing is not None:
            text, blocks = step.listing
            return self.notifier.post_digest(
                text, blocks, channel=target, notification_id=step.row_id
            )
        assert step.message is not None
        if step.purpose == "alert":
            return self._post_alert(step, target)
        assert step.thread_ts is not None
        if step.purpose == "chart":
            assert step.chart is not None
            return self.notifier.upload_chart(
                step.chart,
                channel=target,
                thread_ts=step.thread_ts,
                notification_id=step.row_id,
                title=f"{step.message.metric_name}: last 7 days",
            )
        if step.purpose == "incident":
            sent = self.notifier.post_incident(
                step.message, channel=target, thread_ts=step.thread_ts, notification_id=step.row_id
            )
            self._rewrite(step, target)
            return sent
        return self.notifier.post_reply(
            step.message, channel=target, thread_ts=step.thread_ts, notification_id=step.row_id
        )

    def _rewrite(self, step: SlackStep, target: str) -> None:
        """The alert rewritten in place to say what its story now is (chat.update), once its
        follow-up is in the thread: a failure is logged, the follow-up tells it all the same."""
        if step.rewrite is None or step.thread_ts is None:
            return
        message, alert_id = step.rewrite
        try:
            self.notifier.update_alert(
                message, channel=target, ts=step.thread_ts, notification_id=alert_id
            )
        except NotifyError as exc:
            log.warning("the alert of notification %s was not rewritten: %s", alert_id, exc)

    def _post_alert(self, step: SlackStep, target: str) -> SentMessage:
        """The alert with its chart in it: the chart is uploaded first (once), then shown.

        If Slack refuses the layout with the image (a file it has not finished processing),
        the alert goes without it, and its chart follows in its thread as before.
        """
        assert step.message is not None
        message, row_id = step.message, step.row_id
        file_id = message.chart_file
        if file_id is None and step.chart is not None:
            file_id = self.notifier.upload_image(
                step.chart, notification_id=row_id, title=f"{message.metric_name}: last 7 days"
            )
            self._keep_file(row_id, file_id)
        if file_id is None:
            return self.notifier.post_alert(message, channel=target, notification_id=row_id)
        try:
            sent = self.notifier.post_alert(
                replace(message, chart_file=file_id), channel=target, notification_id=row_id
            )
        except PermanentNotifyError as exc:
            if exc.code != "invalid_blocks":
                raise
            log.warning("alert %s: Slack refused its chart (%s); sending it without", row_id, exc)
            self._keep_file(row_id, None)
            return self.notifier.post_alert(message, channel=target, notification_id=row_id)
        return SentMessage(sent.channel, sent.ts, chart_shown=True)

    def _keep_file(self, row_id: int, file_id: str | None) -> None:
        with session_scope(self.engine) as session:
            row = session.get(Notification, row_id)
            assert row is not None
            row.file_id = file_id


class SlackLane:
    """One workspace's outbox rows, oldest first, to its Slack channel."""

    noun = "notification"
    log = log
    model = Notification

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        workspace_id: int,
        notifier_factory: NotifierFactory,
    ) -> None:
        self.engine, self.settings, self.workspace_id = engine, settings, workspace_id
        self.notifier_factory = notifier_factory
        self.name = f"Slack of workspace {workspace_id}"
        self.channel = ""

    def open(self, now: datetime) -> SlackChannel | None:
        """The workspace's channel, resolved once; today's digest or summary queued if due."""
        with session_scope(self.engine) as session:
            connection = session.get(SlackConnection, self.workspace_id)
            if connection is None:
                return None
            token = connection.bot_token
        notifier = self.notifier_factory(token, self.settings)
        channel = self._channel_id(notifier, now)
        if channel is None:
            return None
        self.channel = channel
        queue_digest(self.engine, workspace_id=self.workspace_id, now=now)
        queue_summary(self.engine, workspace_id=self.workspace_id, now=now)
        return SlackChannel(self.engine, notifier)

    def _channel_id(self, notifier: Notifier, now: datetime) -> str | None:
        """The connection's channel id; one stored by name (older versions) is resolved once."""
        with session_scope(self.engine) as session:
            connection = session.get(SlackConnection, self.workspace_id)
            assert connection is not None
            channel = connection.channel
        if is_channel_id(channel):
            return channel
        try:
            channel_id, name = notifier.resolve_channel(channel)
        except NotifyError as exc:
            self.pause(now + backoff(1), str(exc))
            return None
        with session_scope(self.engine) as session:
            connection = session.get(SlackConnection, self.workspace_id)
            assert connection is not None
            connection.channel, connection.channel_name = channel_id, name
        return channel_id

    def next_due(self, session: Session, *, after: int, now: datetime) -> int | None:
        """The next due row: a row that waits its backoff lets the later ones go first."""
        return session.scalar(
            select(Notification.id)
            .where(
                Notification.workspace_id == self.workspace_id,
                Notification.id > after,
                Notification.status.in_(UNDELIVERED),
                Notification.next_attempt_at <= now,
            )
            .order_by(Notification.id)
            .limit(1)
        )

    def describe(self, row: Notification) -> str:
        """The row's ids for its log lines."""
        return f"workspace={row.workspace_id} insight={row.insight_id} purpose={row.purpose}"

    def prepare(self, session: Session, row: Notification, now: datetime) -> SlackStep | Settled:
        """What the row owes Slack now, or why it waits (held, its alert's thread) or ends."""
        if row.status == "pending" and _held(session, row, now):
            return "held"
        thread_ts: str | None = None
        target = row.channel if row.status == "sending" and row.channel else self.channel
        if row.purpose not in ("alert", *LISTINGS):
            alert = _alert_of(session, row)
            if alert is None or alert.status == "skipped":
                row.status, row.error = "skipped", "the alert for this insight was not sent"
                return "skipped"
            if alert.status == "failed":
                row.status = "failed"
                row.error = "the alert for this insight could not be delivered"
                return "failed"
            if alert.status != "sent" or not alert.ts:
                return "waiting"  # the alert goes first; this waits for its thread
            thread_ts, target = alert.ts, alert.channel or self.channel
            if row.purpose == "incident" and _told_itself(session, alert, row):
                row.status, row.error = "skipped", "its alert, sent after, told the incident"
                return "skipped"
        row.channel = target
        step = SlackStep(
            row_id=row.id,
            purpose=row.purpose,
            target=target,
            thread_ts=thread_ts,
            since=row.created_at - RECONCILE_MARGIN,
            file_id=row.file_id,
        )
        if row.purpose in LISTINGS:
            listing = (digest_message if row.purpose == "digest" else summary_message)(
                session, row, self.settings
            )
            if listing is None:
                row.status, row.error = "skipped", f"nothing left for this {row.purpose}"
                return "skipped"
            return replace(step, listing=listing)
        pictured = row.purpose == "chart" or (row.purpose == "alert" and row.file_id is None)
        message, chart = build_message(session, row, self.settings, with_chart=pictured)
        if row.purpose == "incident":
            return self._incident(session, row, replace(step, message=message))
        return replace(step, message=message, chart=chart)

    def _incident(
        self, session: Session, row: Notification, step: SlackStep
    ) -> SlackStep | Settled:
        """An incident's follow-up, with its alert as it now reads (unless a summary told it)."""
        assert step.message is not None
        if step.message.incident is None:
            # read again, its metrics' activity says otherwise (late events): nothing to tell
            row.status, row.error = "skipped", "its story is no longer an incident"
            return "skipped"
        alert = _alert_of(session, row)
        if alert is None or in_summary(session, channel=alert.channel, ts=alert.ts):
            return step
        message, _ = build_message(session, alert, self.settings, with_chart=False)
        return replace(step, rewrite=(message, alert.id))

    def sent(self, session: Session, row: Notification, where: SentMessage, now: datetime) -> None:
        """The row is in Slack: keep where, clear the workspace's error, queue what follows."""
        row.ts, row.channel = where.ts, where.channel
        connection = session.get(SlackConnection, row.workspace_id)
        if connection is not None:
            connection.error = None
        if row.purpose == "digest":
            close_digest(session, row)
        elif row.purpose == "summary":
            close_summary(session, row, now)
        elif row.purpose == "alert" and not where.chart_shown:
            queued = session.scalar(
                select(Notification.id).where(
                    Notification.insight_id == row.insight_id, Notification.purpose == "chart"
                )
            )
            if queued is None:
                session.add(
                    Notification(
                        workspace_id=row.workspace_id,
                        insight_id=row.insight_id,
                        purpose="chart",
                        sequence=1,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )

    def pause(self, until: datetime, error: str | None) -> None:
        """Nothing more for this workspace before `until`; `error` is shown if a person must act."""
        with session_scope(self.engine) as session:
            connection = session.get(SlackConnection, self.workspace_id)
            if connection is None:
                return
            connection.paused_until = until
            if error is not None:
                connection.error = error
        if error is not None:
            log.warning(
                "Slack delivery for workspace %s paused until %s: %s",
                self.workspace_id,
                until,
                error,
            )


def _held(session: Session, row: Notification, now: datetime) -> bool:
    """Whether the workspace's policy holds this row: for the daily digest, or quiet hours.

    An alert held in the quiet hours of a workspace that wants them summed up waits as
    `summary`, for the one message that lists them when they end (`notify.summary`).
    """
    workspace = session.get(Workspace, row.workspace_id)
    if workspace is None:
        return False
    if for_digest(session, workspace, row):
        row.status = "digest"
        row.error = f"in the daily digest at {workspace.digest_hour:02d}:00 {workspace.time_zone}"
        return True
    held = _quiet_until(session, workspace, row, now)
    if held is None:
        return False
    local = held.astimezone(ZoneInfo(workspace.time_zone))
    row.next_attempt_at = held
    if row.purpose == "alert" and workspace.quiet_hours_delivery == "summary":
        row.status = "summary"
        row.error = (
            "held for the workspace's quiet hours, to be told in one summary at "
            f"{local:%H:%M} {workspace.time_zone}"
        )
    else:
        row.error = (
            f"held for the workspace's quiet hours, until {local:%H:%M} {workspace.time_zone}"
        )
    return True


def _quiet_until(
    session: Session, workspace: Workspace, row: Notification, now: datetime
) -> datetime | None:
    """When a row due in the workspace's quiet hours may go; None if it may go now.

    Everything waits (alerts, their charts and replies, in order) but high-severity
    outages, unless the workspace holds those too. An event that stopped while its source
    went on, with no new name in sight, may be a feature down: it goes as an outage does;
    a rename, or one app version's stop, waits.
    """
    if workspace.quiet_start is None or workspace.quiet_end is None:
        return None
    if not workspace.quiet_holds_outages:
        insight = session.get(Insight, row.insight_id)
        if insight is not None and insight.severity == "high" and _urgent(insight):
            return None
    return quiet_end_of(
        now,
        time_zone=workspace.time_zone,
        start=workspace.quiet_start,
        end=workspace.quiet_end,
    )


def _urgent(insight: Insight) -> bool:
    """An outage, or a tracking break that may be one (a stop without a new name)."""
    if insight.kind == "outage":
        return True
    told = insight.tracking_break
    return (
        insight.kind == "tracking_break"
        and told is not None
        and told.get("detected_as") == "outage"
        and told.get("renamed_to") is None
    )


def in_summary(session: Session, *, channel: str | None, ts: str | None) -> bool:
    """Whether the Slack message at (channel, ts) is a summary of quiet hours: the alerts it
    tells share its ts."""
    return (
        session.scalar(
            select(Notification.id)
            .where(
                Notification.purpose == "summary",
                Notification.channel == channel,
                Notification.ts == ts,
            )
            .limit(1)
        )
        is not None
    )


def _told_itself(session: Session, alert: Notification, row: Notification) -> bool:
    """Whether the alert, posted on its own once the follow-up `row` was queued (held for the
    quiet hours, say), already said its story was an incident: it is built when sent."""
    return (
        alert.sent_at is not None
        and alert.sent_at >= row.created_at
        and not in_summary(session, channel=alert.channel, ts=alert.ts)
    )


def _alert_of(session: Session, row: Notification) -> Notification | None:
    return session.scalars(
        select(Notification)
        .where(Notification.insight_id == row.insight_id, Notification.purpose == "alert")
        .order_by(Notification.id)
        .limit(1)
    ).first()
