"""each tracking break's evidence: what the event's source, or its other app versions, kept
sending, and the name that may have replaced it

`insights.tracking_break` (JSON) is written once, when an outage or a drop of a track
event, page or screen opens and is found to be a tracking break (the insight's kind is
then "tracking_break"); NULL for every other insight and for those opened before this
revision. Downgrade drops the column; the kind of the insights it told stays as stored.

Revision ID: 9d3e4f5a6b7c
Revises: 8c2d3e4f5a6b
Create Date: 2026-11-30 09:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9d3e4f5a6b7c"
down_revision: str | None = "8c2d3e4f5a6b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # recreate="never": a copied insights table would cascade to its notifications
    with op.batch_alter_table("insights", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("tracking_break", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("insights", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("tracking_break")
