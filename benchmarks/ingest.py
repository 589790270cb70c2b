#!/usr/bin/env python3
"""Ingest throughput and latency through /v1/batch against a running `lantern serve`.

    python benchmarks/ingest.py                      # starts its own server on SQLite
    python benchmarks/ingest.py --workers 1          # ... with one worker process
    python benchmarks/ingest.py --at-cap 10000       # a source at its metric cap
    python benchmarks/ingest.py --database-url postgresql+psycopg://127.0.0.1/test
    python benchmarks/ingest.py --url http://127.0.0.1:8000 --key KEY   # an existing server
    python benchmarks/ingest.py --baseline /tmp/main   # and main's code, in the same run

Phase 1 sends batches of 100 events as fast as N concurrent connections allow (with wrk
when it is installed, else Python threads) and reports events/s, and the server's CPU time
per accepted event: the figure to drive down, since wall-clock rates move with whatever
else the machine runs. Phase 2 sends at half that rate (open loop, fixed schedule) and
reports p50/p99 request latency. The server's peak RSS (all its processes) closes the
report. Each event has a fresh messageId, one of 50 event names, and the context of one
of 420 clients (mobile and web libraries, OS names, app versions, locales, page paths):
every default breakdown dimension has values to count.

Then, in the same invocation, the same throughput phase runs against the limit
(`benchmarks/ingest_limit.py`: the same HTTP server, only authenticating and parsing), and
Lantern's CPU per event and rate are printed as ratios to it. `--no-limit` skips it.

CPU and memory are read from /proc (Linux): the server this script starts, or `--pid`.
On PostgreSQL the backends serving the server are measured too (they share the cores),
and so is the load generator. Their sum is the CPU an event costs on this machine, and
the rate the machine's cores would take at that cost, were they given to this run alone,
is printed beside the rate measured: on a machine shared with other work the two differ.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
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
TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (uvicorn's worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by `pid` and its descendants."""
    return cpu_of(process_tree(pid))


def cpu_of(pids: list[int]) -> float:
    """User + system CPU seconds used so far by the processes `pids` (gone ones: 0)."""
    total = 0.0
    for member in pids:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    return total


def pss_mb(pid: int) -> float:
    """The server's proportional set size now, in MB: shared pages split between sharers."""
    total = 0
    for member in process_tree(pid):
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total / 1024


def peak_rss_mb(pid: int) -> float:
    """The sum of each server process's peak resident set (VmHWM), in MB."""
    total = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def client_context(n: int) -> dict[str, object]:
    """The context of one of a few hundred clients: what the official libraries send.

    Mobile and web libraries, a few OS names, app versions and locales, and page paths
    for the web, so that every default breakdown dimension has values to count.
    """
    library, os_name = [
        ("analytics-ios", "iOS"),
        ("analytics-android", "Android"),
        ("analytics.js", None),
        ("analytics-python", None),
    ][n % 4]
    context: dict[str, object] = {
        "library": {"name": library, "version": "4.1.0"},
        "locale": ["en-US", "de-DE", "fr-FR", "pt-BR", "en-GB", "ja-JP"][n % 6],
        "ip": f"198.51.100.{n % 250}",
    }
    if os_name:
        context["os"] = {"name": os_name, "version": "17.1"}
        context["app"] = {"name": "Shop", "version": f"5.{n % 7}"}
    elif library == "analytics.js":
        path = ["/", "/pricing", "/docs", "/checkout", "/orders/1234"][n % 5]
        context["page"] = {"path": path, "url": f"https://shop.example{path}?utm=x"}
    return context


CONTEXTS = [client_context(n) for n in range(420)]


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
            "context": random.choice(CONTEXTS),
        }
        for _ in range(size)
    ]
    return json.dumps({"batch": events, "sentAt": now}).encode()


def database_backends(database_url: str, application: str) -> list[int]:
    """Process ids of the PostgreSQL backends serving connections named `application`."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": application},
            )
            return [row[0] for row in rows]
    finally:
        engine.dispose()


def fill_to_cap(database_url: str, source_id: int, cap: int) -> None:
    """Give the source `cap` metrics of its own, so every new name falls past the cap."""
    from sqlalchemy import create_engine, insert

    from lantern.metrics.models import Metric

    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(Metric),
                [
                    {"source_id": source_id, "kind": "track", "name": f"Earlier {n}"}
                    for n in range(cap)
                ],
            )
    finally:
        engine.dispose()


def start_server(
    database_url: str | None,
    workers: int,
    application: str,
    *,
    at_cap: int | None = None,
    code: str | None = None,
) -> tuple[subprocess.Popen[bytes], str, str]:
    """A `lantern serve` on a fresh data folder and a new source; `code` runs another
    checkout's lantern (the baseline) instead of this one."""
    data = tempfile.mkdtemp(prefix="lantern-bench-")
    env = {**os.environ, "LANTERN_DATA_DIR": data, "LANTERN_SCHEDULER_ENABLED": "false"}
    # `python -m` puts the working folder first on the path: the baseline runs from its own.
    cwd = str(Path(code).resolve()) if code else None
    if cwd:
        env["PYTHONPATH"] = cwd
    if database_url:
        env["LANTERN_DATABASE_URL"] = database_url
        env["PGAPPNAME"] = application  # libpq names the server's connections
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
        cwd=cwd,
    )
    key = json.loads(made.stdout)["api_key"]
    if at_cap:
        fill_to_cap(
            database_url or f"sqlite:///{Path(data) / 'lantern.db'}",
            json.loads(made.stdout)["id"],
            at_cap,
        )
    port = 18000 + random.randrange(1000)
    process = subprocess.Popen(
        [sys.executable, "-m", "lantern", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        cwd=cwd,
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


def start_limit(key: str) -> tuple[subprocess.Popen[bytes], str]:
    """The parse-only app of `ingest_limit.py`, accepting `key`, on a port of its own."""
    port = 18000 + random.randrange(1000)
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("ingest_limit.py")),
            "--port",
            str(port),
            "--key",
            key,
        ]
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(url + "/", timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the parse-only app did not start")


def throughput(
    url: str, key: str, *, seconds: float, connections: int, size: int
) -> tuple[int, float, float]:
    """(events sent, seconds, the load's CPU seconds) with Python threads driving the load."""
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

    started, cpu = time.monotonic(), time.process_time()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(sent), time.monotonic() - started, time.process_time() - cpu


def children_cpu() -> float:
    """User + system CPU seconds of this script's finished child processes."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def throughput_wrk(
    url: str, key: str, *, seconds: float, connections: int, size: int
) -> tuple[int, float, float]:
    """(events sent, seconds, wrk's CPU seconds) with wrk driving the load: a C client
    leaves the cores to the server. batch.lua writes 100 events a request and reports any
    answer but 200."""
    import base64

    auth = base64.b64encode(f"{key}:".encode()).decode()
    cpu = children_cpu()
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
            "--",
            str(size),
            uuid.uuid4().hex[:12],
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    if "status " in run.stderr:
        raise SystemExit(f"the server refused requests: {run.stderr[:500]}")
    for line in run.stdout.splitlines():
        # "  123456 requests in 10.00s, 1.23MB read"
        if " requests in " in line:
            requests, _, rest = line.strip().partition(" requests in ")
            duration = rest.split(",")[0]
            factor = {"ms": 1e-3, "m": 60.0, "s": 1.0}
            unit = next(u for u in ("ms", "m", "s") if duration.endswith(u))
            elapsed = float(duration[: -len(unit)]) * factor[unit]
            return int(requests) * size, elapsed, children_cpu() - cpu
    raise SystemExit(f"could not read wrk's output: {run.stdout}")


def latency(
    url: str, key: str, *, rate: float, seconds: float, size: int, connections: int
) -> list[float]:
    """Open loop: requests go out on a fixed schedule whatever the answers do.

    Each latency is counted from when the request was due, so time spent waiting for a
    free connection shows. Raw asyncio sockets rather than an HTTP library: the client
    shares the machine's cores with the server and must cost little.
    """
    import asyncio
    import base64

    interval = size / rate
    total = int(seconds / interval)
    host, port = url.removeprefix("http://").split(":")
    auth = base64.b64encode(f"{key}:".encode()).decode()
    requests = []
    for _ in range(total):
        body = batch_body(size)
        head = (
            f"POST /v1/batch HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Basic {auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    timings: list[float] = []

    async def send(
        idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]], n: int, due: float
    ) -> None:
        reader, writer = await idle.get()
        writer.write(requests[n])
        status = await reader.readuntil(b"\r\n")
        headers = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in headers.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        timings.append(time.monotonic() - due)
        idle.put_nowait((reader, writer))
        if b" 200 " not in status:
            raise SystemExit(f"the server answered {status.decode().strip()}")

    async def run() -> None:
        idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        for _ in range(connections):
            idle.put_nowait(await asyncio.open_connection(host, int(port)))
        start = time.monotonic() + 0.2
        tasks = []
        for n in range(total):
            due = start + n * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(idle, n, due)))
        await asyncio.gather(*tasks)
        while not idle.empty():
            idle.get_nowait()[1].close()

    asyncio.run(run())
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an already running server (needs --key)")
    parser.add_argument("--key", help="a source API key on that server")
    parser.add_argument("--pid", type=int, help="that server's process id, for CPU and memory")
    parser.add_argument("--database-url", help="database for the server this script starts")
    parser.add_argument(
        "--workers", type=int, help="server worker processes [default: lantern serve's]"
    )
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--latency-rate",
        type=float,
        help="events/s of the latency phase [default: half the measured throughput]",
    )
    parser.add_argument(
        "--at-cap",
        type=int,
        metavar="CAP",
        help="first give the source CAP metrics (the server's LANTERN_METRIC_CAP, 10000 by "
        "default), so that every event name of the load falls past its metric cap",
    )
    parser.add_argument(
        "--no-limit",
        action="store_true",
        help="skip the run of the parse-only app (the limit) after Lantern's",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="a checkout of other code (`git archive main | tar -x -C DIR`): its server is "
        "measured in the same run under the same load, and its CPU per event printed beside "
        "this code's",
    )
    parser.add_argument(
        "--baseline-database-url",
        help="the baseline's database on PostgreSQL (not --database-url's: each server "
        "migrates its own)",
    )
    parser.add_argument(
        "--load",
        choices=["wrk", "python"],
        default="wrk" if shutil.which("wrk") else "python",
        help="load generator for the throughput phase (wrk: apt-get install wrk)",
    )
    args = parser.parse_args()
    if args.workers is None and not args.url:
        args.workers = 1  # what `lantern serve` runs by default

    process = None
    pid: int | None = args.pid
    application = f"lantern-bench-{uuid.uuid4().hex[:8]}"
    postgres = bool(args.database_url and args.database_url.startswith("postgres"))
    if args.url:
        if not args.key:
            parser.error("--url needs --key")
        url, key = args.url, args.key
    else:
        process, url, key = start_server(
            args.database_url, args.workers, application, at_cap=args.at_cap
        )
        pid = process.pid

    def backends() -> dict[int, float]:
        """CPU seconds so far of each PostgreSQL backend serving the server."""
        if not postgres or process is None:
            return {}
        return {b: cpu_of([b]) for b in database_backends(args.database_url, application)}

    def load(seconds: float, target: str | None = None) -> tuple[int, float, float]:
        target = target or url
        if args.load == "wrk":
            return throughput_wrk(
                target, key, seconds=seconds, connections=args.connections, size=args.batch
            )
        return throughput(
            target, key, seconds=seconds, connections=args.connections, size=args.batch
        )

    def limit() -> tuple[float, float]:
        """(events/s, CPU us per event) of the parse-only app under the same load."""
        limit_process, limit_url = start_limit(key)
        try:
            load(2, limit_url)
            before = cpu_seconds(limit_process.pid)
            events, elapsed, _ = load(args.seconds, limit_url)
            spent = cpu_seconds(limit_process.pid) - before
        finally:
            limit_process.terminate()
            limit_process.wait()
        return events / elapsed, spent / events * 1e6

    def baseline() -> tuple[float, float | None, float]:
        """(server CPU us per event, its PostgreSQL backends' CPU us per event, its peak
        RSS in MB) of the baseline code, under the same throughput load."""
        base_url = args.baseline_database_url or (None if not postgres else args.database_url)
        if postgres and base_url == args.database_url:
            parser.error("--baseline on PostgreSQL needs --baseline-database-url")
        tag = f"{application}-base"
        base, base_target, base_key = start_server(
            base_url, args.workers, tag, at_cap=args.at_cap, code=args.baseline
        )
        nonlocal key
        key, own_key = base_key, key
        try:
            load(2, base_target)
            before = cpu_seconds(base.pid)
            dbs = {b: cpu_of([b]) for b in database_backends(base_url, tag)} if postgres else {}
            sent, _, _ = load(args.seconds, base_target)
            spent = cpu_seconds(base.pid) - before
            after = {b: cpu_of([b]) for b in database_backends(base_url, tag)} if postgres else {}
            base_rss = peak_rss_mb(base.pid)
        finally:
            key = own_key
            base.terminate()
            base.wait()
        db_spent = sum(cpu - dbs.get(b, 0.0) for b, cpu in after.items())
        return spent / sent * 1e6, (db_spent / sent * 1e6 if postgres else None), base_rss

    load_before = os.getloadavg()
    try:
        load(2)  # warm-up: imports, caches, the first metrics
        cpu_before = cpu_seconds(pid) if pid else None
        db_before = backends()
        events, elapsed, load_cpu = load(args.seconds)
        cpu_used = cpu_seconds(pid) - cpu_before if pid and cpu_before is not None else None
        db_after = backends()
        db_used = sum(spent - db_before.get(b, 0.0) for b, spent in db_after.items())
        rate = events / elapsed
        paced = args.latency_rate or rate / 2
        timings = latency(
            url,
            key,
            rate=paced,
            seconds=args.seconds,
            size=args.batch,
            connections=args.connections * 2,
        )
        rss = peak_rss_mb(pid) if pid else None
        pss = pss_mb(pid) if pid else None
    finally:
        if process is not None:
            process.terminate()
            process.wait()
    limit_rate, limit_us = limit() if not args.no_limit else (None, None)
    base_us, base_db_us, base_rss = baseline() if args.baseline else (None, None, None)
    timings.sort()
    p50 = statistics.median(timings) * 1000
    p99 = timings[int(len(timings) * 0.99) - 1] * 1000
    engine = (args.database_url or "sqlite").split(":")[0]
    cpu_us = cpu_used / events * 1e6 if cpu_used is not None else None
    at_cap = f"  source at its cap of {args.at_cap:,} metrics" if args.at_cap else ""
    print(f"engine {engine}  workers {args.workers}  batch {args.batch}  load {args.load}{at_cap}")
    print(
        "machine load average (1 min) before/after: "
        f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(f"throughput: {rate:,.0f} events/s   (budget >= 50,000)")
    db_us = db_used / events * 1e6 if postgres and process is not None else None
    if cpu_us is not None and cpu_used is not None:
        print(f"server CPU: {cpu_us:.1f} us/event ({cpu_used:.1f} CPU s for {events:,} events)")
    if db_us is not None:
        print(f"PostgreSQL backends' CPU: {db_us:.1f} us/event (same cores, not in the above)")
    load_us = load_cpu / events * 1e6
    print(f"load generator's CPU: {load_us:.1f} us/event ({args.load})")
    if cpu_us is not None:
        whole = cpu_us + (db_us or 0.0) + load_us
        cores = os.cpu_count() or 1
        bound = cores * 1e6 / whole
        if args.workers:  # each server process runs its Python on one core at most
            bound = min(bound, args.workers * 1e6 / cpu_us)
        print(
            f"all of it: {whole:.1f} us of CPU an event; the {cores} cores given to this run "
            f"alone would take about {bound:,.0f} events/s"
        )
    print(f"at {paced:,.0f} events/s: p50 {p50:.1f} ms  p99 {p99:.1f} ms   (budget p99 <= 50 ms)")
    if rss is not None and pss is not None:
        print(
            f"server peak RSS: {rss:,.0f} MB, each process's peak summed   (budget <= 500);"
            f" PSS at the end: {pss:,.0f} MB"
        )
    if limit_rate is not None and limit_us is not None:
        print(
            f"limit (parse-only app, same load): {limit_rate:,.0f} events/s, "
            f"{limit_us:.1f} us/event of CPU"
        )
        if cpu_us is not None:
            print(
                f"Lantern against the limit: {rate / limit_rate:.1%} of its rate, "
                f"{cpu_us / limit_us:.1f}x its CPU per event"
            )
    if base_us is not None and cpu_us is not None:
        print(
            f"baseline ({args.baseline}), same load: server CPU {base_us:.1f} us/event, "
            f"peak RSS {base_rss:,.0f} MB (throughput phase only)"
        )
        if base_db_us is not None and db_us is not None:
            print(f"baseline's PostgreSQL backends' CPU: {base_db_us:.1f} us/event")
        mine = cpu_us + (db_us or 0.0)
        theirs = base_us + (base_db_us or 0.0)
        print(
            f"this code against the baseline: {mine - theirs:+.1f} us/event of server"
            f"{' and database' if db_us is not None else ''} CPU ({mine / theirs - 1:+.1%})"
        )
    print(
        json.dumps(
            {
                "engine": engine,
                "events_per_s": round(rate),
                "baseline_cpu_us_per_event": round(base_us, 1) if base_us is not None else None,
                "baseline_db_cpu_us_per_event": (
                    round(base_db_us, 1) if base_db_us is not None else None
                ),
                "cpu_us_per_event": round(cpu_us, 1) if cpu_us is not None else None,
                "db_cpu_us_per_event": round(db_us, 1) if db_us is not None else None,
                "load_cpu_us_per_event": round(load_us, 1),
                "machine_load": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
                "latency_at": round(paced),
                "p50_ms": round(p50, 1),
                "p99_ms": round(p99, 1),
                "peak_rss_mb": round(rss) if rss is not None else None,
                "pss_mb": round(pss) if pss is not None else None,
                "workers": args.workers,
                "at_cap": args.at_cap,
                "limit_events_per_s": round(limit_rate) if limit_rate is not None else None,
                "limit_cpu_us_per_event": round(limit_us, 1) if limit_us is not None else None,
            }
        )
    )


if __name__ == "__main__":
    main()
