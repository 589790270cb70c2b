"""alerts per breakdown value: the metrics and dimensions opted in, and a metric per value

`breakdown_alerts` holds each (metric, dimension) whose values are watched as metrics of
their own; none is, so far. `metrics.parent_id` and `metrics.breakdown_value_id` link such
a metric (kind "breakdown") to the metric it splits and to its value; NULL for every metric
discovered by ingest. They are plain integers: SQLite adds a foreign key to a table only by
copying it, and a copied metrics table would cascade its drop to every bucket (the code
that deletes a value or an alert deletes its metrics). Downgrade deletes the metrics of
breakdown values (with their buckets and insights), then the columns and the table.

Revision ID: 1a5b6c7d8e9f
Revises: 9d3e4f5a6b7c
Create Date: 2026-11-30 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lantern.db.base

revision: str = "1a5b6c7d8e9f"
down_revision: str | None = "9d3e4f5a6b7c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "breakdown_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("metric_id", sa.Integer(), nullable=False),
        sa.Column("dimension_id", sa.Integer(), nullable=False),
        sa.Column("created_at", lantern.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dimension_id"],
            ["breakdown_dimensions.id"],
            name=op.f("fk_breakdown_alerts_dimension_id_breakdown_dimensions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["metric_id"],
            ["metrics.id"],
            name=op.f("fk_breakdown_alerts_metric_id_metrics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breakdown_alerts")),
        sa.UniqueConstraint(
            "metric_id", "dimension_id", name=op.f("uq_breakdown_alerts_metric_id")
        ),
    )
    op.create_index(
        op.f("ix_breakdown_alerts_dimension_id"), "breakdown_alerts", ["dimension_id"], unique=False
    )
    # recreate="never": a copied metrics table would cascade its drop to its buckets
    with op.batch_alter_table("metrics", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("breakdown_value_id", sa.Integer(), nullable=True))
    op.create_index(
        "ix_metrics_parent_id", "metrics", ["parent_id", "breakdown_value_id"], unique=True
    )
    op.create_index(
        op.f("ix_metrics_breakdown_value_id"), "metrics", ["breakdown_value_id"], unique=False
    )


def downgrade() -> None:
    op.execute("DELETE FROM metrics WHERE parent_id IS NOT NULL")
    op.drop_index(op.f("ix_metrics_breakdown_value_id"), table_name="metrics")
    op.drop_index("ix_metrics_parent_id", table_name="metrics")
    # SQLite 3.35+ drops a column in place
    with op.batch_alter_table("metrics", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("breakdown_value_id")
        batch_op.drop_column("parent_id")
    op.drop_index(op.f("ix_breakdown_alerts_dimension_id"), table_name="breakdown_alerts")
    op.drop_table("breakdown_alerts")
