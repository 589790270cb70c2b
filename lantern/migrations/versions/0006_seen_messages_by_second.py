"""seen messages stamped with a second number

A row of `seen_messages` is written for every event. Its timestamp (26 characters on
SQLite, in the table and again in its index) becomes the second first seen as an integer
(since the Unix epoch), which the hourly purge compares. The rows are copied into a new
table rather than altered in place, so PostgreSQL is not left with a table of dead row
versions.

Revision ID: 5b0e9c2d7a41
Revises: 9b471d9b8a39
Create Date: 2026-11-29 18:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import lantern.db.base

revision: str = "5b0e9c2d7a41"
down_revision: str | None = "9b471d9b8a39"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The second of a stored naive-UTC timestamp, and back, in each engine's SQL.
SECOND_OF = {
    "sqlite": "CAST(strftime('%s', seen_at) AS INTEGER)",
    "postgresql": "CAST(floor(extract(epoch FROM seen_at)) AS BIGINT)",
}
START_OF = {
    "sqlite": "strftime('%Y-%m-%d %H:%M:%S.000000', seen_second, 'unixepoch')",
    "postgresql": "to_timestamp(seen_second) AT TIME ZONE 'UTC'",
}


def _set_aside(dialect: str) -> None:
    """Rename the table out of the way, with its key (whose name PostgreSQL keeps)."""
    op.rename_table("seen_messages", "seen_messages_old")
    if dialect == "postgresql":
        op.execute(
            "ALTER TABLE seen_messages_old RENAME CONSTRAINT pk_seen_messages "
            "TO pk_seen_messages_old"
        )


def _new_table(stamp: sa.Column[Any]) -> None:
    op.create_table(
        "seen_messages",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=16), nullable=False),
        stamp,
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_seen_messages_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source_id", "digest", name=op.f("pk_seen_messages")),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_index(op.f("ix_seen_messages_seen_at"), table_name="seen_messages")
    _set_aside(dialect)
    _new_table(sa.Column("seen_second", sa.BigInteger(), nullable=False))
    op.execute(
        "INSERT INTO seen_messages (source_id, digest, seen_second) "
        f"SELECT source_id, digest, {SECOND_OF[dialect]} FROM seen_messages_old"
    )
    op.drop_table("seen_messages_old")
    op.create_index(op.f("ix_seen_messages_seen_second"), "seen_messages", ["seen_second"])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_index(op.f("ix_seen_messages_seen_second"), table_name="seen_messages")
    _set_aside(dialect)
    _new_table(sa.Column("seen_at", lantern.db.base.UTCDateTime(), nullable=False))
    op.execute(
        "INSERT INTO seen_messages (source_id, digest, seen_at) "
        f"SELECT source_id, digest, {START_OF[dialect]} FROM seen_messages_old"
    )
    op.drop_table("seen_messages_old")
    op.create_index(op.f("ix_seen_messages_seen_at"), "seen_messages", ["seen_at"])
