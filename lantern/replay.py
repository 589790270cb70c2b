"""`lantern replay`: run the service's own detection over CSV files, hour by hour."""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any, TypeAlias

import click
import pandas as pd
from tqdm import tqdm

from lantern.detect import SeriesError, replay_series, validate_series
from lantern.detect.series import SeriesKind, validate_counts

POOL_THRESHOLD = 8  # below this many series a process pool costs more than it saves
# a file's validated series and, for a mean with a count column, the events behind each hour
Table: TypeAlias = tuple[pd.Series, pd.Series | None]


def read_series(path: Path, *, kind: SeriesKind = "count") -> pd.Series:
    """Read a ``timestamp,value`` CSV into a validated hourly series; raise SeriesError."""
    return read_table(path, kind=kind)[0]


def read_table(path: Path, *, kind: SeriesKind = "count") -> Table:
    """Read a ``timestamp,value[,count]`` CSV: the validated hourly series and, for a mean
    with a ``count`` column, the events behind each hour's average (None without one);
    raise SeriesError saying what is wrong."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise SeriesError(f"{path}: no such file") from None
    except OSError as exc:  # a socket, a file this user may not read
        raise SeriesError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SeriesError(f"{path}: not a readable CSV ({exc})") from None
    missing = {"timestamp", "value"} - set(frame.columns)
    if missing:
        raise SeriesError(
            f"{path}: needs columns timestamp,value; missing {', '.join(sorted(missing))} "
            f"(found {', '.join(map(str, frame.columns)) or 'none'})"
        )
    try:
        stamps = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise SeriesError(f"{path}: a timestamp is not an ISO 8601 time ({exc})") from None
    index = pd.DatetimeIndex(stamps)
    series = pd.Series(frame["value"].to_numpy(), index=index, name=path.stem)
    try:
        clean = validate_series(series, kind=kind)
    except SeriesError as exc:
        raise SeriesError(f"{path}: {exc}") from None
    if "count" not in frame.columns:
        return clean, None
    if kind != "mean":
        raise SeriesError(
            f"{path}: a count column gives the events behind each hour of an average: replay "
            "it with --kind mean, or drop the column"
        )
    counts = pd.to_numeric(frame["count"], errors="coerce")
    bad = counts.isna() & frame["count"].notna()
    if bad.any():
        at = index[bad.to_numpy()][0].isoformat()
        raise SeriesError(f"{path}: count at {at} is not a number")
    try:
        validate_counts(clean, pd.Series(counts.to_numpy(), index=index))
    except SeriesError as exc:
        raise SeriesError(f"{path}: {exc}") from None
    return clean, pd.Series(counts.to_numpy(dtype=float), index=index)


def find_csvs(paths: tuple[Path, ...]) -> list[Path]:
    """The CSV files named, and those in the folders named, sorted; errors if none."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.glob("*.csv") if not p.is_dir())
            if not inside:
                raise SeriesError(f"{path}: the folder holds no .csv file")
            found.extend(inside)
        elif path.exists():
            found.append(path)
        else:
            raise SeriesError(f"{path}: no such file or folder")
    return found


def stagger_of(name: str) -> int:
    """The daily refit hour of a series, spread over the day by its name."""
    return zlib.crc32(name.encode()) % 24


def alerts_of(
    path: Path, kind: SeriesKind, sensitivity: str, feedback: dict[str, int] | None = None
) -> list[dict[str, Any]]:
    """The JSON records of every alert (opened episode) of one CSV file."""
    return alerts_of_table(path.stem, read_table(path, kind=kind), kind, sensitivity, feedback)


def alerts_of_table(
    name: str,
    table: Table,
    kind: SeriesKind,
    sensitivity: str,
    feedback: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """The JSON records of every alert (opened episode) of a series read by `read_table`."""
    series, counts = table
    events = replay_series(
        series,
        kind=kind,
        sensitivity=sensitivity,  # type: ignore[arg-type]
        stagger=stagger_of(name),
        raised=feedback,
        counts=counts,
    )
    return [
        {
            "series": name,
            "detected_at": event.at.isoformat(),
            "kind": event.detection.kind,
            "start": pd.Timestamp(event.detection.start).isoformat(),  # type: ignore[arg-type]
            "direction": event.detection.direction,
            "observed": event.detection.observed,
            "expected": event.detection.expected,
            "score": event.detection.score,
        }
        for event in events
        if event.status == "opened"
    ]


def _checked(path: Path, kind: SeriesKind) -> Table | SeriesError:
    """A file's table, or the error saying what is wrong with it (returned, not raised, so
    that a pool hands back every file's verdict in order)."""
    try:
        return read_table(path, kind=kind)
    except SeriesError as exc:
        return exc


def _read_all(files: list[Path], kind: SeriesKind, pool: ProcessPoolExecutor | None) -> list[Table]:
    """Every file's table, read and checked before any is replayed (each file is read once:
    these tables are what is replayed); a SeriesError names the first bad file."""
    if pool is None:
        checked = [_checked(path, kind) for path in files]
    else:
        checked = list(pool.map(_checked, files, [kind] * len(files), chunksize=8))
    tables: list[Table] = []
    for table in checked:
        if isinstance(table, SeriesError):
            raise table
        tables.append(table)
    return tables


def _replayed(
    files: list[Path],
    tables: list[Table],
    kind: SeriesKind,
    sensitivity: str,
    feedback: dict[str, int],
    pool: ProcessPoolExecutor | None,
) -> Iterator[list[dict[str, Any]]]:
    """Every file's alerts, in the files' order."""
    names = [path.stem for path in files]
    if pool is None:
        for name, table in zip(names, tables, strict=True):
            yield alerts_of_table(name, table, kind, sensitivity, feedback)
        return
    n = len(files)
    # two series a task: the pool's last tasks end nearly together
    yield from pool.map(
        alerts_of_table, names, tables, [kind] * n, [sensitivity] * n, [feedback] * n, chunksize=2
    )


def _feedback(values: tuple[str, ...]) -> dict[str, int]:
    """``--feedback KIND=N`` options as {kind: settings}; a usage error names a bad one."""
    from lantern.detect.kinds import DETECTED

    raised: dict[str, int] = {}
    for value in values:
        kind, _, count = value.partition("=")
        if kind not in DETECTED or not count.isdigit():
            raise click.BadParameter(
                f"{value!r}: give KIND=N, KIND one of {', '.join(sorted(DETECTED))} and N the "
                "settings to raise its bar by (e.g. spike=1)",
                param_hint="--feedback",
            )
        raised[kind] = int(count)
    return raised


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the alerts to this file instead of standard output.",
)
@click.option(
    "--sensitivity",
    type=click.Choice(["low", "medium", "high"]),
    default="medium",
    show_default=True,
    help="How much evidence an alert needs.",
)
@click.option(
    "--kind",
    type=click.Choice(["count", "value", "mean"]),
    default="count",
    show_default=True,
    help="count: event counts (gaps are zeros); value: hourly sums of a numeric property; "
    "mean: hourly averages of a measurement (gaps say nothing; an optional count column "
    "gives the events behind each hour's average, whose noise then shrinks with them).",
)
@click.option(
    "--jobs",
    type=int,
    default=None,
    help="Processes to use [default: one per CPU].",
)
@click.option(
    "--feedback",
    "feedback_options",
    multiple=True,
    metavar="KIND=N",
    help="Replay as if the team had said 'not useful' N more times than 'useful' on "
    "alerts of KIND (e.g. spike=1): its bar is raised by N settings, towards low. Repeatable.",
)
def replay(
    paths: tuple[Path, ...],
    out: Path | None,
    sensitivity: str,
    kind: str,
    jobs: int | None,
    feedback_options: tuple[str, ...],
) -> None:
    """Replay detection over PATHS, hour by hour, as the live service would have run it.

    Each PATH is a CSV file with columns timestamp,value (UTC, hourly) or a folder of
    them; with --kind mean, a third column, count, may give the events behind each
    hour's average (an hour of two events is then judged by a wider spread than one of
    three hundred; an empty cell is unknown). For every hour after the 7-day training,
    detection sees the data up to that hour only. Each alert (a new episode) is written
    as one JSON line:

    \b
    {"series", "detected_at", "kind", "start", "direction",
     "observed", "expected", "score"}

    where detected_at is the start of the hour whose data raised the alert.

    \b
    Example:
      lantern replay bench/series --out alerts.jsonl --sensitivity medium
    """
    try:
        files = find_csvs(paths)
    except SeriesError as exc:
        raise click.UsageError(str(exc)) from None
    feedback = _feedback(feedback_options)
    workers = jobs or os.cpu_count() or 1
    pooled = workers > 1 and len(files) >= POOL_THRESHOLD
    with ProcessPoolExecutor(max_workers=workers) if pooled else nullcontext() as pool:
        try:
            tables = _read_all(files, kind, pool)  # type: ignore[arg-type]
        except SeriesError as exc:
            raise click.UsageError(str(exc)) from None
        results = _replayed(files, tables, kind, sensitivity, feedback, pool)  # type: ignore[arg-type]
        sink: IO[str] = out.open("w") if out else sys.stdout
        try:
            for records in tqdm(results, total=len(files), unit="series", file=sys.stderr):
                for record in records:
                    sink.write(json.dumps(record) + "\n")
                sink.flush()
        finally:
            if out:
                sink.close()
