"""Detection speed: `lantern replay` of a bench set, and one hourly pass over many metrics.

    python benchmarks/detect_speed.py [--bench DIR] [--metrics 10000] [--jobs 2]

Prints two figures: the wall time of `lantern replay DIR/series` (budget 60 s for 300
series x 8 weeks) and of one `score_batch` pass judging the newest hour of N trained
metrics whose states were advanced up to the hour before (budget 10 s for 10,000).
The metrics are bench-like synthetic series; their states are prepared first, untimed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from lantern.detect import MetricState, new_state, score_batch

DAYS = 35
START = pd.Timestamp("2026-01-05", tz="UTC")


def synthetic_frame(metrics: int, seed: int) -> pd.DataFrame:
    """Hourly counts of ``metrics`` series: daily and weekly rhythm, growth, NB noise."""
    rng = np.random.default_rng(seed)
    hours = np.arange(DAYS * 24)
    peak = np.exp(rng.uniform(np.log(3), np.log(20000), metrics))
    phase = rng.integers(0, 24, metrics)
    daily = 0.55 + 0.45 * np.sin(2 * np.pi * (hours[None, :] + phase[:, None]) / 24)
    weekly = np.where((hours // 24) % 7 >= 5, 0.7, 1.0)[None, :]
    lam = peak[:, None] * daily * weekly
    lam = rng.gamma(100.0, lam / 100.0)
    index = pd.date_range(START, periods=len(hours), freq="h", tz="UTC")
    return pd.DataFrame(rng.poisson(lam).T.astype(float), index=index)


def _prepare(args: tuple[pd.DataFrame, pd.Timestamp]) -> dict[int, MetricState]:
    frame, now = args
    # metrics two weeks old: trained, with a weekly model, cheap to prepare
    first = frame.index[-15 * 24]
    states = {int(k): new_state(first, stagger=int(k) % 24) for k in frame.columns}
    return {k: v[0] for k, v in score_batch(states, frame, now).items()}


def _pass(args: tuple[dict[int, MetricState], pd.DataFrame, pd.Timestamp]) -> int:
    states, frame, now = args
    return sum(len(events) for _, events in score_batch(states, frame, now).values())


def hourly_pass(metrics: int, jobs: int) -> float:
    """Seconds for one pass judging the newest hour of ``metrics`` trained metrics."""
    frame = synthetic_frame(metrics, seed=1)
    now = frame.index[-1]
    parts = np.array_split(np.arange(metrics), jobs * 4)
    with ProcessPoolExecutor(jobs) as pool:
        prepared = list(
            pool.map(_prepare, [(frame.iloc[:-1, p], now - pd.Timedelta(hours=1)) for p in parts])
        )
        states = [dict(p) for p in prepared]
        # the hourly pass: load 28 days + 1 hour for each metric, advance one hour
        window = frame.iloc[-(28 * 24 + 1) :]
        begin = time.perf_counter()
        list(pool.map(_pass, [(s, window[list(s)], now) for s in states]))
        return time.perf_counter() - begin


def replay_time(bench: Path | None, jobs: int) -> float:
    """Seconds of wall time for `lantern replay` of a bench set (generated when not given)."""
    with tempfile.TemporaryDirectory() as tmp:
        if bench is None:
            bench = Path(tmp) / "bench"
            generator = Path(__file__).resolve().parents[2] / "shared" / "bench" / "generate.py"
            subprocess.run(
                [sys.executable, str(generator), "--out", str(bench), "--seed", "7"],
                check=True,
                capture_output=True,
            )
        begin = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "lantern",
                "replay",
                str(bench / "series"),
                "--out",
                str(Path(tmp) / "alerts.jsonl"),
                "--jobs",
                str(jobs),
            ],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, default=None, help="a generated bench folder")
    parser.add_argument("--metrics", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    replay = replay_time(args.bench, args.jobs)
    print(f"lantern replay, 300 series x 8 weeks: {replay:.1f} s wall (budget 60 s)")
    seconds = hourly_pass(args.metrics, args.jobs)
    print(f"hourly pass over {args.metrics} trained metrics: {seconds:.1f} s wall (budget 10 s)")


if __name__ == "__main__":
    main()
