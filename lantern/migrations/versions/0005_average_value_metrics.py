"""average value metrics

Buckets gain `value_sq`, the sum of the squares of the hour's values: with `count` and
`value_sum` it is what an average metric ("Page Load (average value)") and its spread
need. Every hour already stored has NULL there: squares were never kept.

The average metrics are backfilled. A value metric's buckets already hold what an
average needs but the squares: `count` is the number of events that carried a value (only
those increment a value metric) and `value_sum` their sum. So each value metric gets its
average sibling, created as if discovered with it (same `created_at`), with a copy of its
buckets (`value_sq` NULL): the average has its history, and its training week behind it,
from the start. The per-source metric cap (`LANTERN_METRIC_CAP`) holds as it does at
ingest: a source gets averages for as many value metrics as it has room for, by name;
the others are created at ingest like any new name past the cap, into the overflow metric.

Downgrade deletes the average metrics (their buckets, insights and watches go with them by
cascade) and the column.

Revision ID: 9b471d9b8a39
Revises: 3b9c2f5e7a41
Create Date: 2026-11-29 18:40:00.000000
"""

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b471d9b8a39"
down_revision: str | None = "3b9c2f5e7a41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Ids per statement: well under SQLite's limit of bound parameters.
CHUNK = 500


def _metric_cap() -> int:
    from lantern.config import get_settings

    return get_settings().metric_cap


def upgrade() -> None:
    with op.batch_alter_table("buckets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("value_sq", sa.Float(), nullable=True))
    connection = op.get_bind()
    values = connection.execute(
        sa.text("SELECT id, source_id, name FROM metrics WHERE kind = 'value' ORDER BY name")
    ).all()
    if not values:
        return
    # the kinds the cap counts: all but `lantern.metrics.keys.UNCAPPED`
    capped = connection.execute(
        sa.text(
            "SELECT source_id, count(*) FROM metrics "
            "WHERE kind NOT IN ('total', 'overflow') GROUP BY source_id"
        )
    ).all()
    room = {source_id: _metric_cap() - int(n) for source_id, n in capped}
    per_source: dict[int, list[int]] = defaultdict(list)
    for metric_id, source_id, _name in values:
        per_source[source_id].append(metric_id)
    chosen = sorted(
        metric_id
        for source_id, ids in per_source.items()
        for metric_id in ids[: max(0, room.get(source_id, 0))]
    )
    for start in range(0, len(chosen), CHUNK):
        ids = chosen[start : start + CHUNK]
        connection.execute(
            sa.text(
                "INSERT INTO metrics (source_id, kind, name, created_at) "
                "SELECT source_id, 'mean', name, created_at FROM metrics WHERE id IN :ids"
            ).bindparams(sa.bindparam("ids", expanding=True)),
            {"ids": ids},
        )
        connection.execute(
            sa.text(
                "INSERT INTO buckets (metric_id, hour, count, value_sum, value_sq) "
                "SELECT m.id, b.hour, b.count, b.value_sum, NULL FROM buckets AS b "
                "JOIN metrics AS v ON v.id = b.metric_id "
                "JOIN metrics AS m ON m.source_id = v.source_id AND m.name = v.name "
                "AND m.kind = 'mean' "
                "WHERE v.id IN :ids"
            ).bindparams(sa.bindparam("ids", expanding=True)),
            {"ids": ids},
        )


def downgrade() -> None:
    connection = op.get_bind()
    # Buckets first: they are the bulk, and SQLite's cascade would visit them one by one.
    connection.execute(
        sa.text(
            "DELETE FROM buckets WHERE metric_id IN (SELECT id FROM metrics WHERE kind = 'mean')"
        )
    )
    connection.execute(sa.text("DELETE FROM metrics WHERE kind = 'mean'"))
    # SQLite 3.35+ drops a column in place, which keeps the table WITHOUT ROWID.
    with op.batch_alter_table("buckets", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("value_sq")
