"""Bring a database's schema up to date with Alembic, the only way the schema changes."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from lantern.db.session import get_engine

# A package resource, not a path in a checkout: an installed wheel migrates as well.
SCRIPT_LOCATION = "lantern:migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config that runs on `engine` (default: the configured database)."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine | None = None, revision: str = "head") -> None:
    """Apply every migration up to `revision`."""
    engine = engine or get_engine()
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine | None = None) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with (engine or get_engine()).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision in the migrations folder."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
