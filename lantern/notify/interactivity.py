"""Slack's button clicks: which signing secret checks a connection's, and the check itself.

Slack signs every request it sends to the interactivity endpoint with the app's signing
secret: `X-Slack-Signature` is `v0=` and the hex HMAC-SHA256 of `v0:<timestamp>:<body>`,
and `X-Slack-Request-Timestamp` must be within five minutes of now (a replayed request is
refused). An Add to Slack install's app is Lantern's own: its secret is
`LANTERN_SLACK_SIGNING_SECRET`. A pasted bot token belongs to the team's own app, whose
secret is pasted beside it and kept on the connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from slack_sdk.signature import Clock, SignatureVerifier

from lantern.config import Settings
from lantern.notify.models import SlackConnection

INTERACTIVITY_PATH = "/slack/interactivity"


def signing_secret(connection: SlackConnection, settings: Settings) -> str | None:
    """The secret that signs this connection's clicks, if Lantern knows it."""
    if connection.method == "oauth":
        return settings.slack_signing_secret or None
    return connection.signing_secret or None


def interactive(connection: SlackConnection | None, settings: Settings) -> bool:
    """Whether alerts to this connection carry buttons: their clicks can be checked."""
    return connection is not None and signing_secret(connection, settings) is not None


@dataclass(frozen=True)
class FixedClock(Clock):
    """A clock for the check, at a given moment (seconds since the epoch)."""

    seconds: float

    def now(self) -> float:
        return self.seconds


def signed_with(
    body: bytes, headers: Mapping[str, str], secrets: Iterable[str], *, now: float
) -> str | None:
    """The secret among `secrets` that signed this request now, or None.

    slack-sdk's SignatureVerifier does the check (constant-time comparison, the five
    minutes); a header that is not even well-formed (a timestamp that is not a number, a
    signature that is not ASCII, a body that is not UTF-8) is simply not a valid signature.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get("x-slack-request-timestamp")
    signature = lowered.get("x-slack-signature")
    if not timestamp or not signature:
        return None
    for secret in secrets:
        if not secret or not secret.strip():
            continue
        verifier = SignatureVerifier(secret, clock=FixedClock(now))
        try:
            if verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
                return secret
        except (ValueError, TypeError, UnicodeDecodeError):
            return None
    return None
