#!/usr/bin/env python3
"""Soak: sustained Segment batches, a kill -9 half-way, then every batch sent again.

    python benchmarks/soak.py                                  # 10 minutes, 2,000 events/s, SQLite
    python benchmarks/soak.py --minutes 2 --engine postgresql  # its own database on 127.0.0.1:5432

The script starts `lantern serve` itself (loopback only, a fresh data folder; on
PostgreSQL a database of its own, created on 127.0.0.1:5432 and dropped at the end) with
a new source, then sends `--rate` events/s through /v1/batch for `--minutes`, in batches
of `--batch` events on a fixed schedule (open loop, `--connections` at once). The events
look like an analytics library's: track, page, screen and identify calls, a few event
names, a unique messageId each, context and properties. At `--kill-at` minutes (default:
half-way) the server is killed with SIGKILL and started again on the same database;
batches refused or cut off meanwhile stay unacknowledged. At the end every batch sent is
sent again (what a Segment client does when it never heard an answer, at-least-once),
as fast as the connections allow. It prints:

- sent: batches and events (first sends; the resend is counted apart);
- acknowledged: distinct events of batches that got a 2xx, in either pass;
- counted: what the database holds for the source, the sum of its per-call-type
  bucket counts (each event adds one to exactly one of them);
- double-counted: counted minus acknowledged, summed per metric where positive;
- lost: acknowledged but not counted, summed per metric where positive;
- errors: non-2xx answers and connection errors other than those the kill caused (from
  the kill until the restarted server answers /healthz);
- the server's peak RSS: VmRSS sampled twice a second and VmHWM, of the server process
  and its children, for each of its two lives;
- the machine's load average before and after: other programs share the cores.

The bar: 0 lost, 0 double-counted, 0 errors and a peak RSS <= 500 MB. `--prefill N`
first stores N other message ids for the source, seen over the last 26 hours, to
start from the table hours of traffic leave (the purge at start-up drops 1 in 13).
Requests are bounded (30 s timeout); the run is bounded by --minutes plus the resend.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
from soak_load import Batch, Tally, metric_of, run_pass

PG_ADMIN_URL = "postgresql+psycopg://127.0.0.1:5432/test"


class Server:
    """`lantern serve` on a data folder, started and killed by this script."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.peaks: list[float] = []  # MB, one per life
        self._sampled = 0.0

    def start(self) -> None:
        command = [sys.executable, "-m", "lantern", "serve", "--host", "127.0.0.1"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._sampled = 0.0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"the server did not start; see {self.log}")

    def sample(self) -> float:
        """RSS now, in MB; remembers the largest seen in this life (VmRSS now, VmHWM so far)."""
        process = self.process  # the kill may clear it meanwhile
        if process is None:
            return 0.0
        total, now = 0, 0
        for pid in process_tree(process.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            rss = max(int(fields.get(name, "0 kB").split()[0]) for name in ("VmRSS", "VmHWM"))
            total += rss
            now += int(fields.get("VmRSS", "0 kB").split()[0])
        self._sampled = max(self._sampled, total / 1024)
        return now / 1024

    def stop(self, sig: int) -> None:
        if self.process is None:
            return
        self.sample()
        self.peaks.append(self._sampled)
        os.killpg(self.process.pid, sig)
        self.process.wait(timeout=60)
        self.process = None


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def prefill(url: str, source_id: int, rows: int) -> None:
    """Remember `rows` other message ids for the source, as hours of earlier traffic would.

    They are spread over the last 26 hours, so the purge that runs at the server's start
    deletes one in 13 of them (those seen before the 24-hour horizon).
    """
    from sqlalchemy import create_engine, text

    now = int(time.time())
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(
                    text(
                        "INSERT INTO seen_messages (source_id, digest, seen_second) "
                        "SELECT :source, "
                        "('x' || md5(random()::text || g::text))::bit(64)::bigint, "
                        ":now - 1800 - g % 26 * 3600 "
                        "FROM generate_series(1, :rows) AS g ON CONFLICT DO NOTHING"
                    ),
                    {"source": source_id, "now": now, "rows": rows},
                )
                return
            for start in range(0, rows, 100_000):
                digests = sorted(
                    int.from_bytes(os.urandom(8), "big", signed=True)
                    for _ in range(min(100_000, rows - start))
                )
                connection.execute(
                    text("INSERT INTO seen_messages VALUES (:source, :digest, :seen)"),
                    [
                        {"source": source_id, "digest": d, "seen": now - 1800 - n % 26 * 3600}
                        for n, d in enumerate(digests)
                    ],
                )
    finally:
        engine.dispose()


def database_counts(url: str, source_id: int) -> Counter[tuple[str, str]]:
    """Bucket counts summed per metric for the source, as the database holds them."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT m.kind, m.name, sum(b.count) FROM buckets b "
                    "JOIN metrics m ON m.id = b.metric_id WHERE m.source_id = :source "
                    "GROUP BY m.kind, m.name"
                ),
                {"source": source_id},
            )
            return Counter({(kind, name): int(total) for kind, name, total in rows})
    finally:
        engine.dispose()


def admin(statement: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="load duration [10]")
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s [2000]")
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--kill-at", type=float, help="minute of the SIGKILL and restart [half of --minutes]"
    )
    parser.add_argument("--batch", type=int, default=100, help="events per request [100]")
    parser.add_argument("--connections", type=int, default=4, help="requests at once [4]")
    parser.add_argument(
        "--prefill",
        type=int,
        default=0,
        help="message ids already remembered before the load, as after hours of traffic"
        " (24 hours at 2,000 events/s is 172,800,000) [0]",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.kill_at is None:
        args.kill_at = args.minutes / 2
    return args


def lantern(env: dict[str, str], *command: str) -> str:
    """Run a `lantern` command on the soak's database; its standard output."""
    run = subprocess.run(
        [sys.executable, "-m", "lantern", *command],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout


def schedule(args: argparse.Namespace) -> list[Batch]:
    """Every batch of the first pass, each stamped with the time it is due."""
    total = int(args.minutes * 60 * args.rate / args.batch)
    interval = args.batch / args.rate
    started = datetime.now(UTC).timestamp()
    return [
        Batch(
            n,
            args.seed * 1_000_003 + n,
            datetime.fromtimestamp(started + n * interval, UTC).isoformat(timespec="milliseconds"),
            args.batch,
        )
        for n in range(total)
    ]


def first_pass(
    args: argparse.Namespace, server: Server, key: str, work: list[Batch], tally: Tally
) -> None:
    """The load on its schedule, with the server killed and restarted at `--kill-at`."""
    down, killed = threading.Event(), threading.Event()
    last_sample, last_line = [0.0], [0.0]

    def kill_and_restart() -> None:
        down.set()
        server.stop(signal.SIGKILL)
        print(f"killed the server with SIGKILL at {args.kill_at:g} min; restarting", flush=True)
        server.start()
        down.clear()

    def tick(elapsed: float) -> None:
        if elapsed - last_sample[0] >= 0.5:
            rss = server.sample()
            last_sample[0] = elapsed
            if elapsed - last_line[0] >= 30:
                last_line[0] = elapsed
                print(f"{elapsed / 60:5.1f} min: RSS {rss:,.0f} MB", flush=True)
        if not killed.is_set() and elapsed >= args.kill_at * 60:
            killed.set()
            # The kill and restart run beside the schedule, as a crash would.
            threading.Thread(target=kill_and_restart).start()

    run_pass(
        server.url,
        key,
        work,
        tally,
        down,
        connections=args.connections,
        interval=args.batch / args.rate,
        on_tick=tick,
    )
    while down.is_set():  # a kill just before the end: wait for the restart
        time.sleep(0.1)


def resend(
    args: argparse.Namespace, server: Server, key: str, work: list[Batch], tally: Tally
) -> None:
    """Every batch again, as fast as the connections allow, the server's RSS sampled."""
    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(0.5):
            server.sample()

    sampling = threading.Thread(target=sampler)
    sampling.start()
    try:
        run_pass(
            server.url,
            key,
            work,
            tally,
            threading.Event(),
            connections=args.connections,
            interval=None,
        )
    finally:
        stop.set()
        sampling.join()


def report(
    args: argparse.Namespace,
    work: list[Batch],
    tally: Tally,
    counts: Counter[tuple[str, str]],
    *,
    peaks: list[float],
    seconds: tuple[float, float],
    load_before: tuple[float, float, float],
) -> None:
    """Print the figures, then the same as one JSON line."""
    expected: Counter[tuple[str, str]] = Counter()
    for batch in work:
        if batch.acknowledged:
            expected.update(metric_of(call) for call in batch.events())
    counted = {k: v for k, v in counts.items() if k[0] == "total"}
    keys = set(counted) | set(expected)
    doubled = sum(max(0, counted.get(k, 0) - expected[k]) for k in keys)
    lost = sum(max(0, expected[k] - counted.get(k, 0)) for k in keys)
    load = os.getloadavg()
    events = len(work) * args.batch
    lives = "before the kill, after the restart" if len(peaks) > 1 else "one life"
    print(
        f"engine {args.engine}: {args.minutes:g} min at {args.rate:,.0f} events/s,"
        f" SIGKILL at {args.kill_at:g} min, then every batch resent"
    )
    print(
        f"sent:           {len(work):,} batches, {events:,} events"
        f" (first pass {seconds[0]:.0f} s; resend {seconds[1]:.0f} s)"
    )
    print(f"acknowledged:   {sum(expected.values()):,} distinct events (2xx in either pass)")
    print(f"counted:        {sum(counted.values()):,} (per-call-type bucket counts)")
    print(f"double-counted: {doubled:,}")
    print(f"lost:           {lost:,}")
    print(
        f"errors:         {len(tally.errors):,}"
        f" (and {tally.kill_errors:,} requests cut off or refused by the kill)"
    )
    for line in tally.errors[:10]:
        print("   ", line)
    print(
        f"server peak RSS: {' MB, then '.join(f'{p:,.0f}' for p in peaks)} MB ({lives})"
        "   (budget <= 500)"
    )
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*load_before))
    print("load average after:  {:.2f} {:.2f} {:.2f}".format(*load))
    figures = {
        "engine": args.engine,
        "minutes": args.minutes,
        "rate": args.rate,
        "batches_sent": len(work),
        "events_sent": events,
        "first_pass_seconds": round(seconds[0], 1),
        "resend_seconds": round(seconds[1], 1),
        "acknowledged_events": sum(expected.values()),
        "counted": sum(counted.values()),
        "double_counted": doubled,
        "lost": lost,
        "errors": len(tally.errors),
        "cut_off_by_the_kill": tally.kill_errors,
        "answers": dict(tally.statuses),
        "accepted": tally.accepted,
        "duplicates": tally.duplicates,
        "rejected": tally.rejected,
        "peak_rss_mb": [round(peak) for peak in peaks],
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load],
    }
    print(json.dumps(figures))


def main() -> None:
    args = arguments()
    load_before = os.getloadavg()
    data = Path(tempfile.mkdtemp(prefix="lantern-soak-"))
    env = {**os.environ, "LANTERN_DATA_DIR": str(data), "LANTERN_LOG_LEVEL": "warning"}
    database = f"lantern_soak_{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{data / 'lantern.db'}"
    if args.engine == "postgresql":
        admin(f'CREATE DATABASE "{database}"')
        url = env["LANTERN_DATABASE_URL"] = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database
    server = Server(env, 18000 + random.randrange(1000), data / "server.log")
    try:
        lantern(env, "db", "upgrade")
        source = json.loads(lantern(env, "source", "create", "soak", "-w", "soak", "--json"))
        key, source_id = source["api_key"], int(source["id"])
        if args.prefill:
            clock = time.monotonic()
            prefill(url, source_id, args.prefill)
            print(f"prefilled {args.prefill:,} message ids in {time.monotonic() - clock:.0f} s")
        server.start()
        work, tally = schedule(args), Tally()
        clock = time.monotonic()
        first_pass(args, server, key, work, tally)
        first = time.monotonic() - clock
        print(f"sent {len(work):,} batches in {first:.0f} s; resending them all", flush=True)
        clock = time.monotonic()
        resend(args, server, key, work, tally)
        again = time.monotonic() - clock
        server.stop(signal.SIGTERM)
        counts = database_counts(url, source_id)
        report(
            args,
            work,
            tally,
            counts,
            peaks=server.peaks,
            seconds=(first, again),
            load_before=load_before,
        )
    finally:
        if server.process is not None:
            server.stop(signal.SIGKILL)
        if args.engine == "postgresql":
            admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
