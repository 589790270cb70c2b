"""A webhook receiver on loopback: checks Lantern's signature, acts once per delivery id.

It answers as scripted (`answers`: a status - a 429 says Retry-After: 12 -, "drop" to act
and never answer, or "slow" to act and answer 200 after 2.5 s) and records every request
with whether its signature and timestamp were good, and when it came and was answered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Receiver:
    """A webhook receiver: checks signatures, acts once per delivery id."""

    url: str = ""
    secret: str = ""
    answers: deque[int | str] = field(default_factory=deque)  # a status, or "drop"
    received: list[dict[str, Any]] = field(default_factory=list)
    acted_on: list[Any] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)  # when each answer was sent

    def take(self, headers: dict[str, str], raw: bytes) -> int | str:
        stamp = headers.get("x-lantern-timestamp", "")
        expected = (
            "sha256="
            + hmac.new(self.secret.encode(), f"{stamp}.".encode() + raw, hashlib.sha256).hexdigest()
        )
        signed = hmac.compare_digest(expected, headers.get("x-lantern-signature", ""))
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
        body = json.loads(raw)
        self.received.append(
            {"headers": headers, "body": body, "signed": signed and fresh, "at": time.monotonic()}
        )
        if not (signed and fresh):
            return 401
        if headers["x-lantern-delivery"] not in self.acted_on:
            self.acted_on.append(headers["x-lantern-delivery"])
        return self.answers.popleft() if self.answers else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from listening()


@pytest.fixture
def other_receiver() -> Iterator[Receiver]:
    yield from listening()


def listening() -> Iterator[Receiver]:
    """A receiver on a port of its own, until the test ends."""
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = found.take({k.lower(): v for k, v in self.headers.items()}, raw)
            if answer == "drop":  # acted on, but the answer never reaches Lantern
                self.close_connection = True
                self.connection.close()
                return
            if answer == "slow":  # acted on, answered after the client stopped waiting
                time.sleep(2.5)
                answer = 200
            try:
                self.send_response(int(answer))
                if answer == 429:
                    self.send_header("Retry-After", "12")
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the client gave up waiting
            found.answered.append(time.monotonic())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/lantern"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()
