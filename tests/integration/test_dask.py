"""The hourly pass on a Dask cluster: what it records (insights, states, alerts and what the
detector expected) equals the inline pass's, byte for byte, and a worker killed in the middle
of a pass loses nothing and doubles nothing.

The cluster is a `LocalCluster` of two worker processes on loopback, started once for the
module and closed (with the pass's client) at its end.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, select, text, update
from sqlalchemy.engine import make_url

from lantern import pipeline
from lantern.config import Settings
from lantern.db import session_scope
from lantern.db.session import make_engine
from lantern.insights.models import DetectionRun, HourExpectation, Insight, MetricWatch
from lantern.metrics.service import epoch_hour, hour_index
from lantern.notify.models import Notification
from lantern.scoring import Partition, close_dask_clients, dask_client, score_partition
from tests.conftest import PG_ADMIN_URL, drop_database_later
from tests.factories import last_closed_hour, make_metric, make_source

distributed = pytest.importorskip("distributed")

# One cluster for the whole module, both engines: one pytest-xdist worker runs it all.
pytestmark = pytest.mark.xdist_group("dask-cluster")

DAYS = 10


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes of one thread each, on loopback; closed with the module."""
    local = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    )
    try:
        yield local
    finally:
        close_dask_clients()
        local.close()


@pytest.fixture
def dask_settings(cluster: Any, fresh_engine: Engine, tmp_path: Path) -> Settings:
    """Settings whose hourly pass runs on the cluster, both of its workers up."""
    dask_client(cluster.scheduler_address).wait_for_workers(2, timeout=60)
    return Settings(
        data_dir=tmp_path,
        database_url=fresh_engine.url.render_as_string(hide_password=False),
        scheduler_enabled=False,
        dask_scheduler_address=cluster.scheduler_address,
    )


def counts(*, peak: float, seed: int, spike_hours: int = 0, silent_hours: int = 0) -> pd.Series:
    """DAYS of hourly counts with a daily rhythm, ending in the last closed hour."""
    index = pd.date_range(end=last_closed_hour(), periods=DAYS * 24, freq="h")
    daily = 0.55 + 0.45 * np.sin((index.hour.to_numpy() - 6) / 24 * 2 * np.pi)
    values = np.random.default_rng(seed).poisson(peak * daily).astype(float)
    if spike_hours:
        # five times the hour and a peak hour's worth more: a spike at any hour of the day
        # (at 23:00 this rhythm runs at a few events an hour, where five times is no spike)
        values[-spike_hours:] = values[-spike_hours:] * 5 + peak
    if silent_hours:
        values[-silent_hours:] = 0
    return pd.Series(values, index=index)


def seed_two_sources(engine: Engine) -> dict[str, list[int]]:
    """Two sources of three metrics each, trained: in each one is steady, one goes silent for
    the last four hours, one spikes (the shop's for the last two hours, the blog's in the
    last one)."""
    metrics: dict[str, list[int]] = {}
    for number, name in enumerate(("shop", "blog")):
        src = make_source(engine, name=name)
        base = 10 * number
        metrics[name] = [
            make_metric(engine, src, name="Checkout", counts=counts(peak=80, seed=base + 1)),
            make_metric(
                engine,
                src,
                name="Search",
                counts=counts(peak=120, seed=base + 2, silent_hours=4),
            ),
            make_metric(
                engine,
                src,
                name="Signup",
                counts=counts(peak=60, seed=base + 3, spike_hours=2 - number),
            ),
        ]
    return metrics


@contextlib.contextmanager
def copy_of(engine: Engine) -> Iterator[Engine]:
    """A second database holding what `engine`'s holds now; dropped afterwards."""
    url = engine.url
    engine.dispose()
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        target = Path(url.database).with_name(f"copy-{uuid.uuid4().hex[:8]}.db")
        with sqlite3.connect(url.database) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        copied = make_engine(f"sqlite:///{target}")
        yield copied
        copied.dispose()
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"lantern_copy_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"'))
    copied = make_engine(make_url(url).set(database=name).render_as_string(hide_password=False))
    try:
        yield copied
    finally:
        copied.dispose()
        drop_database_later(admin, name)


def recorded(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a pass writes that says what it found: every column, ids included."""
    with session_scope(engine) as session:
        return {
            "insights": [
                tuple(row) for row in session.execute(select(Insight.__table__).order_by("id"))
            ],
            "states": [
                tuple(row)
                for row in session.execute(select(MetricWatch.__table__).order_by("metric_id"))
            ],
            "notifications": [
                tuple(row) for row in session.execute(select(Notification.__table__).order_by("id"))
            ],
            "expectations": [
                tuple(row)
                for row in session.execute(
                    select(HourExpectation.__table__).order_by("metric_id", "hour")
                )
            ],
        }


def alerts_opened_at(engine: Engine, hour: int) -> int:
    """Alerts queued for insights whose episode opened in `hour`."""
    with session_scope(engine) as session:
        return len(
            session.scalars(
                select(Notification.id)
                .join(Insight, Insight.id == Notification.insight_id)
                .where(Notification.purpose == "alert", Insight.detected_at == hour_index(hour))
            ).all()
        )


def unfinished_hours(engine: Engine) -> list[int]:
    with session_scope(engine) as session:
        return list(
            session.scalars(select(DetectionRun.hour).where(DetectionRun.finished_at.is_(None)))
        )


def test_the_pass_on_dask_records_what_the_inline_pass_records_byte_for_byte(
    fresh_engine: Engine, dask_settings: Settings, settings: Settings
) -> None:
    seed_two_sources(fresh_engine)
    last = epoch_hour(last_closed_hour())
    inline = settings.model_copy(update={"detect_executor": "inline"})
    with copy_of(fresh_engine) as reference:
        for hour in range(last - 3, last + 1):
            assert run_hour_on(reference, inline, hour) is not None
            assert run_hour_on(fresh_engine, dask_settings, hour) is not None
        expected = recorded(reference)
    found = recorded(fresh_engine)
    kinds = {(row.kind, row.direction) for row in expected_insights(fresh_engine)}
    assert {("spike", "up"), ("outage", "down")} <= kinds  # the comparison has substance
    assert found["insights"] == expected["insights"]
    assert found["states"] == expected["states"]
    assert found["notifications"] == expected["notifications"]
    assert len(found["expectations"]) > 0
    assert found["expectations"] == expected["expectations"]
    assert unfinished_hours(fresh_engine) == []


def expected_insights(engine: Engine) -> list[Any]:
    with session_scope(engine) as session:
        return list(session.execute(select(Insight.kind, Insight.direction)).all())


def run_hour_on(engine: Engine, settings: Settings, hour: int) -> pipeline.RunResult | None:
    return pipeline.run_hour(engine, settings, hour=hour, worker="test")


def test_every_pass_of_a_process_shares_one_client_of_the_scheduler(
    cluster: Any, fresh_engine: Engine, dask_settings: Settings
) -> None:
    seed_two_sources(fresh_engine)
    last = epoch_hour(last_closed_hour())
    for hour in range(last - 2, last + 1):
        run_hour_on(fresh_engine, dask_settings, hour)
    clients = [name for name in cluster.scheduler.clients if name != "fire-and-forget"]
    assert clients == [dask_client(cluster.scheduler_address).id]


def score_after_gate(partition: Partition, *, gate: str, metric_id: int) -> list[Any]:
    """Score `partition`; the first time it holds `metric_id`, first wait to be killed.

    The worker writes its process id to `gate/started` and waits; the test kills that
    process. A second attempt finds the file and scores at once.
    """
    if any(metric.metric_id == metric_id for metric in partition.metrics):
        try:
            descriptor = os.open(Path(gate) / "started", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(descriptor, str(os.getpid()).encode())
            os.close(descriptor)
            deadline = time.monotonic() + 60  # never hang the suite if the kill goes wrong
            while time.monotonic() < deadline:
                time.sleep(0.05)
    return score_partition(partition)


def kill_a_worker_mid_pass(
    engine: Engine, settings: Settings, hour: int, gate: Path
) -> pipeline.RunResult | BaseException | None:
    """Run the pass for `hour`, SIGKILL the worker holding the gated partition, and return
    what the pass returned or raised."""
    outcome: list[pipeline.RunResult | BaseException | None] = []

    def run() -> None:
        try:
            outcome.append(run_hour_on(engine, settings, hour))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    started = gate / "started"
    deadline = time.monotonic() + 60
    while not (started.exists() and started.read_text()):
        assert time.monotonic() < deadline, "the gated partition never started"
        time.sleep(0.05)
    os.kill(int(started.read_text()), signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive() and len(outcome) == 1
    return outcome[0]


def gate_partitions(monkeypatch: pytest.MonkeyPatch, gate: Path, metric_id: int) -> None:
    monkeypatch.setattr(pipeline, "PARTITION", 2)
    monkeypatch.setattr(
        pipeline,
        "score_partition",
        functools.partial(score_after_gate, gate=str(gate), metric_id=metric_id),
    )


def a_gated_hour(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[dict[str, list[int]], int, dict[str, list[tuple[Any, ...]]], Path]:
    """Two sources scored inline up to the last closed hour; that hour's inline outcome on a
    copy (which opens the blog's spike), and a gate holding the partition of the blog's last
    metric: (the sources' metric ids, hour, expected records, gate)."""
    metrics = seed_two_sources(engine)
    hour = epoch_hour(last_closed_hour())
    inline = settings.model_copy(update={"detect_executor": "inline"})
    for before in range(hour - 3, hour):
        run_hour_on(engine, inline, before)
    with copy_of(engine) as reference:
        run_hour_on(reference, inline, hour)
        expected = recorded(reference)
        # the hour opens the blog's spike: its alert may be neither lost nor doubled
        assert alerts_opened_at(reference, hour) == 1
    gate = tmp_path / "gate"
    gate.mkdir()
    gate_partitions(monkeypatch, gate, metrics["blog"][-1])
    return metrics, hour, expected, gate


def test_a_worker_killed_mid_pass_has_its_partition_run_on_another_and_nothing_doubled(
    fresh_engine: Engine,
    dask_settings: Settings,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _, hour, expected, gate = a_gated_hour(fresh_engine, settings, monkeypatch, tmp_path)
    result = kill_a_worker_mid_pass(fresh_engine, dask_settings, hour, gate)
    assert isinstance(result, pipeline.RunResult)
    assert result.metrics == 6 and result.failures == 0
    assert recorded(fresh_engine) == expected
    assert unfinished_hours(fresh_engine) == []


def test_a_pass_whose_worker_dies_fails_whole_sources_and_the_next_pass_redoes_the_hour(
    cluster: Any,
    fresh_engine: Engine,
    dask_settings: Settings,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    metrics, hour, expected, gate = a_gated_hour(fresh_engine, settings, monkeypatch, tmp_path)
    # A cluster that retries nothing: the dead worker's partition fails the pass.
    monkeypatch.setattr(cluster.scheduler, "allowed_failures", 0)
    failed = kill_a_worker_mid_pass(fresh_engine, dask_settings, hour, gate)
    assert isinstance(failed, distributed.KilledWorker)
    with session_scope(fresh_engine) as session:
        scored: dict[int, int | None] = {
            metric_id: at
            for metric_id, at in session.execute(
                select(MetricWatch.metric_id, MetricWatch.scored_hour)
            )
        }
    # The shop's metrics came back before the failure and were recorded whole; none of
    # the blog's was (nor its spike, nor the spike's alert), and the hour stays unfinished.
    assert {scored[m] for m in metrics["shop"]} == {hour}
    assert {scored[m] for m in metrics["blog"]} == {hour - 1}
    assert alerts_opened_at(fresh_engine, hour) == 0
    assert unfinished_hours(fresh_engine) == [hour]
    # Later the claim is stale and the next pass takes the hour over.
    stale = pipeline.STALE_CLAIM + timedelta(minutes=1)
    with session_scope(fresh_engine) as session:
        session.execute(
            update(DetectionRun)
            .where(DetectionRun.hour == hour)
            .values(started_at=datetime.now(UTC) - stale)
        )
    again = run_hour_on(fresh_engine, dask_settings, hour)
    assert again is not None and again.metrics == len(metrics["blog"])
    assert recorded(fresh_engine) == expected
    assert unfinished_hours(fresh_engine) == []


def lantern_worker(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lantern", "worker", *args],
        env={"LANTERN_DATA_DIR": str(tmp_path), "PATH": "", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_worker_given_no_usable_scheduler_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    for args, env, says in [
        (("--dask", "127.0.0.1:8786"), {}, "needs the scheduler's address"),
        ((), {"LANTERN_DETECT_EXECUTOR": "dask"}, "LANTERN_DASK_SCHEDULER_ADDRESS"),
        (
            ("--dask", closed),
            {"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"},
            f"cannot reach the Dask scheduler at {closed}",
        ),
    ]:
        _, stderr = lantern_worker(tmp_path, *args, **env).communicate(timeout=60)
        assert says in stderr
        assert "Traceback" not in stderr
        assert len(stderr.strip().splitlines()) == 1, stderr


def test_a_worker_started_with_dask_holds_one_client_until_it_stops(
    cluster: Any, tmp_path: Path
) -> None:
    before = set(cluster.scheduler.clients)
    worker = lantern_worker(tmp_path, "--dask", cluster.scheduler_address)
    try:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        assert f"detection on Dask at {cluster.scheduler_address}" in line
        assert len(set(cluster.scheduler.clients) - before) == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        # drain its output while it stops: a worker blocked writing its logs to a full pipe
        # would never get there
        _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    deadline = time.monotonic() + 10
    while set(cluster.scheduler.clients) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(cluster.scheduler.clients) == before  # it said goodbye
