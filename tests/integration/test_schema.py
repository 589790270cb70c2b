"""The schema changes only through Alembic, and the models never drift from the migrations."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from lantern.db.migrate import current_revision, head_revision
from lantern.db.models import Base


def test_autogenerate_finds_no_difference_between_models_and_migrations(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_as_batch": True}
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
    assert head_revision() in run.stdout
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
