"""A Slack-compatible Web API on loopback, for slack-sdk's WebClient(base_url=...).

It implements what Lantern calls: chat.postMessage, chat.update, files.getUploadURLExternal,
the upload, files.completeUploadExternal, conversations.history, conversations.replies,
conversations.list, conversations.info, oauth.v2.access and auth.test. It records every
request, checks bot tokens, and plays scripted answers (429 with Retry-After, 5xx,
`ok: false`) before its normal ones, for every token or for one token (one workspace).

It behaves like Slack where delivery code breaks: a scripted answer with `store=True` does
the work first (the message is posted, the file shared) and only then answers 500 or
stalls past the client's timeout; conversations.history holds no thread replies;
conversations.history and conversations.replies want a channel id, not a name; message
metadata is returned only when `include_all_metadata` is asked for; chat.update wants a
channel id and rewrites only the bot's own messages.

It also plays the other direction: `click` builds the request Slack sends to an app's
interactivity URL when someone presses a button of a posted message (a form with one
`payload` field of JSON, signed with the app's signing secret as Slack signs it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

GOOD_TOKEN = "xoxb-1111-2222-good"
OTHER_TOKEN = "xoxb-3333-4444-other"  # a second workspace's bot
CLIENT_ID, CLIENT_SECRET, GOOD_CODE = "111.222", "s3cret", "code-ok"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # the app's, as on its Basic Information page
TEAM_ID = "T0ACME"  # the team every token here belongs to (auth.test, oauth.v2.access)


MESSAGE_NUMBERS = itertools.count(1)


def sign(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """The headers Slack signs a request to an app with (v0, HMAC-SHA256 of ts and body)."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


@dataclass
class Answer:
    """A scripted answer: an HTTP status, headers and a JSON body."""

    status: int = 200
    body: dict[str, Any] = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering, to make a client time out
    store: bool = False  # do the real work first (post, share), then give this answer


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
        self.tokens = {GOOD_TOKEN, OTHER_TOKEN}
        self.revoked: set[str] = set()
        self.without_groups_read: set[str] = set()  # tokens that cannot list private channels
        self.channels = {"alerts": "C0ALERTS", "general": "C0GENERAL"}
        self.messages: list[dict[str, Any]] = []
        self.uploads: dict[str, bytes] = {}
        self.file_names: dict[str, str] = {}
        self.completed: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        self.scripts: dict[tuple[str, str | None], deque[Answer]] = defaultdict(deque)
        # ("received" | "answered", method, token), in order: who waited for whom.
        self.events: list[tuple[str, str, str]] = []
        # one count for every fake of the test run: a ts is never seen twice in a database
        self._ts = MESSAGE_NUMBERS
        self._lock = threading.Lock()
        self.base = ""

    @property
    def api_url(self) -> str:
        return self.base + "/api/"

    def script(self, method: str, *answers: Answer, token: str | None = None) -> None:
        """Answer the next calls of `method` (by `token` only, if given) with `answers`."""
        self.scripts[(method, token)].extend(answers)

    def settle(self, limit: float = 10.0) -> None:
        """Wait (at most `limit` s) until every request received has been answered."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            kinds = [kind for kind, _, _ in self.events]
            if kinds.count("received") == kinds.count("answered"):
                return
            time.sleep(0.05)

    def posted_by(self, token: str) -> list[dict[str, Any]]:
        """Top-level messages posted with `token`."""
        return [m for m in self.top_level() if m.get("token") == token]

    def charts(self, ts: str) -> list[dict[str, Any]]:
        """Files shared into the thread of `ts`."""
        return [f for m in self.replies(ts) for f in m.get("files") or []]

    def images(self, ts: str) -> list[bytes]:
        """The uploaded files that the message `ts` shows in its image blocks."""
        return [
            self.uploads[block["slack_file"]["id"]]
            for block in self.message(ts).get("blocks") or []
            if block.get("type") == "image"
        ]

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == f"/api/{method}"]

    def top_level(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("thread_ts") in (None, m["ts"])]

    def replies(self, ts: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("thread_ts") == ts and m["ts"] != ts]

    def click(
        self,
        message: dict[str, Any],
        button: str,
        *,
        user: str = "U0ANA",
        username: str = "ana",
        team: str = TEAM_ID,
        secret: str = SIGNING_SECRET,
        at: float | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers Slack sends when `user` presses the button `button`
        (its text, e.g. "Mute metric") of a posted message. The button must be on it."""
        found = [
            (block, element)
            for block in message.get("blocks") or []
            if block.get("type") == "actions"
            for element in block.get("elements") or []
            if element.get("text", {}).get("text") == button
        ]
        if not found:
            raise AssertionError(f"the message has no button {button!r}")
        block, element = found[0]
        stamp = int(time.time() if at is None else at)
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "username": username, "name": username, "team_id": team},
            "api_app_id": "A0APP",
            "token": "legacy-verification-token",
            "container": {
                "type": "message",
                "message_ts": message["ts"],
                "channel_id": message["channel"],
                "is_ephemeral": False,
            },
            "trigger_id": f"{stamp}.1.abc",
            "team": {"id": team, "domain": "acme"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": message["channel"], "name": "alerts"},
            "message": {
                "type": "message",
                "ts": message["ts"],
                "text": message.get("text"),
                "blocks": message.get("blocks"),
            },
            "state": {"values": {}},
            "response_url": f"{self.base}/actions/{message['ts']}",
            "actions": [
                {
                    "action_id": element.get("action_id"),
                    "block_id": block.get("block_id", "b"),
                    "text": element.get("text"),
                    **({"value": element["value"]} if "value" in element else {}),
                    "type": "button",
                    "action_ts": f"{stamp}.000200",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return body, sign(body, secret, stamp)

    def message(self, ts: str) -> dict[str, Any]:
        """The message `ts` as it is now (after any chat.update)."""
        [found] = [m for m in self.messages if m["ts"] == ts]
        return found

    # --- the API -------------------------------------------------------------------------
    def handle(self, method: str, headers: dict[str, str], params: dict[str, Any]) -> Answer:
        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        with self._lock:
            queue = self.scripts[(method, token)] or self.scripts[(method, None)]
            scripted = queue.popleft() if queue else None
        if scripted is None:
            return self._answer(method, token, headers, params)
        if scripted.store:
            self._answer(method, token, headers, params)
        return scripted

    def _answer(
        self, method: str, token: str, headers: dict[str, str], params: dict[str, Any]
    ) -> Answer:
        if method == "oauth.v2.access":
            return self._oauth(headers, params)
        params = {**params, "_token": token}
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
        """chat.postMessage takes a channel id or a name."""
        name = str(value or "").lstrip("#")
        if name in self.channels.values():
            return name
        return self.channels.get(name)

    def _channel_id(self, value: Any) -> str | None:
        """Reading methods take only an id: a name is `channel_not_found`, as on Slack."""
        return str(value) if value in self.channels.values() else None

    def _bad_image(self, blocks: Any) -> Answer | None:
        """An image block must show a file this workspace holds, as on Slack."""
        for block in _json(blocks) or []:
            if block.get("type") != "image":
                continue
            file_id = (block.get("slack_file") or {}).get("id")
            if file_id not in self.file_names or file_id not in self.uploads:
                return Answer(
                    body={
                        "ok": False,
                        "error": "invalid_blocks",
                        "errors": ["invalid slack file [json-pointer:/blocks/0/slack_file]"],
                    }
                )
        return None

    def _chat_postMessage(self, params: dict[str, Any]) -> Answer:
        channel = self._channel(params.get("channel"))
        if channel is None:
            return Answer(body={"ok": False, "error": "channel_not_found"})
        refused = self._bad_image(params.get("blocks"))
        if refused is not None:
            return refused
        with self._lock:
            ts = f"{1_800_000_000 + next(self._ts)}.000100"
            message = {
                "channel": channel,
                "ts": ts,
                "text": params.get("text"),
                "blocks": params.get("blocks"),
                "thread_ts": params.get("thread_ts"),
                "metadata": _json(params.get("metadata")),
                "token": params["_token"],
            }
            self.messages.append(message)
        return Answer(body={"ok": True, "channel": channel, "ts": ts, "message": message})

    def _chat_update(self, params: dict[str, Any]) -> Answer:
        channel = self._channel_id(params.get("channel"))
        if channel is None:
            return Answer(body={"ok": False, "error": "channel_not_found"})
        found = [
            m for m in self.messages if m["channel"] == channel and m["ts"] == params.get("ts")
        ]
        if not found:
            return Answer(body={"ok": False, "error": "message_not_found"})
        message = found[0]
        if message["token"] != params["_token"]:
            return Answer(body={"ok": False, "error": "cant_update_message"})
        refused = self._bad_image(params.get("blocks"))
        if refused is not None:
            return refused
        with self._lock:
            message["text"] = params.get("text", message["text"])
            if "blocks" in params:
                message["blocks"] = _json(params["blocks"])
            if "metadata" in params:
                message["metadata"] = _json(params["metadata"])
            message["edited"] = True
        return Answer(
            body={"ok": True, "channel": channel, "ts": message["ts"], "text": message["text"]}
        )

    def _files_getUploadURLExternal(self, params: dict[str, Any]) -> Answer:
        file_id = f"F{next(self._ts):06d}"
        self.file_names[file_id] = str(params.get("filename") or "")
        return Answer(
            body={"ok": True, "file_id": file_id, "upload_url": f"{self.base}/upload/{file_id}"}
        )

    def _files_completeUploadExternal(self, params: dict[str, Any]) -> Answer:
        files = json.loads(params.get("files", "[]"))
        self.completed.append({**params, "files": files})
        channel, thread = params.get("channel_id"), params.get("thread_ts")
        if channel and thread:
            # Sharing a file into a thread is a reply that carries the file.
            with self._lock:
                self.messages.append(
                    {
                        "channel": channel,
                        "ts": f"{1_800_000_000 + next(self._ts)}.000100",
                        "text": "",
                        "thread_ts": thread,
                        "files": [
                            {
                                "id": f["id"],
                                "name": self.file_names.get(f["id"]),
                                "title": f.get("title"),
                            }
                            for f in files
                        ],
                        "token": params["_token"],
                    }
                )
        return Answer(
            body={"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        )

    def _history(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Answer:
        # Message times here are counters, not clock times, so `oldest` is not applied.
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        found = [
            {
                "ts": m["ts"],
                "text": m["text"],
                **({"thread_ts": m["thread_ts"]} if m.get("thread_ts") else {}),
                **({"metadata": m["metadata"]} if with_metadata and m.get("metadata") else {}),
                **({"files": m["files"]} if m.get("files") else {}),
            }
            for m in messages
        ]
        return Answer(body={"ok": True, "messages": found, "has_more": False})

    def _conversations_history(self, params: dict[str, Any]) -> Answer:
        channel = self._channel_id(params.get("channel"))
        if channel is None:
            return Answer(body={"ok": False, "error": "channel_not_found"})
        newest_first = [m for m in self.top_level() if m["channel"] == channel][::-1]
        return self._history(newest_first, params)

    def _conversations_replies(self, params: dict[str, Any]) -> Answer:
        channel = self._channel_id(params.get("channel"))
        if channel is None:
            return Answer(body={"ok": False, "error": "channel_not_found"})
        ts = str(params.get("ts"))
        parent = [m for m in self.messages if m["ts"] == ts and m["channel"] == channel]
        if not parent:
            return Answer(body={"ok": False, "error": "thread_not_found"})
        return self._history(parent + self.replies(ts), params)

    def _conversations_list(self, params: dict[str, Any]) -> Answer:
        private = "private_channel" in str(params.get("types", "public_channel"))
        if private and params["_token"] in self.without_groups_read:
            return Answer(body={"ok": False, "error": "missing_scope", "needed": "groups:read"})
        # One channel a page, so that callers have to follow the cursor as on a big workspace.
        items = sorted(self.channels.items())
        start = int(params.get("cursor") or 0)
        page = [{"id": cid, "name": name, "is_archived": False} for name, cid in items][
            start : start + 1
        ]
        cursor = str(start + 1) if start + 1 < len(items) else ""
        return Answer(
            body={"ok": True, "channels": page, "response_metadata": {"next_cursor": cursor}}
        )

    def _conversations_info(self, params: dict[str, Any]) -> Answer:
        channel = self._channel_id(params.get("channel"))
        if channel is None:
            return Answer(body={"ok": False, "error": "channel_not_found"})
        name = next(n for n, cid in self.channels.items() if cid == channel)
        return Answer(body={"ok": True, "channel": {"id": channel, "name": name}})

    def _auth_test(self, params: dict[str, Any]) -> Answer:
        return Answer(
            body={
                "ok": True,
                "team": "Acme",
                "team_id": TEAM_ID,
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
                "team": {"id": TEAM_ID, "name": "Acme"},
                "enterprise": None,
                "incoming_webhook": {"channel_id": "C0ALERTS", "channel": "#alerts"},
            }
        )


def _json(value: Any) -> Any:
    """A JSON argument as sent in a form body (a string) or in a JSON body (an object)."""
    return json.loads(value) if isinstance(value, str) else value


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
            token = headers.get("authorization", "").removeprefix("Bearer ").strip()
            fake.events.append(("received", method, token))
            self._send(fake.handle(method, headers, params))
            fake.events.append(("answered", method, token))

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
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    time.sleep(0)
