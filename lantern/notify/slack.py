"""The one Slack sender: slack-sdk's WebClient with retries, and errors people can act on."""

from __future__ import annotations

import contextlib
import urllib.error
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from lantern.notify.base import PermanentNotifyError, SentMessage, TransientNotifyError
from lantern.notify.blocks import alert_blocks, resolution_blocks, test_blocks, update_blocks
from lantern.notify.types import InsightMessage

METADATA_EVENT = "lantern_notification"
T = TypeVar("T")

# Slack error codes after which trying again cannot help, with what the person should do.
PERMANENT = {
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
    "msg_too_long": "the message was too long for Slack",
    "invalid_blocks": "Slack refused the message layout",
}


class SlackNotifier:
    """Sends insights to one Slack workspace with a bot token."""

    def __init__(
        self,
        token: str,
        *,
        base_url: str = "https://slack.com/api/",
        timeout: int = 15,
        retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        interval = BackoffRetryIntervalCalculator(backoff_factor=backoff)
        self.client = WebClient(
            token=token,
            base_url=base_url,
            timeout=timeout,
            retry_handlers=[
                ConnectionErrorRetryHandler(max_retry_count=retries, interval_calculator=interval),
                RateLimitErrorRetryHandler(max_retry_count=retries),
                ServerErrorRetryHandler(max_retry_count=retries, interval_calculator=interval),
            ],
        )

    def _call(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except SlackApiError as exc:
            status = exc.response.status_code
            code = str(exc.response.get("error", "")) if exc.response.data else ""
            if status == 429:
                raise TransientNotifyError("Slack kept rate-limiting Lantern; will retry") from None
            if status >= 500:
                raise TransientNotifyError(f"Slack answered {status}; will retry") from None
            reason = PERMANENT.get(code)
            if reason is not None:
                raise PermanentNotifyError(reason) from None
            raise PermanentNotifyError(f"Slack refused the message ({code or status})") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise TransientNotifyError(f"Slack could not be reached ({exc}); will retry") from None

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
                metadata={
                    "event_type": METADATA_EVENT,
                    "event_payload": {"notification_id": notification_id},
                },
            )
        )
        return SentMessage(channel=str(response["channel"]), ts=str(response["ts"]))

    def send_alert(
        self,
        message: InsightMessage,
        chart_png: bytes | None,
        *,
        channel: str,
        notification_id: int,
    ) -> SentMessage:
        """The alert, then its chart in the alert's thread."""
        text, blocks = alert_blocks(message)
        sent = self._post(channel, text, blocks, notification_id)
        if chart_png:
            # The message is out; a failing upload must not make the outbox send it again.
            with contextlib.suppress(PermanentNotifyError, TransientNotifyError):
                self._call(
                    lambda: self.client.files_upload_v2(
                        channel=sent.channel,
                        thread_ts=sent.ts,
                        content=chart_png,
                        filename=f"lantern-insight-{message.insight_id}.png",
                        title=f"{message.metric_name}: last 7 days",
                    )
                )
        return sent

    def send_reply(
        self, message: InsightMessage, *, channel: str, thread_ts: str, notification_id: int
    ) -> SentMessage:
        """An update or the resolution, in the alert's thread."""
        builder = update_blocks if message.status in ("open", "updated") else resolution_blocks
        text, blocks = builder(message)
        return self._post(channel, text, blocks, notification_id, thread_ts=thread_ts)

    def find_sent(
        self, *, channel: str, notification_id: int, since: datetime, thread_ts: str | None = None
    ) -> str | None:
        """The ts of a message already carrying this notification's id, if Slack has one."""
        if thread_ts is not None:
            response = self._call(
                lambda: self.client.conversations_replies(
                    channel=channel,
                    ts=thread_ts,
                    oldest=str(since.timestamp()),
                    include_all_metadata=True,
                    limit=200,
                )
            )
        else:
            response = self._call(
                lambda: self.client.conversations_history(
                    channel=channel,
                    oldest=str(since.timestamp()),
                    include_all_metadata=True,
                    limit=200,
                )
            )
        for item in response.get("messages") or []:
            metadata = item.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if (
                metadata.get("event_type") == METADATA_EVENT
                and payload.get("notification_id") == notification_id
            ):
                return str(item["ts"])
        return None

    def send_test(self, channel: str) -> SentMessage:
        """A message saying Lantern is connected."""
        text, blocks = test_blocks()
        return self._post(channel, text, blocks, notification_id=0)
