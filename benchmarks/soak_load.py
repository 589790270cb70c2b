"""The load side of the soak: Segment-like batches, regenerated from a seed, and their senders."""

from __future__ import annotations

import json
import queue
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

TRACKS = ["Signed Up", "Order Completed", "Product Viewed", "Checkout Started", "Song Played"]
PAGES = ["Home", "Pricing", "Docs"]
SCREENS = ["Feed", "Settings"]
LIBRARIES = [("analytics-python", "2.4.0"), ("analytics.js", "2.1.1"), ("analytics-node", "2.1.2")]


def event(rng: random.Random, stamp: str) -> dict[str, object]:
    """One call as an analytics library sends it, with a unique messageId."""
    library, version = rng.choice(LIBRARIES)
    user = f"user-{rng.randrange(50_000)}"
    common: dict[str, object] = {
        "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "timestamp": stamp,
        "userId": user,
        "anonymousId": None,
        "integrations": {},
        "context": {
            "library": {"name": library, "version": version},
            "ip": f"203.0.113.{rng.randrange(256)}",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
        },
    }
    roll = rng.random()
    if roll < 0.7:
        name = rng.choice(TRACKS)
        properties: dict[str, object] = {"plan": rng.choice(["free", "pro"])}
        if name == "Order Completed":
            properties["revenue"] = round(rng.uniform(5, 200), 2)
        return {**common, "type": "track", "event": name, "properties": properties}
    if roll < 0.85:
        page = rng.choice(PAGES)
        path = f"/{page.lower()}"
        properties = {"path": path, "url": f"https://example.com{path}", "title": page}
        return {**common, "type": "page", "name": page, "properties": properties}
    if roll < 0.9:
        return {**common, "type": "screen", "name": rng.choice(SCREENS), "properties": {}}
    return {**common, "type": "identify", "traits": {"plan": "pro", "email": f"{user}@example.com"}}


def metric_of(call: dict[str, object]) -> tuple[str, str]:
    """The per-call-type total an event adds one to."""
    return ("total", str(call["type"]))


@dataclass
class Batch:
    """A batch, kept as what regenerates it: its seed and its events' timestamp."""

    number: int
    seed: int
    stamp: str
    size: int
    acknowledged: bool = False

    def events(self) -> list[dict[str, object]]:
        rng = random.Random(self.seed)
        return [event(rng, self.stamp) for _ in range(self.size)]

    def body(self) -> bytes:
        sent_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        return json.dumps({"batch": self.events(), "sentAt": sent_at}).encode()


@dataclass
class Tally:
    """What the sends met; updated from several threads under `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    kill_errors: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


def send_all(
    url: str,
    key: str,
    batches: queue.Queue[Batch | None],
    tally: Tally,
    down: threading.Event,
) -> None:
    """Post batches from the queue until it yields None; record what each answer says."""
    with httpx.Client(base_url=url, auth=(key, ""), timeout=30) as http:
        while (batch := batches.get()) is not None:
            killed_during = down.is_set()
            try:
                response = http.post(
                    "/v1/batch", content=batch.body(), headers={"Content-Type": "application/json"}
                )
            except httpx.HTTPError as exc:
                with tally.lock:
                    if killed_during or down.is_set():
                        tally.kill_errors += 1
                    else:
                        tally.errors.append(f"batch {batch.number}: {exc!r}")
                continue
            with tally.lock:
                tally.statuses[str(response.status_code)] += 1
                if response.is_success:
                    batch.acknowledged = True
                    answer = response.json()
                    tally.accepted += answer.get("accepted", 0)
                    tally.duplicates += answer.get("duplicates", 0)
                    tally.rejected += len(answer.get("rejected", []))
                elif down.is_set():
                    tally.kill_errors += 1
                else:
                    tally.errors.append(
                        f"batch {batch.number}: {response.status_code} {response.text[:200]}"
                    )


def run_pass(
    url: str,
    key: str,
    work: list[Batch],
    tally: Tally,
    down: threading.Event,
    *,
    connections: int,
    interval: float | None,
    on_tick: Callable[[float], None] | None = None,
) -> None:
    """Send `work`, on a schedule (one batch every `interval` s) or as fast as possible."""
    batches: queue.Queue[Batch | None] = queue.Queue()
    senders = [
        threading.Thread(target=send_all, args=(url, key, batches, tally, down))
        for _ in range(connections)
    ]
    for sender in senders:
        sender.start()
    start = time.monotonic()
    for n, batch in enumerate(work):
        if interval is not None:
            delay = start + n * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if on_tick is not None:
            on_tick(time.monotonic() - start)
        batches.put(batch)
    for _ in senders:
        batches.put(None)
    for sender in senders:
        sender.join()
