"""slack channel ids and pauses

Revision ID: 3b9c2f5e7a41
Revises: 618470da7f08
Create Date: 2026-11-29 18:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lantern.db.base

revision: str = "3b9c2f5e7a41"
down_revision: str | None = "618470da7f08"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A channel stored by name before this revision is resolved to its id by the outbox.
    with op.batch_alter_table("slack_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel_name", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("paused_until", lantern.db.base.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("slack_connections", schema=None) as batch_op:
        batch_op.drop_column("paused_until")
        batch_op.drop_column("channel_name")
