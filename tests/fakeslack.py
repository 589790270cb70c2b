"""A Slack-compatible Web API on loopback, for slack-sdk's WebClient(base_url=...).

It implements what Lantern calls: chat.postMessage, files.getUploadURLExternal, the upload,
files.completeUploadExternal, conversations.history, conversations.replies, oauth.v2.access
and auth.test. It records every request, checks bot tokens, and plays scripted answers
(429 with Retry-After, 5xx, `ok: false`) before its normal ones.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

GOOD_TOKEN = "xoxb-1111-2222-good"
CLIENT_ID, CLIENT_SECRET, GOOD_CODE = "111.222", "s3cret", "code-ok"


@dataclass
class Answer:
    """A scripted answer: an HTTP status, headers and a JSON body."""

    status: int = 200
    body: dict[str, Any] = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering, to make a client time out


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, Any]
    raw: bytes


class FakeSlack:
    """State and behaviour of the fake workspace."""

    def __init__(self) -> None:
        self.tokens = {GOOD_TOKEN}
        self.revoked: set[str] = set()
        self.channels = {"alerts": "C0ALERTS", "general": "C0GENERAL"}
        self.messages: list[dict[str, Any]] = []
        self.uploads: dict[str, bytes] = {}
        self.completed: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        self.scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self.base = ""

    @property
    def api_url(self) -> str:
        return self.base + "/api/"

    def script(self, method: str, *answers: Answer) -> None:
        """Answer the next calls of `method` with `answers`, in order."""
        self.scripts[method].extend(answers)

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == f"/api/{method}"]

    def top_level(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("thread_ts") in (None, m["ts"])]

    def replies(self, ts: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("thread_ts") == ts and m["ts"] != ts]

    # --- the API -------------------------------------------------------------------------
    def handle(self, method: str, headers: dict[str, str], params: dict[str, Any]) -> Answer:
        with self._lock:
            if self.scripts[method]:
                return self.scripts[method].popleft()
        if method == "oauth.v2.access":
            return self._oauth(headers, params)
        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token in self.revoked:
            return Answer(body={"ok": False, "error": "token_revoked"})
        if token not in self.tokens:
            return Answer(body={"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return Answer(body={"ok": False, "error": "unknown_method"})
        answer: Answer = handler(params)
        return answer

    def _channel(self, value: Any) -> str | None:
        name = str(value or "").lstrip("#")
        if name in self.channels.values():
            return name
        return self.channels.get(name)

    def _chat_postMessage(self, params: dict[str, Any]) -> Answer:
        channel = self._channel(params.get("channel"))
        if channel is None:
            return Answer(body={"ok": False, "error": "channel_not_found"})
        with self._lock:
            ts = f"{1_800_000_000 + next(self._ts)}.000100"
            message = {
                "channel": channel,
                "ts": ts,
                "text": params.get("text"),
                "blocks": params.get("blocks"),
                "thread_ts": params.get("thread_ts"),
                "metadata": params.get("metadata"),
            }
            self.messages.append(message)
        return Answer(body={"ok": True, "channel": channel, "ts": ts, "message": message})

    def _files_getUploadURLExternal(self, params: dict[str, Any]) -> Answer:
        file_id = f"F{next(self._ts):06d}"
        return Answer(
            body={"ok": True, "file_id": file_id, "upload_url": f"{self.base}/upload/{file_id}"}
        )

    def _files_completeUploadExternal(self, params: dict[str, Any]) -> Answer:
        files = json.loads(params.get("files", "[]"))
        self.completed.append({**params, "files": files})
        return Answer(
            body={"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        )

    def _history(self, messages: list[dict[str, Any]]) -> Answer:
        # Message times here are counters, not clock times, so `oldest` is not applied.
        found = [
            {
                "ts": m["ts"],
                "text": m["text"],
                **({"metadata": m["metadata"]} if m.get("metadata") else {}),
            }
            for m in messages
        ]
        return Answer(body={"ok": True, "messages": list(reversed(found)), "has_more": False})

    def _conversations_history(self, params: dict[str, Any]) -> Answer:
        channel = self._channel(params.get("channel"))
        if channel is None:
            return Answer(body={"ok": False, "error": "channel_not_found"})
        return self._history([m for m in self.top_level() if m["channel"] == channel])

    def _conversations_replies(self, params: dict[str, Any]) -> Answer:
        ts = str(params.get("ts"))
        return self._history([m for m in self.messages if m["ts"] == ts] + self.replies(ts))

    def _auth_test(self, params: dict[str, Any]) -> Answer:
        return Answer(
            body={
                "ok": True,
                "team": "Acme",
                "team_id": "T0ACME",
                "user_id": "U0BOT",
                "bot_id": "B0BOT",
                "url": "https://acme/",
            }
        )

    def _oauth(self, headers: dict[str, str], params: dict[str, Any]) -> Answer:
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if headers.get("authorization") != expected:
            return Answer(body={"ok": False, "error": "invalid_client_id"})
        if params.get("code") != GOOD_CODE:
            return Answer(body={"ok": False, "error": "invalid_code"})
        return Answer(
            body={
                "ok": True,
                "access_token": GOOD_TOKEN,
                "token_type": "bot",
                "app_id": "A0APP",
                "scope": "chat:write,files:write",
                "bot_user_id": "U0BOT",
                "team": {"id": "T0ACME", "name": "Acme"},
                "enterprise": None,
                "incoming_webhook": {"channel_id": "C0ALERTS", "channel": "#alerts"},
            }
        )


def _handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _serve(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(url.query).items()}
            kind = headers.get("content-type", "")
            if raw and "json" in kind:
                params.update(json.loads(raw))
            elif raw and "form" in kind and not url.path.startswith("/upload/"):
                params.update({k: v[-1] for k, v in parse_qs(raw.decode()).items()})
            fake.requests.append(Recorded(self.command, url.path, headers, params, raw))
            if url.path.startswith("/upload/"):
                fake.uploads[url.path.rsplit("/", 1)[-1]] = raw
                self._send(Answer(body={}), text=b"OK")
                return
            method = url.path.removeprefix("/api/")
            self._send(fake.handle(method, headers, params))

        def _send(self, answer: Answer, text: bytes | None = None) -> None:
            if answer.delay:
                time.sleep(answer.delay)
            payload = text if text is not None else json.dumps(answer.body).encode()
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (timeout tests)

        do_GET = _serve
        do_POST = _serve

    return Handler


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A running fake Slack; point WebClient at `fake_slack.api_url`."""
    fake = FakeSlack()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    time.sleep(0)
