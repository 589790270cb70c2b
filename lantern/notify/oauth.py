"""Slack's OAuth v2 "Add to Slack" flow: the authorize URL and the code exchange."""

from __future__ import annotations

import urllib.error
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth import AuthorizeUrlGenerator

from lantern.errors import BadRequest, Unreachable

# chat:write to post, chat:write.public to post in public channels without an invite,
# files:write for the chart, channels:read to list channels, channels:history to find a
# message again after a crash (see notify.outbox).
SCOPES = ["chat:write", "chat:write.public", "files:write", "channels:read", "channels:history"]


@dataclass(frozen=True)
class SlackInstallation:
    """What an installation gives Lantern."""

    team_id: str | None
    team_name: str | None
    enterprise_id: str | None
    app_id: str | None
    bot_token: str
    bot_user_id: str | None
    bot_id: str | None
    scopes: tuple[str, ...]
    incoming_webhook_channel_id: str | None
    incoming_webhook_channel: str | None = None


def authorize_url(client_id: str, redirect_uri: str, state: str) -> str:
    """Where the "Add to Slack" button sends the person."""
    return AuthorizeUrlGenerator(
        client_id=client_id, scopes=SCOPES, user_scopes=[], redirect_uri=redirect_uri
    ).generate(state)


def exchange_code(
    client_id: str, client_secret: str, code: str, redirect_uri: str, base_url: str
) -> SlackInstallation:
    """Trade the callback's code for a bot token, and ask Slack who the bot is."""
    client = WebClient(base_url=base_url, timeout=15)
    try:
        access = client.oauth_v2_access(
            client_id=client_id, client_secret=client_secret, code=code, redirect_uri=redirect_uri
        )
        token = access["access_token"]
        identity = client.auth_test(token=token)
    except SlackApiError as exc:
        if exc.response.status_code >= 500:
            raise _unreachable(f"Slack answered {exc.response.status_code}") from None
        raise BadRequest(f"Slack refused the installation: {exc.response.get('error')}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(str(getattr(exc, "reason", exc))) from None
    team = access.get("team") or {}
    enterprise = access.get("enterprise") or {}
    webhook = access.get("incoming_webhook") or {}
    return SlackInstallation(
        team_id=team.get("id"),
        team_name=team.get("name"),
        enterprise_id=enterprise.get("id"),
        app_id=access.get("app_id"),
        bot_token=token,
        bot_user_id=access.get("bot_user_id"),
        bot_id=identity.get("bot_id"),
        scopes=tuple((access.get("scope") or "").split(",")),
        incoming_webhook_channel_id=webhook.get("channel_id"),
        incoming_webhook_channel=webhook.get("channel"),
    )


def _unreachable(reason: str) -> Unreachable:
    return Unreachable(
        f"Lantern could not reach Slack to finish the install: {reason}. Start again from "
        "Settings in a moment",
        error="slack_unreachable",
    )
