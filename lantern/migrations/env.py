"""Alembic environment: the URL comes from Lantern's settings, or from the caller's connection."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from lantern.config import get_settings
from lantern.db.models import Base
from lantern.db.session import get_engine
from lantern.metrics.partitions import compared_by_alembic

config = context.config
target_metadata = Base.metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=compared_by_alembic,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url,
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    given = config.attributes.get("connection")
    if given is not None:
        run(given)
    else:
        url = config.get_main_option("sqlalchemy.url") or None
        with get_engine(url).connect() as connection:
            run(connection)
            connection.commit()
