"""INSERT ... ON CONFLICT for the engine in use (SQLite and PostgreSQL spell it alike), and
plain statements whose many rows are read straight from the driver."""

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


def fetch_all(connection: Connection, statement: str, parameters: Any) -> list[Any]:
    """The rows of a plain SQL statement, as the driver gives them (tuples).

    The statement runs through SQLAlchemy, so its errors are SQLAlchemy's (an integrity
    error, a lost database); only the rows are read from the driver's cursor: for
    thousands of small rows (ingest's new message digests), SQLAlchemy's rows cost more
    than the statement.
    """
    result = connection.exec_driver_sql(statement, parameters)
    try:
        rows = list(result.cursor.fetchall())
    finally:
        result.close()
    return rows
