"""A scratch database for a benchmark: made empty for the run, removed after it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text


@contextmanager
def scratch_database(
    admin_url: str | None, folder: Path, *, prefix: str = "lantern_bench"
) -> Iterator[str]:
    """The URL of a new, empty database: a SQLite file in ``folder``, or, with ``admin_url``,
    a database of its own on that PostgreSQL server, dropped afterwards."""
    if admin_url is None:
        yield f"sqlite:///{folder / 'lantern.db'}"
        return
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
