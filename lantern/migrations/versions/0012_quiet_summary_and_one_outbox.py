"""quiet-hours summary, and webhook deliveries in the outbox's states

A workspace says how the alerts held in its quiet hours go out when they end: `each` (one
message per insight, as every workspace so far) or `summary` (one message listing them).
Webhook deliveries take the outbox's states: `sending` (claimed, outcome unknown) beside
`pending`, `sent` and `failed`, with `sending_since` as on the Slack rows; the rows kept
are already in one of the old states, which keep their meaning.

Revision ID: 6f7a8b9c0d1e
Revises: 6e1f2a3b4c5d
Create Date: 2026-11-30 03:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lantern.db.base

revision: str = "6f7a8b9c0d1e"
down_revision: str | None = "6e1f2a3b4c5d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # recreate="never": a copied workspaces table would cascade to all they own (see 0009)
    with op.batch_alter_table("workspaces", schema=None, recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column(
                "quiet_hours_delivery", sa.String(length=16), nullable=False, server_default="each"
            )
        )
    with op.batch_alter_table("webhook_deliveries", schema=None, recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("sending_since", lantern.db.base.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    # a delivery claimed when the schema goes back is sent again, with the same id
    op.execute("UPDATE webhook_deliveries SET status = 'pending' WHERE status = 'sending'")
    with op.batch_alter_table("webhook_deliveries", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("sending_since")
    with op.batch_alter_table("workspaces", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("quiet_hours_delivery")
