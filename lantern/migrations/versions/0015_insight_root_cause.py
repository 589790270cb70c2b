"""each insight's root cause: the breakdown values that explain it, or that it is broad

`insights.root_cause` (JSON, NULL for an insight whose metric had no breakdown data when
it opened, and for every insight opened before this revision) is written once, when the
insight opens, so its Slack alert, its newsfeed card and its page say the same thing.
Downgrade drops the column.

Revision ID: 8c2d3e4f5a6b
Revises: 7b1c2d3e4f5a
Create Date: 2026-11-30 09:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8c2d3e4f5a6b"
down_revision: str | None = "7b1c2d3e4f5a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # recreate="never": a copied insights table would cascade to its notifications
    with op.batch_alter_table("insights", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("root_cause", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("insights", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("root_cause")
