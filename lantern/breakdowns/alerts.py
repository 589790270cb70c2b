"""Alerts per breakdown value: each value of a dimension watched as a metric of its own.

A team opts a metric in per dimension (`set_breakdown_alerts`): from then on each value
that dimension counts on its own (not "other") has a metric of kind `breakdown`, its
parent's events that carried the value, named "Checkout Completed — OS Android". Its
buckets are copied from the breakdown counts (`sync_value_metrics`, by the hourly pass
before it scores, and at once for a new alert), so a value with weeks of breakdowns is
trained the hour its alert is set, and a value first seen later gets its metric then.
Everything else is a metric's: training, scoring, episodes, the workspace's sensitivity,
insights, Slack, the newsfeed and charts. So "Android dropped 60%" is told even when its
metric's total barely moved.

A metric of a value is not counted by ingest's cap (no event ever names its kind), nor in
a source-wide incident, nor judged as a tracking break (only events, pages and screens
are), and it has no root cause of its own (its value's events have no breakdowns). Only
counts are split: a value or an average metric's values are not (see `unavailable`).

Its links (`metrics.parent_id`, `metrics.breakdown_value_id`) are plain integers, so the
code that deletes an alert or a value deletes its metrics (`drop_value_metrics`), and the
hourly pass sweeps any whose alert or value is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, exists, func, literal, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from lantern.breakdowns.models import (
    BreakdownAlert,
    BreakdownBucket,
    BreakdownDimension,
    BreakdownValue,
)
from lantern.breakdowns.rootcause import dimension_label
from lantern.breakdowns.service import OTHER_VALUE, drop_value_metrics, list_dimensions
from lantern.db.dialect import fetch_all, insert_for
from lantern.errors import BadRequest
from lantern.metrics.keys import MetricKind, display_name
from lantern.metrics.models import Bucket, Metric

log = logging.getLogger(__name__)

# The kinds whose values can be watched: counts of events. A value or an average metric
# has no breakdown rows of its own (its event's count metric carries them), the overflow
# metric is names past the cap, and a value's metric is split already.
SPLIT_KINDS = frozenset(
    {
        MetricKind.TRACK,
        MetricKind.PAGE,
        MetricKind.SCREEN,
        MetricKind.TOTAL,
        MetricKind.FLAG,
        MetricKind.EXPERIMENT,
    }
)
# Hours before the scored one that each pass copies again: the events that arrived late
# (a phone back online). Once a day the pass copies the whole late horizon.
FILL_HOURS = 24
NAME_LENGTH = 200  # metrics.name
SEPARATOR = " \u2014 "  # an em dash between the metric and its value


def unavailable(kind: str) -> str | None:
    """Why a metric of `kind` cannot have alerts per value; None when it can."""
    if kind in SPLIT_KINDS:
        return None
    if kind == MetricKind.BREAKDOWN:
        return "this metric is one value of a breakdown already: set alerts per value on its parent"
    if kind in (MetricKind.VALUE, MetricKind.MEAN):
        return (
            "alerts per value watch counts of events: a sum or an average of values is not "
            "split; set them on the event's own metric (its count)"
        )
    return "the metrics over the cap are names past it, not one event: they are not split"


def value_metric_name(parent_kind: str, parent_name: str, dimension: str, value: str) -> str:
    """How a value's metric is named: "Checkout Completed — app version 5.2"."""
    of = f"{dimension_label(dimension)} {value}"
    return f"{display_name(parent_kind, parent_name)}{SEPARATOR}{of}"[:NAME_LENGTH]


@dataclass(frozen=True, slots=True)
class AlertDimension:
    """A dimension of the metric's source, and whether the metric's values of it are watched."""

    name: str
    alerting: bool
    recording: bool
    refused: str | None


def alert_dimensions(session: Session, *, metric: Metric) -> list[AlertDimension]:
    """The source's dimensions, in their order, each saying whether its values are watched."""
    chosen = set(
        session.scalars(
            select(BreakdownAlert.dimension_id).where(BreakdownAlert.metric_id == metric.id)
        )
    )
    return [
        AlertDimension(
            name=row.name,
            alerting=row.id in chosen,
            recording=row.refused is None,
            refused=row.refused,
        )
        for row in list_dimensions(session, source_id=metric.source_id)
    ]


def value_metric_ids(session: Session, *, parent_id: int) -> list[int]:
    """The metrics of a metric's watched values, by dimension and value."""
    return list(
        session.scalars(
            select(Metric.id)
            .join(BreakdownValue, BreakdownValue.id == Metric.breakdown_value_id)
            .join(BreakdownDimension, BreakdownDimension.id == BreakdownValue.dimension_id)
            .where(Metric.parent_id == parent_id)
            .order_by(BreakdownDimension.name, BreakdownValue.value)
        )
    )


def set_breakdown_alerts(session: Session, *, metric: Metric, names: Sequence[str]) -> None:
    """Make `names` the dimensions whose values of `metric` are each watched as a metric.

    A new one creates a metric per value with the history its breakdowns hold; one left out
    deletes its values' metrics, their buckets and insights. BadRequest, with the reason,
    for a metric that cannot be split, a dimension the source does not have, or a refused one.
    """
    reason = unavailable(metric.kind)
    if reason is not None:
        raise BadRequest(reason, error="unsupported_metric")
    wanted = list(dict.fromkeys(name.strip() for name in names))
    dimensions = {row.name: row for row in list_dimensions(session, source_id=metric.source_id)}
    for name in wanted:
        row = dimensions.get(name)
        if row is None:
            known = ", ".join(dimensions) or "none"
            raise BadRequest(
                f"the source has no dimension {name!r} (it has: {known}): add it to the "
                "source's breakdowns in Settings first",
                error="unknown_dimension",
            )
        if row.refused is not None:
            raise BadRequest(
                f"the dimension {name!r} was refused ({row.refused}): it counts nothing, so "
                "its values cannot be watched",
                error="refused_dimension",
            )
    chosen = {dimensions[name].id for name in wanted}
    existing = {
        alert.dimension_id: alert
        for alert in session.scalars(
            select(BreakdownAlert).where(BreakdownAlert.metric_id == metric.id)
        )
    }
    gone = sorted(set(existing) - chosen)
    if gone:
        drop_value_metrics(session.connection(), dimension_ids=gone, parent_id=metric.id)
        for dimension_id in gone:
            session.delete(existing[dimension_id])
    added = sorted(chosen - set(existing))
    session.add_all(BreakdownAlert(metric_id=metric.id, dimension_id=d) for d in added)
    session.flush()
    if added:
        sync_value_metrics(session.connection(), since=0, parent_id=metric.id)


@dataclass(frozen=True, slots=True)
class Synced:
    """What one sync did: the values' metrics created, and those deleted as orphans."""

    created: int = 0
    swept: int = 0


def watching(connection: Connection) -> bool:
    """Whether any metric has alerts per value, or a value's metric is left: one query."""
    alerts = exists().where(BreakdownAlert.id.is_not(None))
    children = exists().where(Metric.parent_id.is_not(None))
    return bool(connection.scalar(select(or_(alerts, children))))


def sync_value_metrics(
    connection: Connection, *, since: int, parent_id: int | None = None
) -> Synced:
    """Give each watched value its metric and copy its breakdown counts into its buckets.

    A metric new to its value (no first hour yet) takes all of the value's hours; the
    others those from `since` (epoch hours) on, so late events reach them too. A copy
    sets a bucket to the breakdown's count, so a pass run twice writes nothing new. With
    `parent_id`, only that metric's values (a new alert); else every alert's, after
    deleting the value metrics whose alert or value is gone.
    """
    swept = 0 if parent_id is not None else _sweep(connection)
    created = _create_missing(connection, parent_id)
    _copy_counts(connection, since, parent_id)
    _move_first_hours(connection, since, parent_id)
    return Synced(created=created, swept=swept)


def _sweep(connection: Connection) -> int:
    """Delete the value metrics whose value is gone, is "other", or is no longer alerted."""
    kept = (
        select(BreakdownValue.id)
        .join(BreakdownAlert, BreakdownAlert.dimension_id == BreakdownValue.dimension_id)
        .where(
            BreakdownValue.id == Metric.breakdown_value_id,
            BreakdownAlert.metric_id == Metric.parent_id,
            BreakdownValue.value != OTHER_VALUE,
        )
        .exists()
    )
    gone = connection.execute(delete(Metric).where(Metric.parent_id.is_not(None), ~kept))
    return int(gone.rowcount or 0)


def _create_missing(connection: Connection, parent_id: int | None) -> int:
    """A metric for each watched value that has none, named after its parent and value."""
    parent = Metric.__table__.alias("parent")
    child = Metric.__table__.alias("child")
    query = (
        select(
            parent.c.id,
            parent.c.source_id,
            parent.c.kind,
            parent.c.name,
            BreakdownDimension.name,
            BreakdownValue.id,
            BreakdownValue.value,
        )
        .join(BreakdownAlert, BreakdownAlert.metric_id == parent.c.id)
        .join(BreakdownDimension, BreakdownDimension.id == BreakdownAlert.dimension_id)
        .join(BreakdownValue, BreakdownValue.dimension_id == BreakdownAlert.dimension_id)
        .where(
            BreakdownDimension.refused.is_(None),
            BreakdownValue.value != OTHER_VALUE,
            ~select(child.c.id)
            .where(
                child.c.parent_id == parent.c.id,
                child.c.breakdown_value_id == BreakdownValue.id,
            )
            .exists(),
        )
        .order_by(parent.c.id, BreakdownValue.id)
    )
    if parent_id is not None:
        query = query.where(parent.c.id == parent_id)
    missing = fetch_all(connection, query)
    if not missing:
        return 0
    rows = [
        {
            "source_id": source_id,
            "kind": MetricKind.BREAKDOWN.value,
            "name": value_metric_name(kind, name, dimension, value),
            "parent_id": pid,
            "breakdown_value_id": value_id,
        }
        for pid, source_id, kind, name, dimension, value_id, value in missing
    ]
    insert = insert_for(connection, Metric).on_conflict_do_nothing()
    connection.execute(insert, rows)
    # A name another metric of a value has (two metrics of the same label, or names cut
    # at 200 characters) is told apart by its value's id.
    left = _without_metric(connection, rows)
    if left:
        for row in left:
            mark = f" #{row['breakdown_value_id']}"
            row["name"] = str(row["name"])[: NAME_LENGTH - len(mark)] + mark
        connection.execute(insert, left)
        for row in _without_metric(connection, left):
            log.warning(
                "no metric for breakdown value %s of metric %s: its name %r is taken",
                row["breakdown_value_id"],
                row["parent_id"],
                row["name"],
            )
    return len(rows) - len(_without_metric(connection, rows))


Row = dict[str, object]


def _without_metric(connection: Connection, rows: list[Row]) -> list[Row]:
    """The rows of `rows` whose (parent, value) has no metric."""
    have = set(
        fetch_all(
            connection,
            select(Metric.parent_id, Metric.breakdown_value_id).where(
                Metric.parent_id.in_(sorted({int(str(r["parent_id"])) for r in rows}))
            ),
        )
    )
    return [r for r in rows if (r["parent_id"], r["breakdown_value_id"]) not in have]


def _copy_counts(connection: Connection, since: int, parent_id: int | None) -> None:
    """Set the value metrics' buckets to their breakdown counts: every hour of a metric
    without a first hour yet, the hours from `since` of the others.

    Two statements, each reading the breakdown rows of its metrics through their primary
    key (value, metric, hour): one condition covering both would read every breakdown row.
    """
    child = Metric.__table__.alias("child")
    for new in (True, False):
        rows = (
            select(
                child.c.id,
                BreakdownBucket.hour,
                BreakdownBucket.count,
                literal(0.0),
                literal(0.0),
            )
            .join(
                BreakdownBucket,
                and_(
                    BreakdownBucket.value_id == child.c.breakdown_value_id,
                    BreakdownBucket.metric_id == child.c.parent_id,
                ),
            )
            .where(child.c.parent_id.is_not(None))
            # in key order: concurrent writers of the same buckets lock them in one order
            .order_by(child.c.id, BreakdownBucket.hour)
        )
        if new:
            rows = rows.where(child.c.first_hour.is_(None))
        else:
            rows = rows.where(child.c.first_hour.is_not(None), BreakdownBucket.hour >= since)
        if parent_id is not None:
            rows = rows.where(child.c.parent_id == parent_id)
        insert = insert_for(connection, Bucket).from_select(
            ["metric_id", "hour", "count", "value_sum", "value_sq"], rows
        )
        connection.execute(
            insert.on_conflict_do_update(
                index_elements=["metric_id", "hour"],
                set_={"count": insert.excluded.count},
                where=Bucket.count != insert.excluded.count,
            )
        )


def _move_first_hours(connection: Connection, since: int, parent_id: int | None) -> None:
    """Each value metric's first hour, where a copy may have moved it: the earliest of its
    buckets (one lookup of their primary key a metric)."""
    earliest = select(func.min(Bucket.hour)).where(Bucket.metric_id == Metric.id).scalar_subquery()
    query = (
        update(Metric)
        .where(
            Metric.parent_id.is_not(None),
            or_(Metric.first_hour.is_(None), Metric.first_hour >= since),
        )
        .values(first_hour=earliest)
    )
    if parent_id is not None:
        query = query.where(Metric.parent_id == parent_id)
    connection.execute(query)
