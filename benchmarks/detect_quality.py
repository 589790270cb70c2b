"""Detection quality on both benches: Lantern against peer detectors, same rules.

    python benchmarks/detect_quality.py --seeds 11 12 13 [--series 40] [--step 24]
                                        [--no-nab] [--nab-mean-kind mean|value]

For each seed the bench set is generated (or read from --data-root/s<seed>), each
detector is run honest in time (a verdict at hour t sees hours up to t only), alerts are
merged into one per episode (an alert within 24 hours of the previous one of the same
series is dropped), and the bench's own score.py judges them. Peers need the `bench`
extra (`pip install -e .[bench]`):

- `sesd`: S-H-ESD (Hochenbaum et al. 2017) on the last 14 days, run every --step hours;
  anomalies among the newest --step hours alert at the batch's last hour.
- `ruptures-pelt`: PELT (Killick et al. 2012) on the remainder of an STL(24) of log
  counts over the last 14 days, every --step hours; a change point among the newest
  --step hours alerts at the batch's last hour.

Lantern runs hour by hour on every series; peers, being slower, on the first --series
series of each seed (Lantern is scored on that subset too, for the comparison line).

Then the real series of NAB (../shared/bench/nab.py: realKnownCause, realTweets,
realTraffic, realAdExchange, and realAWSCloudwatch apart), bucketed by hour into
--data-root/nab: Lantern replays the counts with kind "count" and the hourly means with
--nab-mean-kind; the peers run on every NAB series; nab.py scores all of them with NAB's
rules (F1, false alerts a week per series, NAB standard score).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from lantern.replay import alerts_of

BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench"
WINDOW = 14 * 24
TRAINING = 7 * 24
EPISODE = 24


def sesd_hours(values: np.ndarray, step: int) -> list[int]:
    """Hours at which S-H-ESD raises an alert, batch by batch."""
    import sesd

    found = []
    for end in range(TRAINING + step, len(values) + 1, step):
        window = np.log1p(values[max(0, end - WINDOW) : end])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            anomalies = sesd.seasonal_esd(window, periodicity=24, hybrid=True, max_anomalies=8)
        if any(int(a) >= len(window) - step for a in anomalies):
            found.append(end - 1)
    return found


def pelt_hours(values: np.ndarray, step: int) -> list[int]:
    """Hours at which PELT finds a change point among the newest hours of STL residuals."""
    import ruptures
    from statsmodels.tsa.seasonal import STL

    found = []
    for end in range(TRAINING + step, len(values) + 1, step):
        window = np.log1p(values[max(0, end - WINDOW) : end])
        resid = np.asarray(STL(window, period=24, robust=True).fit().resid)
        scale = 1.4826 * np.median(np.abs(resid - np.median(resid))) + 1e-9
        points = ruptures.Pelt(model="l2", min_size=3).fit(resid / scale).predict(pen=60)
        if any(len(window) - step <= p < len(window) for p in points[:-1]):
            found.append(end - 1)
    return found


PEERS: dict[str, Callable[[np.ndarray, int], list[int]]] = {
    "sesd": sesd_hours,
    "ruptures-pelt": pelt_hours,
}


def one_per_episode(hours: list[int]) -> list[int]:
    """Drop alerts within EPISODE hours of the previous kept one."""
    kept: list[int] = []
    for hour in sorted(hours):
        if not kept or hour - kept[-1] > EPISODE:
            kept.append(hour)
    return kept


def run_peer(job: tuple[str, Path, int]) -> list[dict[str, object]]:
    """One peer on one CSV file: alert records."""
    name, path, step = job
    frame = pd.read_csv(path)
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    hours = one_per_episode(PEERS[name](frame["value"].to_numpy(float), step))
    return [{"series": path.stem, "detected_at": stamps[h].isoformat(), "kind": "?"} for h in hours]


def run_lantern(path: Path) -> list[dict[str, object]]:
    return alerts_of(path, "count", "medium")


def score(data: Path, names: list[str], alerts: list[dict[str, object]]) -> dict[str, object]:
    """The bench's score.py on the named series only."""
    with tempfile.TemporaryDirectory() as tmp:
        sub = Path(tmp)
        (sub / "series").mkdir()
        labels = json.loads((data / "labels.json").read_text())
        (sub / "labels.json").write_text(json.dumps({n: labels[n] for n in names}))
        for n in names:
            (sub / "series" / f"{n}.csv").symlink_to(data / "series" / f"{n}.csv")
        alerts_path = sub / "alerts.jsonl"
        alerts_path.write_text("".join(json.dumps(a) + "\n" for a in alerts))
        out = subprocess.run(
            [
                sys.executable,
                str(BENCH / "score.py"),
                "--data",
                str(sub),
                "--alerts",
                str(alerts_path),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def nab_dir(root: Path) -> Path:
    """NAB's series bucketed by hour (counts/ and means/), prepared when missing."""
    data = root / "nab"
    if not (data / "means").exists():
        subprocess.run(
            [sys.executable, str(BENCH / "nab.py"), "prepare", "--out", str(data)],
            check=True,
            capture_output=True,
        )
    return data


def run_lantern_kind(job: tuple[Path, str]) -> list[dict[str, object]]:
    path, kind = job
    return alerts_of(path, kind, "medium")  # type: ignore[arg-type]


def nab_score(alerts: list[dict[str, object]], subsets: str) -> dict[str, object]:
    """nab.py's score of the alerts on the named subsets (its last JSON line)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "alerts.jsonl"
        path.write_text("".join(json.dumps(a) + "\n" for a in alerts))
        out = subprocess.run(
            [
                sys.executable,
                str(BENCH / "nab.py"),
                "score",
                "--alerts",
                str(path),
                "--subsets",
                subsets,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


NAB_SUBSETS = {
    "four subsets": "realKnownCause,realTweets,realTraffic,realAdExchange",
    "realAWSCloudwatch": "realAWSCloudwatch",
}


def nab_rows(
    pool: ProcessPoolExecutor, root: Path, step: int, mean_kind: str
) -> list[tuple[str, str, dict[str, object]]]:
    """(detector, subset, nab.py's score) for Lantern and each peer on NAB."""
    data = nab_dir(root)
    counts = sorted((data / "counts").glob("*.csv"))
    means = sorted((data / "means").glob("*.csv"))
    jobs = [(f, "count") for f in counts] + [(f, mean_kind) for f in means]
    found: dict[str, list[dict[str, object]]] = {
        "lantern": [a for batch in pool.map(run_lantern_kind, jobs) for a in batch]
    }
    for name in PEERS:
        peer_jobs = [(name, f, step) for f in counts + means]
        found[name] = [a for batch in pool.map(run_peer, peer_jobs) for a in batch]
    return [
        (name, label, nab_score(alerts, subsets))
        for name, alerts in found.items()
        for label, subsets in NAB_SUBSETS.items()
    ]


def bench_dir(root: Path, seed: int) -> Path:
    """The bench set of a seed, generated when missing."""
    data = root / f"s{seed}"
    if not (data / "labels.json").exists():
        subprocess.run(
            [sys.executable, str(BENCH / "generate.py"), "--out", str(data), "--seed", str(seed)],
            check=True,
            capture_output=True,
        )
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--series", type=int, default=40, help="series per seed for peers")
    parser.add_argument("--step", type=int, default=24, help="hours between peer batches")
    parser.add_argument("--data-root", type=Path, default=Path(tempfile.gettempdir()) / "bench")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-nab", action="store_true", help="skip the real series of NAB")
    parser.add_argument(
        "--nab-mean-kind",
        choices=["mean", "value"],
        default="mean",
        help="how Lantern reads NAB's hourly means",
    )
    args = parser.parse_args()
    missing = [name for name in ("sesd", "ruptures") if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(
            f"the peer detectors need {', '.join(missing)}: pip install -e '.[bench]' "
            "(the `bench` extra), then run this again"
        )

    rows: list[tuple[str, int, dict[str, object]]] = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for seed in args.seeds:
            data = bench_dir(args.data_root, seed)
            files = sorted((data / "series").glob("*.csv"))
            subset = files[: args.series]
            names_all = [f.stem for f in files]
            names_sub = [f.stem for f in subset]
            lantern = [a for batch in pool.map(run_lantern, files) for a in batch]
            rows.append(("lantern (all series)", seed, score(data, names_all, lantern)))
            picked = {f.stem for f in subset}
            rows.append(
                (
                    "lantern (subset)",
                    seed,
                    score(data, names_sub, [a for a in lantern if a["series"] in picked]),
                )
            )
            for name in PEERS:
                jobs = [(name, f, args.step) for f in subset]
                found = [a for batch in pool.map(run_peer, jobs) for a in batch]
                rows.append((name, seed, score(data, names_sub, list(found))))

    print(
        f"peers and 'lantern (subset)': first {args.series} series of each seed; "
        f"peers run every {args.step} h"
    )
    print(
        f"{'detector':<22}{'seed':>5}{'series':>8}{'F1':>8}{'prec':>8}{'recall':>8}{'false/1000h':>13}"
    )
    for name, seed, r in rows:
        print(
            f"{name:<22}{seed:>5}{r['series']:>8}{r['f1']:>8.3f}{r['precision']:>8.3f}"
            f"{r['recall']:>8.3f}{r['false_per_1000h']:>13.3f}"
        )
    if args.no_nab:
        return
    with ProcessPoolExecutor(args.jobs) as pool:
        real = nab_rows(pool, args.data_root, args.step, args.nab_mean_kind)
    print()
    print(
        f"NAB, hourly (counts as counts, means as {args.nab_mean_kind}); peers every {args.step} h"
    )
    print(
        f"{'detector':<16}{'subsets':<20}{'F1':>7}{'prec':>7}{'recall':>8}"
        f"{'windows':>9}{'false/week':>12}{'NAB':>7}"
    )
    for name, label, r in real:
        print(
            f"{name:<16}{label:<20}{r['f1']:>7.3f}{r['precision']:>7.3f}{r['recall']:>8.3f}"
            f"{r['detected']:>5}/{r['windows']:<3}{r['false_per_week']:>12.3f}"
            f"{r['nab_standard']:>7.1f}"
        )


if __name__ == "__main__":
    main()
