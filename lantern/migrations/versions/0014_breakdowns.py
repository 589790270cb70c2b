"""breakdowns: each source's dimensions, their values, and hourly counts per value

Every source gets the default dimensions (os, app_version, library, country, page_path);
none has counts yet, so a breakdown starts with the first events after the upgrade.
Downgrading drops the three tables and what they counted.

Revision ID: 7b1c2d3e4f5a
Revises: 7a0b1c2d3e4f
Create Date: 2026-11-30 05:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import lantern.db.base

revision: str = "7b1c2d3e4f5a"
down_revision: str | None = "7a0b1c2d3e4f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As `lantern.breakdowns.dimensions.DEFAULT_DIMENSIONS` is today: a migration does not
# change with the code.
DEFAULTS = ("os", "app_version", "library", "country", "page_path")


def upgrade() -> None:
    op.create_table(
        "breakdown_dimensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("created_at", lantern.db.base.UTCDateTime(), nullable=False),
        sa.Column("refused", sa.String(length=300), nullable=True),
        sa.Column("refused_at", lantern.db.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_breakdown_dimensions_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breakdown_dimensions")),
        sa.UniqueConstraint("source_id", "name", name=op.f("uq_breakdown_dimensions_source_id")),
    )
    op.create_index(
        op.f("ix_breakdown_dimensions_source_id"),
        "breakdown_dimensions",
        ["source_id"],
        unique=False,
    )
    op.create_table(
        "breakdown_values",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dimension_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("created_at", lantern.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dimension_id"],
            ["breakdown_dimensions.id"],
            name=op.f("fk_breakdown_values_dimension_id_breakdown_dimensions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breakdown_values")),
        sa.UniqueConstraint("dimension_id", "value", name=op.f("uq_breakdown_values_dimension_id")),
    )
    op.create_table(
        "breakdown_buckets",
        sa.Column("value_id", sa.Integer(), nullable=False),
        sa.Column("metric_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("valued", sa.BigInteger(), nullable=False),
        sa.Column("value_sum", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["metric_id"],
            ["metrics.id"],
            name=op.f("fk_breakdown_buckets_metric_id_metrics"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["value_id"],
            ["breakdown_values.id"],
            name=op.f("fk_breakdown_buckets_value_id_breakdown_values"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("value_id", "metric_id", "hour", name=op.f("pk_breakdown_buckets")),
        sqlite_with_rowid=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        # Room on each page for a row's next version: an update that stays on its page
        # (HOT) writes no new index entry, and ingest updates these rows every commit.
        op.execute("ALTER TABLE breakdown_buckets SET (fillfactor = 50)")
    dimensions = sa.table(
        "breakdown_dimensions",
        sa.column("source_id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("created_at", lantern.db.base.UTCDateTime()),
    )
    connection = op.get_bind()
    sources = [row[0] for row in connection.execute(sa.text("SELECT id FROM sources ORDER BY id"))]
    now = lantern.db.base.utcnow()
    rows = [{"source_id": s, "name": name, "created_at": now} for s in sources for name in DEFAULTS]
    if rows:
        op.bulk_insert(dimensions, rows)


def downgrade() -> None:
    op.drop_table("breakdown_buckets")
    op.drop_table("breakdown_values")
    op.drop_index(op.f("ix_breakdown_dimensions_source_id"), table_name="breakdown_dimensions")
    op.drop_table("breakdown_dimensions")
