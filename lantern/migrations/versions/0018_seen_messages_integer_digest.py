"""message ids remembered as a 64-bit integer

`seen_messages.digest` was a message id's 16-byte BLAKE2b digest; it becomes the first 8
of those bytes read as a signed big-endian integer (`lantern.ingest.events.digest_of`), so
every id remembered before the upgrade is still recognised after it. A row is written for
every event, and an integer key is smaller and cheaper to compare than a 16-byte string,
in the table and in PostgreSQL's index. As in 0006, the rows are copied into a new table
rather than altered in place.

Downgrade keeps every row and the second it was first seen, the digest as its 8 bytes:
the 16-byte digests of the code before cannot be rebuilt from them, so a repeat of a
message seen before the downgrade is counted again.

Revision ID: 7e2c4a9d1f63
Revises: 1a5b6c7d8e9f
Create Date: 2026-11-30 15:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "7e2c4a9d1f63"
down_revision: str | None = "1a5b6c7d8e9f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The first 8 bytes of a 16-byte digest as a signed big-endian integer, in each engine's
# SQL. SQLite has no function from bytes to an integer: each of the 16 hex digits is
# shifted into place (a shift into the top bit gives the negative number it should).
_SQLITE_HEX = "hex(digest)"
INTEGER_OF = {
    "sqlite": " | ".join(
        f"((instr('0123456789ABCDEF', substr({_SQLITE_HEX}, {i}, 1)) - 1) << {4 * (16 - i)})"
        for i in range(1, 17)
    ),
    "postgresql": "('x' || encode(substring(digest FROM 1 FOR 8), 'hex'))::bit(64)::bigint",
}
# Rows copied per statement by the downgrade on SQLite, which has no SQL for it.
DOWNGRADE_CHUNK = 10_000


def _set_aside(dialect: str) -> None:
    """Rename the table out of the way, with its key (whose name PostgreSQL keeps)."""
    op.drop_index(op.f("ix_seen_messages_seen_second"), table_name="seen_messages")
    op.rename_table("seen_messages", "seen_messages_old")
    if dialect == "postgresql":
        op.execute(
            "ALTER TABLE seen_messages_old RENAME CONSTRAINT pk_seen_messages "
            "TO pk_seen_messages_old"
        )


def _new_table(digest: sa.types.TypeEngine[Any]) -> None:
    op.create_table(
        "seen_messages",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("digest", digest, autoincrement=False, nullable=False),
        sa.Column("seen_second", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_seen_messages_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source_id", "digest", name=op.f("pk_seen_messages")),
        sqlite_with_rowid=False,
    )


def _finish() -> None:
    op.drop_table("seen_messages_old")
    op.create_index(op.f("ix_seen_messages_seen_second"), "seen_messages", ["seen_second"])


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _set_aside(dialect)
    _new_table(sa.BigInteger())
    # Two old digests that share their first 8 bytes keep one row (the earlier second).
    op.execute(
        "INSERT INTO seen_messages (source_id, digest, seen_second) "
        f"SELECT source_id, {INTEGER_OF[dialect]}, min(seen_second) FROM seen_messages_old "
        "GROUP BY 1, 2"
    )
    _finish()


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    _set_aside(dialect)
    _new_table(sa.LargeBinary(length=16))
    if dialect == "postgresql":
        op.execute(
            "INSERT INTO seen_messages (source_id, digest, seen_second) "
            "SELECT source_id, decode(lpad(to_hex(digest), 16, '0'), 'hex'), seen_second "
            "FROM seen_messages_old"
        )
    else:
        _copy_as_bytes(bind)
    _finish()


def _copy_as_bytes(bind: sa.Connection) -> None:
    """SQLite: copy the rows with each digest as its 8 big-endian bytes, a chunk at a time."""
    after: tuple[int, int] = (-(2**63), -(2**63))
    while True:
        rows = bind.exec_driver_sql(
            "SELECT source_id, digest, seen_second FROM seen_messages_old "
            "WHERE (source_id, digest) > (?, ?) ORDER BY source_id, digest LIMIT ?",
            (*after, DOWNGRADE_CHUNK),
        ).all()
        if not rows:
            return
        bind.exec_driver_sql(
            "INSERT INTO seen_messages (source_id, digest, seen_second) VALUES (?, ?, ?)",
            [(s, d.to_bytes(8, "big", signed=True), t) for s, d, t in rows],
        )
        after = (rows[-1][0], rows[-1][1])
