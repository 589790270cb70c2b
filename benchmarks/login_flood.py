#!/usr/bin/env python3
"""Ingest latency through /v1/batch with and without a flood of wrong-password logins.

    python benchmarks/login_flood.py                  # SQLite, the shipped login limits
    python benchmarks/login_flood.py --database-url postgresql+psycopg://127.0.0.1/test

For each scenario it starts its own `lantern serve` on a loopback port, sends batches of
100 events at a fixed rate for --seconds and reports p50/p99 latency; then does the same
while --flood threads post wrong passwords to /api/v1/auth/login as fast as the server
answers, and reports what the flood was answered, how long /healthz took meanwhile, and
the server's peak RSS. Scenarios:

- "shipped limits": the flood comes from one address, so after 20 failures it is refused
  (429) before any password is checked;
- "limits lifted": failure limits set out of reach, so every login reaches the password
  check: what the bounded pool of checks alone holds back.

Everything is bounded in time and stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import threading
import time
from collections import Counter
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

import httpx
from ingest import latency, peak_rss_mb, start_server  # type: ignore[import-not-found]

LIFTED = {
    "LANTERN_LOGIN_FAILURES_PER_ADDRESS": "1000000000",
    "LANTERN_LOGIN_FAILURES_PER_ACCOUNT": "1000000000",
}


def flood(url: str, threads: int, stop: Event, results: Queue) -> None:
    """Wrong-password logins from `threads` threads until `stop`; puts the answers' statuses.

    Run in a process of its own, so that its threads do not slow the process measuring.
    """
    answers: Counter[int] = Counter()
    lock = threading.Lock()

    def attacker(n: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                try:
                    status = client.post(
                        "/api/v1/auth/login",
                        json={"email": f"victim{n % 4}@example.com", "password": "wrong guess"},
                    ).status_code
                except httpx.HTTPError:
                    status = 0  # refused or timed out
                with lock:
                    answers[status] += 1

    workers = [threading.Thread(target=attacker, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(dict(answers))


def healthz_times(url: str, *, stop: threading.Event) -> list[float]:
    """How long /healthz takes, asked every 0.5 s until `stop`."""
    times = []
    while not stop.is_set():
        started = time.monotonic()
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url + "/healthz", timeout=30)
        times.append(time.monotonic() - started)
        stop.wait(0.5)
    return times


def percentiles(timings: list[float]) -> str:
    timings = sorted(timings)
    p50 = statistics.median(timings) * 1000
    p99 = timings[max(0, int(len(timings) * 0.99) - 1)] * 1000
    return f"p50 {p50:,.1f} ms  p99 {p99:,.1f} ms"


def scenario(name: str, args: argparse.Namespace, env: dict[str, str]) -> None:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        process, url, key = start_server(args.database_url, 1, f"lantern-flood-{os.getpid()}")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        measure = dict(rate=args.rate, seconds=args.seconds, size=100, connections=16)
        latency(url, key, **{**measure, "seconds": 2})  # warm-up
        quiet = latency(url, key, **measure)
        rss_quiet = peak_rss_mb(process.pid)
        stop, stop_watching = multiprocessing.Event(), threading.Event()
        results: Queue = multiprocessing.Queue()
        health: list[float] = []
        flooding = multiprocessing.Process(target=flood, args=(url, args.flood, stop, results))
        watching = threading.Thread(
            target=lambda: health.extend(healthz_times(url, stop=stop_watching))
        )
        flooding.start()
        watching.start()
        time.sleep(1)  # the flood is on before ingest is measured
        try:
            loud = latency(url, key, **measure)
        finally:
            stop.set()
            stop_watching.set()
            answers: Counter[int] = Counter(results.get(timeout=60))
            flooding.join()
            watching.join()
        rss_flood = peak_rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait()
    seen = ", ".join(f"{code or 'no answer'}: {n:,}" for code, n in sorted(answers.items()))
    print(f"[{name}]")
    print(f"  ingest at {args.rate:,.0f} events/s, quiet:          {percentiles(quiet)}")
    print(f"  ingest at {args.rate:,.0f} events/s, during flood:   {percentiles(loud)}")
    print(f"  flood of {args.flood} threads answered: {seen}")
    print(f"  /healthz during flood: slowest {max(health) * 1000:,.0f} ms of {len(health)}")
    print(f"  server peak RSS: {rss_quiet:,.0f} MB quiet, {rss_flood:,.0f} MB after the flood")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="database for the servers this script starts")
    parser.add_argument("--rate", type=float, default=5000, help="ingest events/s measured")
    parser.add_argument("--seconds", type=float, default=12.0, help="each measurement's length")
    parser.add_argument("--flood", type=int, default=48, help="concurrent login threads")
    parser.add_argument(
        "--scenario", choices=["shipped", "lifted", "both"], default="both", help="which to run"
    )
    args = parser.parse_args()
    print(f"engine {(args.database_url or 'sqlite').split(':')[0]}  one worker")
    if args.scenario in ("shipped", "both"):
        scenario("shipped limits", args, {})
    if args.scenario in ("lifted", "both"):
        scenario("failure limits lifted: the bounded password checks alone", args, LIFTED)


if __name__ == "__main__":
    main()
