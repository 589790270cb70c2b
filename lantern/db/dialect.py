"""INSERT ... ON CONFLICT for the engine in use (SQLite and PostgreSQL spell it alike)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from lantern.db.base import Base


def insert_for(connection: Connection, model: type[Base]) -> Any:
    """An INSERT that supports `on_conflict_do_update` / `on_conflict_do_nothing`."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(model)
    if connection.dialect.name == "sqlite":
        return sqlite.insert(model)
    raise RuntimeError(f"Lantern runs on SQLite or PostgreSQL, not {connection.dialect.name}")
