"""each metric's first hour, kept on the metric

`metrics.first_hour` (epoch hours, NULL for a metric without buckets) is the earliest hour
any of the metric's buckets was written for. Every write of buckets keeps it from now on;
the upgrade fills it from the buckets kept, one lookup of the buckets' primary key per
metric. Downgrade drops the column: the buckets still say it.

Revision ID: 7a0b1c2d3e4f
Revises: 6f7a8b9c0d1e
Create Date: 2026-11-30 05:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7a0b1c2d3e4f"
down_revision: str | None = "6f7a8b9c0d1e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # recreate="never": a copied metrics table would cascade to its buckets (see 0009)
    with op.batch_alter_table("metrics", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("first_hour", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE metrics SET first_hour = "
        "(SELECT min(buckets.hour) FROM buckets WHERE buckets.metric_id = metrics.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("metrics", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("first_hour")
