"""The one Slack sender: slack-sdk's WebClient, and errors that say what the outbox may do.

The client makes each call once: slack-sdk's retry handlers would post a message again
after a 5xx or a timeout (when Slack may already have posted it) and would sleep through
a `Retry-After` inside the job. The outbox decides instead: it reconciles an unknown
outcome through the message's metadata, and schedules the workspace's next attempt.
"""

from __future__ import annotations

import re
import urllib.error
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from lantern.notify.base import (
    PermanentNotifyError,
    RateLimited,
    SentMessage,
    TransientNotifyError,
    UnknownOutcome,
    WorkspaceNotifyError,
)
from lantern.notify.blocks import (
    alert_blocks,
    incident_blocks,
    resolution_blocks,
    test_blocks,
    update_blocks,
)
from lantern.notify.types import InsightMessage

METADATA_EVENT = "lantern_notification"
T = TypeVar("T")

# Slack's channel ids (public C…, private G…, direct D…); channel names are lower case.
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
# Pages of 200 read when looking for a message or a channel: a bounded search.
MAX_PAGES = 25
# Seconds to wait when Slack rate-limits without saying how long.
DEFAULT_RETRY_AFTER = 60.0

# Slack error codes after which nothing reaches the workspace until someone acts.
WORKSPACE = {
    "token_revoked": "the Slack token was revoked: reconnect Slack in Lantern's settings",
    "invalid_auth": "Slack does not accept the token: reconnect Slack in Lantern's settings",
    "not_authed": "no Slack token was sent: reconnect Slack in Lantern's settings",
    "account_inactive": "the Slack app or its workspace was deactivated: reconnect Slack",
    "missing_scope": "the Slack app lacks a permission: reinstall it with Add to Slack",
    "channel_not_found": "Slack says the channel was not found: pick another channel in "
    "Lantern's settings",
    "not_in_channel": "the Lantern bot is not in the channel: invite it (/invite @Lantern) "
    "or pick another channel",
    "is_archived": "the channel is archived: pick another channel in Lantern's settings",
}
# Slack error codes after which this one message cannot be sent.
MESSAGE = {
    "msg_too_long": "the message was too long for Slack",
    "invalid_blocks": "Slack refused the message layout",
}


def is_channel_id(channel: str) -> bool:
    """Whether `channel` is a Slack channel id rather than a name."""
    return bool(CHANNEL_ID.match(channel))


def chart_filename(notification_id: int) -> str:
    """The chart's file name: how a chart shared before a crash is found again."""
    return f"lantern-chart-{notification_id}.png"


def _retry_after(headers: Any) -> float:
    for name, value in dict(headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return max(1.0, float(value))
            except (TypeError, ValueError):
                break
    return DEFAULT_RETRY_AFTER


class SlackNotifier:
    """Sends insights to one Slack workspace with a bot token."""

    def __init__(
        self, token: str, *, base_url: str = "https://slack.com/api/", timeout: int = 15
    ) -> None:
        # No retry handlers: see the module docstring.
        self.client = WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])

    def _call(self, call: Callable[[], T], *, doing: bool = False) -> T:
        """One call; `doing` when Slack may have acted even if the answer is lost."""
        try:
            return call()
        except SlackApiError as exc:
            status = exc.response.status_code
            code = str(exc.response.get("error", "")) if exc.response.data else ""
            if status == 429 or code == "ratelimited":
                wait = _retry_after(exc.response.headers)
                raise RateLimited(f"Slack asked Lantern to wait {wait:.0f} s", wait) from None
            if status >= 500:
                if doing:
                    raise UnknownOutcome(
                        f"Slack answered {status}; checking whether it was posted before "
                        "trying again",
                        reason=f"Slack answered {status}",
                    ) from None
                raise TransientNotifyError(
                    f"Slack answered {status}; will retry", reason=f"Slack answered {status}"
                ) from None
            if code in WORKSPACE:
                raise WorkspaceNotifyError(WORKSPACE[code], code) from None
            if code in MESSAGE:
                raise PermanentNotifyError(MESSAGE[code], code) from None
            raise PermanentNotifyError(
                f"Slack refused the message ({code or status})", code or None
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ConnectionRefusedError) or not doing:
                raise TransientNotifyError(
                    f"Slack could not be reached ({reason}); will retry",
                    reason=f"Slack could not be reached: {reason}",
                ) from None
            raise UnknownOutcome(
                f"Slack did not answer in time ({reason}); checking whether it was posted "
                "before trying again",
                reason=f"Slack did not answer in time: {reason}",
            ) from None

    def _post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        notification_id: int,
        thread_ts: str | None = None,
    ) -> SentMessage:
        response = self._call(
            lambda: self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                metadata={
                    "event_type": METADATA_EVENT,
                    "event_payload": {"notification_id": notification_id},
                },
            ),
            doing=True,
        )
        return SentMessage(channel=str(response["channel"]), ts=str(response["ts"]))

    def post_alert(
        self, message: InsightMessage, *, channel: str, notification_id: int
    ) -> SentMessage:
        """The first message of an episode (its chart is a step of its own)."""
        text, blocks = alert_blocks(message)
        return self._post(channel, text, blocks, notification_id)

    def post_digest(
        self, text: str, blocks: list[dict[str, Any]], *, channel: str, notification_id: int
    ) -> SentMessage:
        """The daily digest, a message of its own in the channel."""
        return self._post(channel, text, blocks, notification_id)

    def post_reply(
        self, message: InsightMessage, *, channel: str, thread_ts: str, notification_id: int
    ) -> SentMessage:
        """An update or the resolution, in the alert's thread."""
        builder = update_blocks if message.status in ("open", "updated") else resolution_blocks
        text, blocks = builder(message)
        return self._post(channel, text, blocks, notification_id, thread_ts=thread_ts)

    def post_incident(
        self, message: InsightMessage, *, channel: str, thread_ts: str, notification_id: int
    ) -> SentMessage:
        """The follow-up in the alert's thread: the story it told is now an incident."""
        text, blocks = incident_blocks(message)
        return self._post(channel, text, blocks, notification_id, thread_ts=thread_ts)

    def update_alert(
        self, message: InsightMessage, *, channel: str, ts: str, notification_id: int
    ) -> None:
        """Rewrite a posted alert in place (chat.update), e.g. to say who muted its metric.

        Updating twice to the same content is harmless, so an unknown outcome is only
        transient here.
        """
        text, blocks = alert_blocks(message)
        self._call(
            lambda: self.client.chat_update(
                channel=channel,
                ts=ts,
                text=text,
                blocks=blocks,
                metadata={
                    "event_type": METADATA_EVENT,
                    "event_payload": {"notification_id": notification_id},
                },
            )
        )

    def upload_image(self, png: bytes, *, notification_id: int, title: str) -> str:
        """Upload a chart without sharing it anywhere; its file id goes in the alert's blocks.

        An upload whose answer is lost is simply made again: an unshared file shows nowhere.
        """
        response = self._call(
            lambda: self.client.files_upload_v2(
                content=png, filename=chart_filename(notification_id), title=title
            )
        )
        files = response.get("files") or [{}]
        file_id = str(files[0].get("id") or "")
        if not file_id:
            raise TransientNotifyError(
                "Slack did not say which file it stored; will retry",
                reason="Slack did not return the chart's file id",
            )
        return file_id

    def upload_chart(
        self, png: bytes, *, channel: str, thread_ts: str, notification_id: int, title: str
    ) -> SentMessage:
        """The alert's chart, shared into the alert's thread; the ts is the file's id."""
        response = self._call(
            lambda: self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                content=png,
                filename=chart_filename(notification_id),
                title=title,
            ),
            doing=True,
        )
        files = response.get("files") or [{}]
        return SentMessage(channel=channel, ts=str(files[0].get("id") or ""))

    def _pages(self, call: Callable[[str | None], Any]) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            response = self._call(partial(call, cursor))
            yield response
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return

    def find_sent(
        self,
        *,
        channel: str,
        notification_id: int,
        since: datetime,
        thread_ts: str | None = None,
        chart: bool = False,
    ) -> str | None:
        """The ts (a chart's file id) of what this notification already put in Slack, if any.

        Replies and charts live in the alert's thread, which `conversations.history` does
        not hold: they are looked for with `conversations.replies`.
        """
        oldest = str(since.timestamp())
        pages: Iterator[dict[str, Any]]
        if thread_ts is not None:
            pages = self._pages(
                lambda cursor: self.client.conversations_replies(
                    channel=channel,
                    ts=thread_ts,
                    oldest=oldest,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            )
        else:
            pages = self._pages(
                lambda cursor: self.client.conversations_history(
                    channel=channel,
                    oldest=oldest,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            )
        name = chart_filename(notification_id)
        for page in pages:
            for item in page.get("messages") or []:
                if chart:
                    for shared in item.get("files") or []:
                        if shared.get("name") == name:
                            return str(shared.get("id"))
                    continue
                metadata = item.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if (
                    metadata.get("event_type") == METADATA_EVENT
                    and payload.get("notification_id") == notification_id
                ):
                    return str(item["ts"])
        return None

    def identify(self) -> dict[str, Any]:
        """Who the token is: Slack's auth.test (team, bot user and bot ids)."""
        answer = self._call(lambda: self.client.auth_test())
        return dict(answer.data) if isinstance(answer.data, dict) else {}

    def resolve_channel(self, channel: str) -> tuple[str, str]:
        """(id, name) of a channel given by id or by name, as Slack knows it."""
        channel = channel.strip().lstrip("#")
        if is_channel_id(channel):
            answer = self._call(lambda: self.client.conversations_info(channel=channel))
            info = answer.get("channel") or {}
            return str(info.get("id") or channel), str(info.get("name") or channel)
        wanted = channel.lower()
        try:
            found = self._find_channel(wanted, "public_channel,private_channel")
        except WorkspaceNotifyError as exc:
            if exc.code != "missing_scope":
                raise
            # Private channels need groups:read, which a pasted bot token may not have.
            found = self._find_channel(wanted, "public_channel")
        if found is not None:
            return found
        raise WorkspaceNotifyError(
            f"Slack has no channel #{channel} that Lantern's bot can see: check the name, "
            "invite the bot to a private channel, or paste the channel's id (C…)"
        )

    def _find_channel(self, wanted: str, types: str) -> tuple[str, str] | None:
        for page in self._pages(
            lambda cursor: self.client.conversations_list(
                types=types, exclude_archived=True, limit=200, cursor=cursor
            )
        ):
            for item in page.get("channels") or []:
                if str(item.get("name", "")).lower() == wanted:
                    return str(item["id"]), str(item["name"])
        return None

    def send_test(self, channel: str) -> SentMessage:
        """A message saying Lantern is connected."""
        text, blocks = test_blocks()
        return self._post(channel, text, blocks, notification_id=0)
