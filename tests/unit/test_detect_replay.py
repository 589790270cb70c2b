"""The `lantern replay` command on small folders."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from lantern.cli import main
from lantern.replay import POOL_THRESHOLD, replay

START = pd.Timestamp("2026-01-05", tz="UTC")


def write_csv(path: Path, values: np.ndarray) -> None:
    index = pd.date_range(START, periods=len(values), freq="h")
    frame = pd.DataFrame({"timestamp": index.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": values})
    frame.to_csv(path, index=False)


def series_with_outage(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hours = np.arange(3 * 168)
    lam = 800 * (1.2 + np.sin(2 * np.pi * hours / 24)) / 2.2
    lam[400:406] = 0.5
    return rng.poisson(lam)


def test_replay_writes_one_json_line_per_alert_of_each_series(tmp_path: Path) -> None:
    write_csv(tmp_path / "checkout.csv", series_with_outage(1))
    write_csv(tmp_path / "signup.csv", series_with_outage(2))
    out = tmp_path / "alerts.jsonl"
    result = CliRunner().invoke(replay, [str(tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["series"] for r in records} == {"checkout", "signup"}
    assert {r["kind"] for r in records} == {"outage"}
    assert all(r["detected_at"] == (START + pd.Timedelta(hours=400)).isoformat() for r in records)
    assert set(records[0]) == {
        "series",
        "detected_at",
        "kind",
        "start",
        "direction",
        "observed",
        "expected",
        "score",
    }


def test_replay_names_the_file_and_the_fault_of_an_irregular_csv(tmp_path: Path) -> None:
    bad = tmp_path / "broken.csv"
    bad.write_text("timestamp,value\n2026-01-05T00:00:00Z,1\n2026-01-05T00:30:00Z,2\n")
    result = CliRunner().invoke(replay, [str(bad)])
    assert result.exit_code == 2
    assert "broken.csv" in result.output
    assert "not on the hour" in result.output


def test_replay_names_missing_columns(tmp_path: Path) -> None:
    bad = tmp_path / "wrong.csv"
    bad.write_text("time,count\n2026-01-05T00:00:00Z,1\n")
    result = CliRunner().invoke(replay, [str(bad)])
    assert result.exit_code == 2
    assert "missing timestamp, value" in result.output


def test_replay_reports_a_missing_path(tmp_path: Path) -> None:
    result = CliRunner().invoke(replay, [str(tmp_path / "nowhere.csv")])
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_lantern_replay_is_a_command_of_lantern_yet_other_commands_skip_the_detector(
    tmp_path: Path,
) -> None:
    write_csv(tmp_path / "checkout.csv", series_with_outage(1))
    out = tmp_path / "alerts.jsonl"
    result = CliRunner().invoke(main, ["replay", str(tmp_path / "checkout.csv"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text().splitlines()[0])["kind"] == "outage"
    # `lantern serve` supervises its workers from this process: it stays small.
    probe = "import sys, lantern.cli; print(sorted({'pandas', 'statsmodels'} & set(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_replay_kind_mean_reads_hourly_averages_and_leaves_gaps_missing(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    hours = np.arange(4 * 168)
    load_ms = 300 + 60 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 10, len(hours))
    load_ms[3 * 168 + 12 :] += 120  # every page 120 ms slower from a Thursday noon on
    values = load_ms.astype(object)
    values[[50, 51, 300]] = ""  # hours without a page load: missing, not zero
    write_csv(tmp_path / "page_load.csv", values)
    out = tmp_path / "alerts.jsonl"
    result = CliRunner().invoke(replay, [str(tmp_path), "--kind", "mean", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["kind"], r["direction"]) for r in records] == [("level_shift", "up")]
    assert records[0]["expected"] > 200  # in milliseconds, the series' own unit


def test_replay_applies_the_teams_feedback_and_names_a_bad_one(tmp_path: Path) -> None:
    from tests.unit.test_detect_real import feedback_series

    series, at = feedback_series()
    series.rename_axis("timestamp").rename("value").to_frame().to_csv(tmp_path / "search.csv")

    def told(*options: str) -> list[str]:
        out = tmp_path / "alerts.jsonl"
        result = CliRunner().invoke(replay, [str(tmp_path), "--out", str(out), *options])
        assert result.exit_code == 0, result.output
        return [json.loads(line)["detected_at"] for line in out.read_text().splitlines()]

    hours = {name: series.index[i].isoformat() for name, i in at.items()}
    assert told() == [hours["first"], hours["second"], hours["large"]]
    assert told("--feedback", "spike=1") == [hours["large"]]
    bad = CliRunner().invoke(replay, [str(tmp_path), "--feedback", "spikes=1"])
    assert bad.exit_code == 2
    assert "--feedback" in bad.output and "KIND=N" in bad.output


def test_a_pooled_replay_checks_every_file_first_and_matches_one_process(tmp_path: Path) -> None:
    # enough files for a process pool (`POOL_THRESHOLD`): they are read and checked in the
    # pool, and the tables read there are what is replayed
    for seed in range(POOL_THRESHOLD + 1):
        write_csv(tmp_path / f"metric-{seed}.csv", series_with_outage(seed))
    alone, pooled = tmp_path / "alone.jsonl", tmp_path / "pooled.jsonl"
    for out, jobs in ((alone, "1"), (pooled, "2")):
        result = CliRunner().invoke(replay, [str(tmp_path), "--out", str(out), "--jobs", jobs])
        assert result.exit_code == 0, result.output
    assert pooled.read_text() == alone.read_text()
    assert len(pooled.read_text().splitlines()) == POOL_THRESHOLD + 1

    # one bad file among them stops the replay before any series is replayed or written
    (tmp_path / "metric-3.csv").write_text("timestamp,value\n2026-01-05T00:00:00Z,one\n")
    out = tmp_path / "never.jsonl"
    result = CliRunner().invoke(replay, [str(tmp_path), "--out", str(out), "--jobs", "2"])
    assert result.exit_code == 2
    assert "metric-3.csv" in result.output
    assert not out.exists()


def test_replay_passes_over_a_folder_named_like_a_csv_and_names_an_unreadable_file(
    tmp_path: Path,
) -> None:
    write_csv(tmp_path / "checkout.csv", series_with_outage(1))
    (tmp_path / "exports.csv").mkdir()  # a folder, not a series
    out = tmp_path / "alerts.jsonl"
    result = CliRunner().invoke(replay, [str(tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {json.loads(line)["series"] for line in out.read_text().splitlines()} == {"checkout"}
    # a file the replay cannot open (here a socket: it cannot be read, even by root) is
    # named, with the reason, in one line, and nothing is replayed
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(tmp_path / "live.csv"))
        result = CliRunner().invoke(replay, [str(tmp_path)])
    assert result.exit_code == 2
    assert "live.csv: cannot be read" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
