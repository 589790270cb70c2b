"""Reading what ingest stored, the way a test wants to compare it."""

from __future__ import annotations

from sqlalchemy import Engine, select

from lantern.metrics.models import Bucket, Metric
from lantern.metrics.service import hour_index


def totals(engine: Engine, source_id: int) -> dict[tuple[str, str], int]:
    """Event count per metric (kind, name) of a source, over all hours."""
    result: dict[tuple[str, str], int] = {}
    with engine.connect() as connection:
        rows = connection.execute(
            select(Metric.kind, Metric.name, Bucket.count)
            .join(Bucket, Bucket.metric_id == Metric.id)
            .where(Metric.source_id == source_id)
        )
        for kind, name, count in rows:
            result[(kind, name)] = result.get((kind, name), 0) + count
    return result


def buckets(engine: Engine, source_id: int) -> dict[tuple[str, str, str], tuple[int, float]]:
    """(kind, name, ISO hour) -> (count, value_sum) for every bucket of a source."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(Metric.kind, Metric.name, Bucket.hour, Bucket.count, Bucket.value_sum)
            .join(Bucket, Bucket.metric_id == Metric.id)
            .where(Metric.source_id == source_id)
        )
        return {
            (kind, name, hour_index(hour).isoformat()): (count, value)
            for kind, name, hour, count, value in rows
        }
