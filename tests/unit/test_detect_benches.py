"""Sensitivity is monotone on the shared bench and on NAB's real counts.

The bench (../shared/bench beside the repository, as CI lays it out) holds the synthetic
generator and NAB's real series; on a machine without it these tests are skipped, and
under CI=true its absence fails them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lantern.detect import replay_series
from lantern.replay import read_series, stagger_of

BENCH = Path(__file__).resolve().parents[3] / "shared" / "bench"
SERIES_PER_SEED = 40


@pytest.fixture(scope="module")
def bench() -> Path:
    if not (BENCH / "generate.py").exists():
        message = f"the shared bench is not at {BENCH}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: it must be)", pytrace=False)
        pytest.skip(message)
    return BENCH


def told(path: Path, sensitivity: str) -> set[tuple[pd.Timestamp, object]]:
    events = replay_series(
        read_series(path),
        sensitivity=sensitivity,  # type: ignore[arg-type]
        stagger=stagger_of(path.stem),
    )
    return {(e.at, e.detection.start) for e in events if e.status == "opened"}


def not_as_early(stricter: set, laxer: set) -> list:
    return [
        (at, start)
        for at, start in stricter
        if not any(lax_at <= at and lax_start == start for lax_at, lax_start in laxer)
    ]


def assert_monotone(files: list[Path]) -> int:
    compared = 0
    for path in files:
        low, medium, high = (told(path, s) for s in ("low", "medium", "high"))
        assert not_as_early(low, medium) == [], path.stem
        assert not_as_early(medium, high) == [], path.stem
        compared += len(low) + len(medium)
    return compared


@pytest.mark.slow
def test_every_episode_told_at_low_is_told_at_medium_and_at_high_on_a_bench_seed(
    bench: Path, tmp_path: Path
) -> None:
    out = tmp_path / "seed-1"
    subprocess.run(
        [sys.executable, str(bench / "generate.py"), "--out", str(out), "--seed", "1"],
        check=True,
        capture_output=True,
    )
    files = sorted((out / "series").glob("*.csv"))[:SERIES_PER_SEED]
    assert assert_monotone(files) >= 20


@pytest.mark.slow
def test_every_episode_told_at_low_is_told_at_medium_and_at_high_on_nab_counts(
    bench: Path, tmp_path: Path
) -> None:
    subprocess.run(
        [sys.executable, str(bench / "nab.py"), "prepare", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    files = sorted((tmp_path / "counts").glob("*.csv"))
    assert len(files) == 12
    assert assert_monotone(files) >= 20
