#!/usr/bin/env python3
"""Ingest throughput and latency through /v1/batch against a running `lantern serve`.

    python benchmarks/ingest.py                      # starts its own server on SQLite
    python benchmarks/ingest.py --database-url postgresql+psycopg://127.0.0.1/test --workers 2
    python benchmarks/ingest.py --url http://127.0.0.1:8000 --key KEY   # an existing server

Phase 1 sends batches of 100 events as fast as N concurrent connections allow and
reports events/s. Phase 2 sends at half that rate (open loop, fixed schedule) and reports
p50/p99 request latency. Each event has a fresh messageId and one of 50 event names.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
NAMES = [f"Event {i}" for i in range(50)]


def batch_body(size: int) -> bytes:
    now = datetime.now(UTC).isoformat()
    events = [
        {
            "type": "track",
            "event": random.choice(NAMES),
            "userId": f"user-{random.randrange(10_000)}",
            "messageId": str(uuid.uuid4()),
            "timestamp": now,
            "properties": {"value": random.random(), "plan": "pro"},
            "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
        }
        for _ in range(size)
    ]
    return json.dumps({"batch": events, "sentAt": now}).encode()


def start_server(
    database_url: str | None, workers: int
) -> tuple[subprocess.Popen[bytes], str, str]:
    data = tempfile.mkdtemp(prefix="lantern-bench-")
    env = {**os.environ, "LANTERN_DATA_DIR": data, "LANTERN_SCHEDULER_ENABLED": "false"}
    if database_url:
        env["LANTERN_DATABASE_URL"] = database_url
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "lantern",
            "source",
            "create",
            f"bench-{uuid.uuid4().hex[:6]}",
            "--workspace",
            "bench",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = json.loads(made.stdout)["api_key"]
    port = 18000 + random.randrange(1000)
    process = subprocess.Popen(
        [sys.executable, "-m", "lantern", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url, key
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def throughput(url: str, key: str, *, seconds: float, connections: int, size: int) -> float:
    # Bodies are made before the clock starts: the client shares the machine's two cores.
    bodies = [batch_body(size) for _ in range(int(seconds * 400))]
    sent = [0] * connections
    stop = time.monotonic() + seconds

    def worker(slot: int) -> None:
        with httpx.Client(base_url=url, auth=(key, ""), timeout=30) as http:
            i = slot
            while time.monotonic() < stop:
                # A fresh body each time: re-sending one would only hit the dedupe path.
                body = bodies[i] if i < len(bodies) else batch_body(size)
                response = http.post(
                    "/v1/batch", content=body, headers={"Content-Type": "application/json"}
                )
                response.raise_for_status()
                sent[slot] += size
                i += connections

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(sent) / (time.monotonic() - started)


def throughput_wrk(url: str, key: str, *, seconds: float, connections: int) -> float:
    """Events/s with wrk driving the load: a C client leaves the cores to the server."""
    import base64

    auth = base64.b64encode(f"{key}:".encode()).decode()
    run = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{int(seconds)}s",
            "--latency",
            "-s",
            str(Path(__file__).with_name("batch.lua")),
            "-H",
            f"Authorization: Basic {auth}",
            "-H",
            "Content-Type: application/json",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    if "status " in run.stderr:
        raise SystemExit(f"the server refused requests: {run.stderr[:500]}")
    for line in run.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1]) * 100
    raise SystemExit(f"could not read wrk's output: {run.stdout}")


def latency(
    url: str, key: str, *, rate: float, seconds: float, size: int, connections: int
) -> list[float]:
    """Open-loop: requests go out on a fixed schedule whatever the answers do."""
    interval = size / rate
    total = int(seconds / interval)
    bodies = [batch_body(size) for _ in range(total)]
    timings: list[float] = []
    lock = threading.Lock()
    start = time.monotonic() + 0.5

    def worker(slot: int) -> None:
        with httpx.Client(base_url=url, auth=(key, ""), timeout=30) as http:
            for n in range(slot, total, connections):
                due = start + n * interval
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                began = time.monotonic()
                http.post(
                    "/v1/batch", content=bodies[n], headers={"Content-Type": "application/json"}
                ).raise_for_status()
                # Latency counted from when the request was due, so queueing shows.
                with lock:
                    timings.append(
                        time.monotonic() - min(began, due)
                        if began >= due
                        else time.monotonic() - began
                    )

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an already running server (needs --key)")
    parser.add_argument("--key", help="a source API key on that server")
    parser.add_argument("--database-url", help="database for the server this script starts")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--load",
        choices=["wrk", "python"],
        default="wrk" if shutil.which("wrk") else "python",
        help="load generator for the throughput phase (wrk: apt-get install wrk)",
    )
    args = parser.parse_args()

    process = None
    if args.url:
        if not args.key:
            parser.error("--url needs --key")
        url, key = args.url, args.key
    else:
        process, url, key = start_server(args.database_url, args.workers)
    try:
        throughput(url, key, seconds=2, connections=args.connections, size=args.batch)  # warm-up
        rate = throughput(
            url, key, seconds=args.seconds, connections=args.connections, size=args.batch
        )
        timings = latency(
            url,
            key,
            rate=rate / 2,
            seconds=args.seconds,
            size=args.batch,
            connections=args.connections * 2,
        )
    finally:
        if process is not None:
            process.terminate()
            process.wait()
    timings.sort()
    p50 = statistics.median(timings) * 1000
    p99 = timings[int(len(timings) * 0.99) - 1] * 1000
    engine = (args.database_url or "sqlite").split(":")[0]
    print(f"engine {engine}  workers {args.workers}  batch {args.batch}  load {args.load}")
    print(f"throughput: {rate:,.0f} events/s   (budget >= 20,000)")
    print(
        f"at {rate / 2:,.0f} events/s: p50 {p50:.1f} ms  p99 {p99:.1f} ms   (budget p99 <= 100 ms)"
    )
    print(
        json.dumps(
            {
                "engine": engine,
                "events_per_s": round(rate),
                "p50_ms": round(p50, 1),
                "p99_ms": round(p99, 1),
                "workers": args.workers,
            }
        )
    )


if __name__ == "__main__":
    main()
