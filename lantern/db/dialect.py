"""What SQLite and PostgreSQL spell differently: INSERT ... ON CONFLICT, lowercase text; and
plain statements whose many rows are read straight from the driver."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import GenericFunction

from lantern.db.base import Base


def insert_for(connection: Connection, model: type[Base]) -> Any:
    """An INSERT that supports `on_conflict_do_update` / `on_conflict_do_nothing`."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(model)
    if connection.dialect.name == "sqlite":
        return sqlite.insert(model)
    raise RuntimeError(f"Lantern runs on SQLite or PostgreSQL, not {connection.dialect.name}")


def fetch_all(
    connection: Connection, statement: str | Executable, parameters: Any = None
) -> list[Any]:
    """The rows of a statement (plain SQL with its parameters, or a SQLAlchemy select), as
    the driver gives them (tuples).

    The statement runs through SQLAlchemy, so its errors are SQLAlchemy's (an integrity
    error, a lost database); only the rows are read from the driver's cursor: for
    thousands of small rows (ingest's new message digests, the hourly pass's metrics,
    states and buckets), SQLAlchemy's rows cost more than the statement.
    """
    if isinstance(statement, str):
        result = connection.exec_driver_sql(statement, parameters)
    else:
        result = connection.execute(statement)
    try:
        rows = list(result.cursor.fetchall()) if result.cursor is not None else []
    finally:
        result.close()
    return rows


# SQLite's own lower() changes ASCII letters only; Lantern's SQLite connections have this
# one, Python's str.lower (lantern.db.session), so a search for "é" finds "École" there too.
SQLITE_LOWER = "lantern_lower"


def sqlite_lower(value: object) -> object:
    """str.lower for SQLite (NULL and non-text values pass through)."""
    return value.lower() if isinstance(value, str) else value


class text_lower(GenericFunction[str]):
    """lower(text) that lowercases every letter, on both engines."""

    type = String()
    name = "lower"
    inherit_cache = True
    _register = False  # func.lower stays SQL's own


@compiles(text_lower, "sqlite")
def _sqlite_text_lower(element: text_lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_LOWER}({compiler.process(element.clauses, **kw)})"
