"""slack buttons and metric owners

`slack_actions` keeps each button clicked on an alert in Slack (who, what, which insight);
a pasted bot token's connection keeps its app's signing secret, which checks those clicks.
An alert's outbox row keeps the file id of its chart, uploaded before the alert and shown
in it. A metric gains an optional owner (a Slack user or user group its alerts mention) and a
note shown in its alerts.

Revision ID: 7c3d1e9a5b20
Revises: 5b0e9c2d7a41
Create Date: 2026-11-29 23:55:10.262434
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lantern.db.base

revision: str = "7c3d1e9a5b20"
down_revision: str | None = "5b0e9c2d7a41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slack_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("insight_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("slack_team_id", sa.String(length=50), nullable=False),
        sa.Column("slack_user_id", sa.String(length=50), nullable=False),
        sa.Column("slack_user_name", sa.String(length=200), nullable=True),
        sa.Column("until", lantern.db.base.UTCDateTime(), nullable=True),
        sa.Column("created_at", lantern.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["insight_id"],
            ["insights.id"],
            name=op.f("fk_slack_actions_insight_id_insights"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_slack_actions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_actions")),
    )
    with op.batch_alter_table("slack_actions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_slack_actions_insight_id"), ["insight_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_slack_actions_workspace_id"), ["workspace_id"], unique=False
        )

    with op.batch_alter_table("metrics", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))

    with op.batch_alter_table("slack_connections", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("signing_secret", sa.String(length=200), nullable=True))

    with op.batch_alter_table("notifications", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("file_id", sa.String(length=50), nullable=True))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place: a copied table would cascade its drop to the
    # metrics' buckets and insights.
    with op.batch_alter_table("slack_connections", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("signing_secret")

    with op.batch_alter_table("notifications", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("file_id")

    with op.batch_alter_table("metrics", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("note")
        batch_op.drop_column("owner")

    with op.batch_alter_table("slack_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slack_actions_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_slack_actions_insight_id"))

    op.drop_table("slack_actions")
