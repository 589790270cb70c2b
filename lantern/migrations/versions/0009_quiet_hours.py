"""quiet hours and the daily digest

A workspace's delivery policy: its time zone (`UTC` for every workspace so far), its quiet
hours (none so far), whether high-severity outages wait them out too (no), and the local
hour of its daily digest of low-severity alerts (none so far).

Revision ID: 4d5e6f7a8b9c
Revises: 1a2b3c4d5e6f
Create Date: 2026-11-30 00:25:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4d5e6f7a8b9c"
down_revision: str | None = "1a2b3c4d5e6f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workspaces", schema=None, recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("time_zone", sa.String(length=64), nullable=False, server_default="UTC")
        )
        batch_op.add_column(sa.Column("quiet_start", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("quiet_end", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("digest_hour", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "quiet_holds_outages", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place: a copied workspaces table would cascade its
    # drop to everything the workspaces own.
    with op.batch_alter_table("workspaces", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("quiet_holds_outages")
        batch_op.drop_column("digest_hour")
        batch_op.drop_column("quiet_end")
        batch_op.drop_column("quiet_start")
        batch_op.drop_column("time_zone")
