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
