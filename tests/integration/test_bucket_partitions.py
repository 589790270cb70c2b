"""Buckets by the week on PostgreSQL, kept for the retention on both engines, none ever lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

from lantern.config import Settings
from lantern.db.migrate import alembic_config, current_revision, head_revision, upgrade
from lantern.metrics.models import Bucket, Metric
from lantern.metrics.partitions import (
    DEFAULT_PARTITION,
    HOURS_A_WEEK,
    PARTITIONS_AHEAD,
    is_partitioned,
    oldest_kept_hour,
    partitions,
    week_name,
    week_of,
)
from lantern.metrics.service import add_to_buckets, epoch_hour, hour_index, load_series
from lantern.scheduler import cleanup_tick, partitions_tick
from tests.factories import history_events, import_events, make_source

PARTITIONS_REVISION = "6e1f2a3b4c5d"
NOW = datetime.now(UTC)
THIS_HOUR = epoch_hour(NOW)


def before_partitions() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_revision(PARTITIONS_REVISION)
    assert revision is not None and isinstance(revision.down_revision, str)
    return revision.down_revision


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def settings_for(engine: Engine, tmp_path: Path, **values: object) -> Settings:
    url = engine.url.render_as_string(hide_password=False)
    return Settings(data_dir=tmp_path, database_url=url, scheduler_enabled=False, **values)  # type: ignore[arg-type]


def new_metric(engine: Engine, source_id: int, name: str = "Signed Up") -> int:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO metrics (source_id, kind, name, created_at) "
                "VALUES (:s, 'track', :n, '2026-01-01 00:00:00')"
            ),
            {"s": source_id, "n": name},
        )
        return int(
            connection.scalar(
                select(Metric.id).where(Metric.source_id == source_id, Metric.name == name)
            )
        )


def stored(engine: Engine, metric_id: int) -> dict[int, tuple[int, float, float | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(Bucket.hour, Bucket.count, Bucket.value_sum, Bucket.value_sq).where(
                Bucket.metric_id == metric_id
            )
        ).all()
    return {hour: (count, value_sum, value_sq) for hour, count, value_sum, value_sq in rows}


def partition_of(engine: Engine, metric_id: int, hour: int) -> str:
    with engine.connect() as connection:
        return str(
            connection.scalar(
                text(
                    "SELECT tableoid::regclass::text FROM buckets "
                    "WHERE metric_id = :m AND hour = :h"
                ),
                {"m": metric_id, "h": hour},
            )
        )


def test_upgrading_keeps_every_bucket_and_downgrading_brings_them_all_back(
    fresh_engine: Engine,
) -> None:
    src = make_source(fresh_engine)
    before = before_partitions()
    downgrade(fresh_engine, before)
    metric = new_metric(fresh_engine, src.id)
    # a year and a half of hours, one every five, up to the next hour (a clock a little fast)
    hours = list(range(THIS_HOUR - 550 * 24, THIS_HOUR + 2, 5))
    with fresh_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO buckets (metric_id, hour, count, value_sum, value_sq) "
                "VALUES (:m, :h, :c, :v, :q)"
            ),
            [
                {"m": metric, "h": h, "c": h % 7 + 1, "v": h / 4, "q": None if h % 2 else h / 2}
                for h in hours
            ],
        )
    old = stored(fresh_engine, metric)
    assert len(old) == len(hours)

    upgrade(fresh_engine)
    assert current_revision(fresh_engine) == head_revision()
    assert stored(fresh_engine, metric) == old
    if fresh_engine.dialect.name == "postgresql":
        with fresh_engine.connect() as connection:
            assert is_partitioned(connection)
            parts = partitions(connection)
        # the old table holds every hour stored before, up to the end of this week
        end = week_of(max(hours)) + HOURS_A_WEEK
        assert {partition_of(fresh_engine, metric, h) for h in hours} == {
            f"buckets_before_{week_name(end).removeprefix('buckets_w')}"
        }
        weeks = [p.name for p in parts if p.is_week]
        assert weeks == [week_name(end + HOURS_A_WEEK * i) for i in range(len(weeks))]
        assert week_name(week_of(THIS_HOUR) + HOURS_A_WEEK * PARTITIONS_AHEAD) in weeks

    # ingest's upsert adds to a bucket from before the upgrade and creates new ones
    with fresh_engine.begin() as connection:
        add_to_buckets(
            connection,
            {
                (metric, hours[-1]): (2, 1.0, 1.0),
                (metric, THIS_HOUR + HOURS_A_WEEK): (3, 0.0, 0.0),
            },
        )
    after = stored(fresh_engine, metric)
    count, value_sum, value_sq = old[hours[-1]]
    assert after[hours[-1]] == (
        count + 2,
        value_sum + 1.0,
        None if value_sq is None else value_sq + 1.0,
    )
    assert after[THIS_HOUR + HOURS_A_WEEK] == (3, 0.0, 0.0)

    downgrade(fresh_engine, before)
    assert stored(fresh_engine, metric) == after
    with fresh_engine.connect() as connection:
        assert not is_partitioned(connection)
    upgrade(fresh_engine)
    assert stored(fresh_engine, metric) == after


def test_history_for_weeks_no_partition_covers_is_counted_and_then_moved_into_its_own(
    fresh_engine: Engine, fresh_client: TestClient, tmp_path: Path
) -> None:
    src = make_source(fresh_engine)
    # Twenty weeks ago, before any partition, through /v1/import as a backfill sends it.
    start = hour_index(week_of(THIS_HOUR) - 20 * HOURS_A_WEEK + 30)
    counts = pd.Series([3, 1, 4], index=pd.date_range(start, periods=3, freq="h"))
    import_events(fresh_client, src.key, history_events(counts))
    with fresh_engine.connect() as connection:
        metric = connection.scalar(
            select(Metric.id).where(Metric.source_id == src.id, Metric.name == "Signed Up")
        )
    assert metric is not None
    first = epoch_hour(start)
    expected = {first: 3, first + 1: 1, first + 2: 4}
    assert {h: c for h, (c, _, _) in stored(fresh_engine, metric).items()} == expected
    if fresh_engine.dialect.name == "postgresql":
        assert {partition_of(fresh_engine, metric, h) for h in expected} == {DEFAULT_PARTITION}

    partitions_tick(fresh_engine, settings_for(fresh_engine, tmp_path), now=NOW)

    assert {h: c for h, (c, _, _) in stored(fresh_engine, metric).items()} == expected
    if fresh_engine.dialect.name == "postgresql":
        assert {partition_of(fresh_engine, metric, h) for h in expected} == {
            week_name(week_of(first))
        }
        with fresh_engine.connect() as connection:
            assert connection.scalar(text(f"SELECT count(*) FROM {DEFAULT_PARTITION}")) == 0
    # the moved week takes more of the same history, and reads back as a series
    import_events(fresh_client, src.key, history_events(counts.iloc[:1]))
    with fresh_engine.connect() as connection:
        series = load_series(
            connection, metric_ids=[metric], start=start, end=start + pd.Timedelta(hours=4)
        )[metric]
    assert series.tolist() == [6.0, 1.0, 4.0, 0.0]


def test_the_scheduler_keeps_this_week_and_the_next_four_partitioned(
    fresh_engine: Engine, tmp_path: Path
) -> None:
    settings = settings_for(fresh_engine, tmp_path)
    later = datetime(2027, 3, 10, 12, tzinfo=UTC)  # a Wednesday, beyond the weeks made
    partitions_tick(fresh_engine, settings, now=later)
    with fresh_engine.connect() as connection:
        names = {p.name for p in partitions(connection)} if is_partitioned(connection) else set()
    if fresh_engine.dialect.name == "sqlite":
        assert names == set()  # one plain table
        return
    assert {
        "buckets_w20270308",
        "buckets_w20270315",
        "buckets_w20270322",
        "buckets_w20270329",
        "buckets_w20270405",
    } <= names
    assert "buckets_w20270412" not in names
    partitions_tick(fresh_engine, settings, now=later)
    with fresh_engine.connect() as connection:
        assert {p.name for p in partitions(connection)} == names


def test_the_clean_up_removes_the_hours_past_the_retention_and_keeps_the_rest(
    fresh_engine: Engine, tmp_path: Path
) -> None:
    src = make_source(fresh_engine)
    metric = new_metric(fresh_engine, src.id)
    settings = settings_for(fresh_engine, tmp_path, retention_days=60)
    keep_from = oldest_kept_hour(NOW, retention_days=60)
    gone = [keep_from - 400 * 24, week_of(keep_from) - 3 * HOURS_A_WEEK, week_of(keep_from) - 1]
    kept = [keep_from, keep_from + 100, THIS_HOUR - 1, THIS_HOUR]
    with fresh_engine.begin() as connection:
        add_to_buckets(connection, {(metric, h): (1, 0.0, 0.0) for h in gone + kept})
    # The weeks within reach of a partition get one: the expired ones are dropped whole.
    partitions_tick(fresh_engine, settings, now=NOW - timedelta(days=61))
    partitions_tick(fresh_engine, settings, now=NOW)

    cleanup_tick(fresh_engine, settings, now=NOW)

    hours = set(stored(fresh_engine, metric))
    assert set(kept) <= hours
    assert not set(gone) & hours
    if fresh_engine.dialect.name == "postgresql":
        with fresh_engine.connect() as connection:
            parts = partitions(connection)
        assert all(p.upper is None or p.upper > keep_from for p in parts)
        assert week_name(week_of(keep_from)) in {p.name for p in parts}


def test_the_hours_from_before_the_upgrade_expire_like_the_others(
    fresh_engine: Engine, tmp_path: Path
) -> None:
    src = make_source(fresh_engine)
    downgrade(fresh_engine, before_partitions())
    metric = new_metric(fresh_engine, src.id)
    keep_from = oldest_kept_hour(NOW, retention_days=30)
    hours = [keep_from - 50 * 24, keep_from - 1, keep_from, THIS_HOUR]
    with fresh_engine.begin() as connection:  # as that schema's ingest wrote them
        connection.execute(
            text(
                "INSERT INTO buckets (metric_id, hour, count, value_sum, value_sq) "
                "VALUES (:m, :h, 1, 0, 0)"
            ),
            [{"m": metric, "h": h} for h in hours],
        )
    upgrade(fresh_engine)

    cleanup_tick(fresh_engine, settings_for(fresh_engine, tmp_path, retention_days=30), now=NOW)

    assert set(stored(fresh_engine, metric)) == {keep_from, THIS_HOUR}


def test_a_partition_that_cannot_have_its_lock_waits_for_the_next_run_and_loses_nothing(
    fresh_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if fresh_engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no partitions")
    src = make_source(fresh_engine)
    metric = new_metric(fresh_engine, src.id)
    stray = week_of(THIS_HOUR) - 10 * HOURS_A_WEEK + 5
    with fresh_engine.begin() as connection:
        add_to_buckets(connection, {(metric, stray): (7, 0.0, 0.0)})
    settings = settings_for(fresh_engine, tmp_path)
    # A long query holding the default partition: the move gives up rather than wait.
    with fresh_engine.connect() as holder:
        holder.exec_driver_sql(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS SHARE MODE")
        holder.exec_driver_sql(f"SELECT count(*) FROM {DEFAULT_PARTITION}")
        with caplog.at_level("WARNING", logger="lantern.metrics.partitions"):
            partitions_tick(fresh_engine, settings, now=NOW)
        assert partition_of(fresh_engine, metric, stray) == DEFAULT_PARTITION
        holder.rollback()
    assert f"partition {week_name(week_of(stray))} not created" in caplog.text
    assert stored(fresh_engine, metric) == {stray: (7, 0.0, 0.0)}

    partitions_tick(fresh_engine, settings, now=NOW)

    assert partition_of(fresh_engine, metric, stray) == week_name(week_of(stray))
    assert stored(fresh_engine, metric) == {stray: (7, 0.0, 0.0)}
