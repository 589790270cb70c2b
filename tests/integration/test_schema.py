"""The schema changes only through Alembic, and the models never drift from the migrations."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pandas as pd
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import DateTime, Engine, bindparam, inspect, select, text

from lantern.config import get_settings
from lantern.db import session_scope
from lantern.db.migrate import alembic_config, current_revision, head_revision, upgrade
from lantern.db.models import Base
from lantern.db.session import make_engine
from lantern.metrics.models import Metric
from lantern.metrics.partitions import compared_by_alembic
from lantern.metrics.service import add_to_buckets, hour_index, load_series


def test_autogenerate_finds_no_difference_between_models_and_migrations(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "render_as_batch": True,
                "include_name": compared_by_alembic,
            },
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_the_test_database_is_at_the_newest_revision(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()


def test_lantern_db_upgrade_brings_an_empty_sqlite_file_up_to_date(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"LANTERN_DATA_DIR": str(tmp_path), "PATH": ""}
    run = subprocess.run(
        [sys.executable, "-m", "lantern", "db", "upgrade"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    head = head_revision()
    assert head is not None and head in run.stdout
    assert (tmp_path / "lantern.db").exists()


def test_the_slack_channel_id_migration_keeps_connections_and_goes_both_ways(
    empty_database_url: str,
) -> None:
    from alembic import command
    from sqlalchemy import inspect, text

    from lantern.db.migrate import alembic_config, upgrade
    from lantern.db.session import make_engine

    before, after = "618470da7f08", "3b9c2f5e7a41"
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine, before)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO workspaces (id, name, sensitivity, created_at) "
                    "VALUES (1, 'w', 'medium', '2026-11-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO slack_connections (workspace_id, method, bot_token, channel, "
                    "installed_at) VALUES (1, 'token', 'xoxb-1', 'alerts', '2026-11-01 00:00:00')"
                )
            )
        upgrade(engine, after)
        with engine.connect() as connection:
            upgraded = connection.execute(
                text("SELECT channel, channel_name, paused_until FROM slack_connections")
            ).all()
        config = alembic_config(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, before)
        columns = {c["name"] for c in inspect(engine).get_columns("slack_connections")}
        with engine.connect() as connection:
            kept = connection.execute(text("SELECT channel FROM slack_connections")).all()
    finally:
        engine.dispose()
    # A name stored before the migration stays; the outbox resolves it to its id.
    assert [tuple(r) for r in upgraded] == [("alerts", None, None)]
    assert "channel_name" not in columns and "paused_until" not in columns
    assert [tuple(r) for r in kept] == [("alerts",)]


# Migration 0005 (average value metrics) is tested from the revision before it, with data.
BEFORE_AVERAGES = "3b9c2f5e7a41"
HOUR = 490_000  # any epoch hour


def _downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _source_with_metrics(engine: Engine, metrics: dict[tuple[str, str], dict[int, tuple]]) -> int:
    """A workspace, a source and its metrics with buckets, written as the old schema holds them."""
    at = datetime(2026, 1, 2, 3, 4, 5)
    with engine.begin() as connection:
        workspace = connection.execute(
            text(
                "INSERT INTO workspaces (name, sensitivity, created_at) "
                "VALUES (:name, 'medium', :at) RETURNING id"
            ).bindparams(bindparam("at", type_=DateTime())),
            {"name": f"ws-{uuid.uuid4().hex[:8]}", "at": at},
        ).scalar_one()
        source = connection.execute(
            text(
                "INSERT INTO sources (workspace_id, name, key_hash, key_hint, created_at) "
                "VALUES (:w, 'web', :hash, 'abc', :at) RETURNING id"
            ).bindparams(bindparam("at", type_=DateTime())),
            {"w": workspace, "hash": uuid.uuid4().hex, "at": at},
        ).scalar_one()
        for (kind, name), hours in metrics.items():
            metric = connection.execute(
                text(
                    "INSERT INTO metrics (source_id, kind, name, created_at) "
                    "VALUES (:s, :kind, :name, :at) RETURNING id"
                ).bindparams(bindparam("at", type_=DateTime())),
                {"s": source, "kind": kind, "name": name, "at": at},
            ).scalar_one()
            for hour, (count, value_sum) in hours.items():
                connection.execute(
                    text(
                        "INSERT INTO buckets (metric_id, hour, count, value_sum) "
                        "VALUES (:m, :h, :c, :v)"
                    ),
                    {"m": metric, "h": hour, "c": count, "v": value_sum},
                )
    return int(source)


def _stored(engine: Engine, source_id: int) -> dict[tuple[str, str, int], tuple]:
    """(kind, name, hour) -> the bucket's columns, for every bucket of a source."""
    with engine.connect() as connection:
        columns = {c["name"] for c in inspect(connection).get_columns("buckets")}
        extra = ", b.value_sq" if "value_sq" in columns else ""
        rows = connection.execute(
            text(
                f"SELECT m.kind, m.name, b.hour, b.count, b.value_sum{extra} FROM buckets AS b "
                "JOIN metrics AS m ON m.id = b.metric_id WHERE m.source_id = :s"
            ),
            {"s": source_id},
        ).all()
    return {(r[0], r[1], r[2]): tuple(r[3:]) for r in rows}


def test_the_average_metrics_migration_backfills_them_from_the_sums_and_downgrades_cleanly(
    empty_database_url: str,
) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine, BEFORE_AVERAGES)
        source = _source_with_metrics(
            engine,
            {
                ("track", "Checkout"): {HOUR: (3, 0.0), HOUR + 1: (1, 0.0)},
                ("value", "Checkout"): {HOUR: (2, 50.0), HOUR + 1: (1, 7.0)},
                ("track", "Search"): {HOUR: (4, 0.0)},
            },
        )
        before = _stored(engine, source)
        upgrade(engine)
        after = _stored(engine, source)
        # the sum and the counts as they were; the average from the sum's valued events
        assert {k: v[:2] for k, v in after.items() if k[0] != "mean"} == before
        assert {k: v for k, v in after.items() if k[0] == "mean"} == {
            ("mean", "Checkout", HOUR): (2, 50.0, None),
            ("mean", "Checkout", HOUR + 1): (1, 7.0, None),
        }
        with engine.begin() as connection:
            ids: dict[str, int] = {
                kind: metric_id
                for kind, metric_id in connection.execute(
                    select(Metric.kind, Metric.id).where(
                        Metric.source_id == source, Metric.name == "Checkout"
                    )
                )
            }
            # events after the migration: an hour that never kept its squares keeps none
            add_to_buckets(
                connection,
                {(ids["mean"], HOUR + 1): (1, 3.0, 9.0), (ids["mean"], HOUR + 2): (1, 3.0, 9.0)},
            )
            series = load_series(
                connection,
                metric_ids=[ids["mean"]],
                start=hour_index(HOUR),
                end=hour_index(HOUR + 3),
                kinds={ids["mean"]: "mean"},
            )[ids["mean"]]
        assert series.tolist() == [25.0, 5.0, 3.0]
        assert _stored(engine, source)[("mean", "Checkout", HOUR + 1)] == (2, 10.0, None)
        assert _stored(engine, source)[("mean", "Checkout", HOUR + 2)] == (1, 3.0, 9.0)

        _downgrade(engine, BEFORE_AVERAGES)
        assert current_revision(engine) == BEFORE_AVERAGES
        assert _stored(engine, source) == before
        if engine.dialect.name == "sqlite":
            with engine.connect() as connection:
                ddl = connection.scalar(
                    text("SELECT sql FROM sqlite_master WHERE name = 'buckets'")
                )
            assert "WITHOUT ROWID" in ddl
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert ("mean", "Checkout", HOUR) in _stored(engine, source)
    finally:
        engine.dispose()


def test_the_average_metrics_migration_backfills_no_more_than_the_metric_cap_allows(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine, BEFORE_AVERAGES)
        source = _source_with_metrics(
            engine,
            {
                ("track", "A"): {HOUR: (1, 0.0)},
                ("value", "A"): {HOUR: (1, 1.0)},
                ("track", "B"): {HOUR: (1, 0.0)},
                ("value", "B"): {HOUR: (1, 2.0)},
                ("total", "track"): {HOUR: (2, 0.0)},  # outside the cap
            },
        )
        monkeypatch.setenv("LANTERN_METRIC_CAP", "5")
        get_settings.cache_clear()
        upgrade(engine)
        means = {k for k in _stored(engine, source) if k[0] == "mean"}
    finally:
        get_settings.cache_clear()
        engine.dispose()
    # two value metrics, room for one more metric: "A" gets its average, "B" will at ingest
    assert means == {("mean", "A", HOUR)}


def test_the_quiet_summary_migration_keeps_workspaces_and_webhook_deliveries_both_ways(
    empty_database_url: str,
) -> None:
    from lantern.notify.models import Notification, Webhook, WebhookDelivery
    from lantern.workspaces.models import Workspace
    from tests.factories import make_insight, make_source

    before = "6e1f2a3b4c5d"  # bucket partitions: the revision before the summary of quiet hours
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        src = make_source(engine)
        make_insight(engine, src)
        with session_scope(engine) as session:
            workspace = session.get(Workspace, src.workspace_id)
            assert workspace is not None
            workspace.quiet_start, workspace.quiet_end = 22, 7
            workspace.quiet_hours_delivery = "summary"
            hook = Webhook(workspace_id=src.workspace_id, url="https://example.com/h", secret="s")
            session.add(hook)
            session.flush()
            alert = session.scalars(select(Notification.id)).one()
            session.add(
                WebhookDelivery(
                    webhook_id=hook.id,
                    notification_id=alert,
                    status="sending",
                    attempts=1,
                    sending_since=datetime(2026, 11, 30, 3, 0, tzinfo=UTC),
                )
            )
        _downgrade(engine, before)
        with engine.connect() as connection:
            old = connection.execute(text("SELECT status, attempts FROM webhook_deliveries")).all()
            quiet = connection.execute(text("SELECT quiet_start, quiet_end FROM workspaces")).all()
        old_columns = {c["name"] for c in inspect(engine).get_columns("workspaces")}
        upgrade(engine)
        with session_scope(engine) as session:
            workspace = session.get(Workspace, src.workspace_id)
            assert workspace is not None
            again = (workspace.quiet_start, workspace.quiet_hours_delivery)
            delivery = session.scalars(select(WebhookDelivery)).one()
            kept = (delivery.status, delivery.attempts, delivery.sending_since)
    finally:
        engine.dispose()
    # a delivery claimed when the schema went back is sent again, with the same id
    assert [tuple(r) for r in old] == [("pending", 1)]
    assert [tuple(r) for r in quiet] == [(22, 7)] and "quiet_hours_delivery" not in old_columns
    assert again == (22, "each") and kept == ("pending", 1, None)


BEFORE_FIRST_HOURS = "6f7a8b9c0d1e"  # the revision before each metric kept its first hour


def _first_hours(engine: Engine, source_id: int) -> dict[str, int | None]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT name, first_hour FROM metrics WHERE source_id = :s"), {"s": source_id}
        ).all()
    return {name: first for name, first in rows}


def test_the_first_hour_migration_fills_each_metric_from_its_buckets_and_goes_both_ways(
    empty_database_url: str,
) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine, BEFORE_FIRST_HOURS)
        source = _source_with_metrics(
            engine,
            {
                ("track", "Checkout"): {HOUR + 5: (3, 0.0), HOUR: (1, 0.0), HOUR + 9: (2, 0.0)},
                ("track", "Search"): {HOUR + 30: (4, 0.0)},
                ("track", "Never Counted"): {},
            },
        )
        before = _stored(engine, source)
        upgrade(engine)
        filled = _first_hours(engine, source)
        _downgrade(engine, BEFORE_FIRST_HOURS)
        old_columns = {c["name"] for c in inspect(engine).get_columns("metrics")}
        kept = _stored(engine, source)
        upgrade(engine)
        again = _first_hours(engine, source)
    finally:
        engine.dispose()
    assert filled == {"Checkout": HOUR, "Search": HOUR + 30, "Never Counted": None}
    assert "first_hour" not in old_columns and kept == before
    assert again == filled


def test_the_breakdowns_migration_gives_every_source_the_defaults_and_goes_both_ways(
    empty_database_url: str,
) -> None:
    before = "7a0b1c2d3e4f"  # 0013, the revision before breakdowns
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine, before)
        source = _source_with_metrics(engine, {("track", "Signed Up"): {HOUR: (3, 0.0)}})
        upgrade(engine)
        with engine.connect() as connection:
            names = connection.scalars(
                text("SELECT name FROM breakdown_dimensions WHERE source_id = :s ORDER BY id"),
                {"s": source},
            ).all()
        _downgrade(engine, before)
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            kept = connection.scalar(text("SELECT count(*) FROM buckets"))
    finally:
        engine.dispose()
    assert names == ["os", "app_version", "library", "country", "page_path"]
    assert not {"breakdown_dimensions", "breakdown_values", "breakdown_buckets"} & tables
    assert kept == 1


def test_the_root_cause_migration_adds_its_column_and_goes_both_ways_keeping_the_insights(
    empty_database_url: str,
) -> None:
    from lantern.insights.models import Insight
    from tests.factories import make_insight, make_source

    before = "7b1c2d3e4f5a"  # 0014, the revision before root causes
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        insight_id = make_insight(engine, make_source(engine))
        with session_scope(engine) as session:
            insight = session.get(Insight, insight_id)
            assert insight is not None
            insight.root_cause = {"text": "app version 5.2: \u221292%", "broad": False}
        with engine.connect() as connection:
            stored = connection.scalar(select(Insight.root_cause).where(Insight.id == insight_id))
        _downgrade(engine, before)
        old_columns = {c["name"] for c in inspect(engine).get_columns("insights")}
        with engine.connect() as connection:
            kept = connection.scalar(text("SELECT count(*) FROM notifications"))
        upgrade(engine)
        with engine.connect() as connection:
            again = connection.scalar(select(Insight.root_cause).where(Insight.id == insight_id))
    finally:
        engine.dispose()
    assert stored == {"text": "app version 5.2: \u221292%", "broad": False}
    assert "root_cause" not in old_columns
    assert kept == 1  # the insight's alert stayed with it
    assert again is None


def test_the_alerts_per_value_migration_goes_both_ways_keeping_every_discovered_metric(
    empty_database_url: str,
) -> None:
    from lantern.breakdowns.alerts import set_breakdown_alerts
    from tests.factories import add_breakdown, make_metric, make_source

    before = "9d3e4f5a6b7c"  # 0016, the revision before alerts per breakdown value
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        src = make_source(engine)
        index = pd.date_range(end=pd.Timestamp("2026-11-01T00:00Z"), periods=3, freq="h")
        split = pd.DataFrame({"iOS": [2.0, 3.0, 1.0], "Android": [1.0, 0.0, 4.0]}, index=index)
        split.columns.name = "os"
        metric_id = make_metric(engine, src, name="Checkout", counts=split.sum(axis=1))
        add_breakdown(engine, src, metric_id, split)
        with session_scope(engine) as session:
            metric = session.get(Metric, metric_id)
            assert metric is not None
            set_breakdown_alerts(session, metric=metric, names=["os"])
        with engine.connect() as connection:
            split_buckets = connection.scalar(
                text(
                    "SELECT sum(b.count) FROM buckets AS b JOIN metrics AS m "
                    "ON m.id = b.metric_id WHERE m.parent_id = :p"
                ),
                {"p": metric_id},
            )
        _downgrade(engine, before)
        tables = set(inspect(engine).get_table_names())
        old_columns = {c["name"] for c in inspect(engine).get_columns("metrics")}
        with engine.connect() as connection:
            left = connection.execute(text("SELECT kind, name FROM metrics")).all()
            kept = connection.scalar(text("SELECT sum(count) FROM buckets"))
        upgrade(engine)
        with engine.connect() as connection:
            again = connection.execute(
                text("SELECT parent_id, breakdown_value_id FROM metrics")
            ).all()
    finally:
        engine.dispose()
    assert split_buckets == 11  # each value's metric had its breakdown's events
    assert "breakdown_alerts" not in tables
    assert not {"parent_id", "breakdown_value_id"} & old_columns
    assert [tuple(row) for row in left] == [("track", "Checkout")]
    assert kept == 11  # the discovered metric's buckets, untouched
    assert [tuple(row) for row in again] == [(None, None)]
