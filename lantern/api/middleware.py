"""ASGI middleware around the whole app: security headers, the access log, slow bodies.

Plain ASGI rather than Starlette's BaseHTTPMiddleware: ingest's hot path pays a few
microseconds for these, not a task and a queue per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("lantern.access")

# The pages load only their own scripts, styles and images and talk only to their own API;
# no inline script, no framing (clickjacking), no <base> or plugin tricks.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc pages load their script from a CDN and start it inline: they
# get only the framing and sniffing rules.
DOCS_PATHS = ("/docs", "/redoc")
DOCS_POLICY = "frame-ancestors 'none'"


class SecurityHeaders:
    """Every response gets nosniff and a Content-Security-Policy that forbids framing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        policy = DOCS_POLICY if path.startswith(DOCS_PATHS) else CONTENT_SECURITY_POLICY
        extra = [
            (b"content-security-policy", policy.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AccessLog:
    """One line per request: method, path (never the query), status and duration.

    It replaces uvicorn's access log, which writes the client's address (and the address
    from X-Forwarded-For) and the query string, where a caller may put a token.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            access_log.info(
                "%s %s %d %.1fms",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
            )


class BodyTimeout:
    """Ends a request whose body does not arrive: each read waits at most `seconds`.

    A client that sends headers and then trickles (or withholds) its body would otherwise
    hold a connection and a task for as long as it likes. It gets a 408 and the connection
    is closed; the app is told the client went away, and what it answers after is dropped.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = timed_out = False

        async def timed_receive() -> Message:
            nonlocal timed_out
            if timed_out:
                return {"type": "http.disconnect"}
            try:
                async with asyncio.timeout(self.seconds):
                    return await receive()
            except TimeoutError:
                timed_out = True
                if not started:
                    await _send_timeout(send, self.seconds)
                return {"type": "http.disconnect"}

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, timed_receive, guarded_send)


async def _send_timeout(send: Send, seconds: float) -> None:
    body = (
        b'{"error":"request_timeout","detail":"the request body did not arrive within '
        + f"{seconds:g}".encode()
        + b' s: send it in one go"}'
    )
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 408, "headers": headers})
    await send({"type": "http.response.body", "body": body})
