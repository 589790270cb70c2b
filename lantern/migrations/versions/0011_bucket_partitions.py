"""buckets partitioned by week on PostgreSQL

On PostgreSQL `buckets` becomes a table partitioned by range of `hour`, one partition a
UTC week (see `lantern/metrics/partitions.py`), with a DEFAULT partition for any hour no
week covers. The rows already stored are not copied: the old table itself becomes the
partition of every hour before the end of the week of its newest row
(`buckets_before_YYYYMMDD`, the Monday it ends on), attached after one scan that checks
its range, so the upgrade of a large table costs a read of it, not a rewrite. This week's
partition (unless the old table holds it) and the next four are created; the scheduler
creates later ones. The retention deletes the old partition's hours row by row as they
expire, and drops it whole once they all have.

Downgrade copies every row back into one plain table. SQLite keeps its plain table: both
ways are no-ops there.

Revision ID: 6e1f2a3b4c5d
Revises: 5e6f7a8b9c0d
Create Date: 2026-11-30 03:00:00.000000
"""

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "6e1f2a3b4c5d"
down_revision: str | None = "5e6f7a8b9c0d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HOURS_A_WEEK = 168
FIRST_MONDAY = 96  # Monday 1970-01-05 00:00 UTC, in hours since the epoch
WEEKS_AHEAD = 4


def _week_of(hour: int) -> int:
    return hour - (hour - FIRST_MONDAY) % HOURS_A_WEEK


def _day(hour: int) -> str:
    return f"{datetime.fromtimestamp(hour * 3600, UTC):%Y%m%d}"


def _columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("metric_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("value_sum", sa.Float(), nullable=False),
        sa.Column("value_sq", sa.Float(), nullable=True),
    ]


def _buckets_table(name: str, **kwargs: Any) -> None:
    op.create_table(
        name,
        *_columns(),
        sa.ForeignKeyConstraint(
            ["metric_id"],
            ["metrics.id"],
            name=op.f(f"fk_{name}_metric_id_metrics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("metric_id", "hour", name=op.f(f"pk_{name}")),
        **kwargs,
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    now = _week_of(int(time.time() // 3600))
    newest = bind.scalar(sa.text("SELECT max(hour) FROM buckets"))
    first_week = now
    if newest is None:
        op.drop_table("buckets")
    else:
        # Every stored hour is before `end`: the old table holds them all, as they are.
        end = _week_of(max(int(newest), now)) + HOURS_A_WEEK
        old = f"buckets_before_{_day(end)}"
        op.rename_table("buckets", old)
        op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_buckets TO pk_{old}")
        op.execute(
            f"ALTER TABLE {old} RENAME CONSTRAINT fk_buckets_metric_id_metrics "
            f"TO fk_{old}_metric_id_metrics"
        )
        first_week = end
    _buckets_table("buckets", postgresql_partition_by="RANGE (hour)")
    if newest is not None:
        op.execute(
            f"ALTER TABLE buckets ATTACH PARTITION {old} FOR VALUES FROM (MINVALUE) TO ({end})"
        )
    op.execute("CREATE TABLE buckets_default PARTITION OF buckets DEFAULT")
    for start in range(first_week, now + HOURS_A_WEEK * (WEEKS_AHEAD + 1), HOURS_A_WEEK):
        op.execute(
            f"CREATE TABLE buckets_w{_day(start)} PARTITION OF buckets "
            f"FOR VALUES FROM ({start}) TO ({start + HOURS_A_WEEK})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _buckets_table("buckets_plain")
    op.execute(
        "INSERT INTO buckets_plain (metric_id, hour, count, value_sum, value_sq) "
        "SELECT metric_id, hour, count, value_sum, value_sq FROM buckets "
        "ORDER BY metric_id, hour"
    )
    op.drop_table("buckets")  # and every partition with it
    op.rename_table("buckets_plain", "buckets")
    op.execute("ALTER TABLE buckets RENAME CONSTRAINT pk_buckets_plain TO pk_buckets")
    op.execute(
        "ALTER TABLE buckets RENAME CONSTRAINT fk_buckets_plain_metric_id_metrics "
        "TO fk_buckets_metric_id_metrics"
    )
