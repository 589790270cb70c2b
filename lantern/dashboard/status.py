"""Metrics as the dashboard lists them: status, training countdown, latest values, watch.

The list is filtered (source, status, text) and paged in SQL: a page's figures are computed
for its own metrics only, so a source at its 10,000-metric cap lists as fast as a small one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, aliased

from lantern.breakdowns.models import BreakdownDimension, BreakdownValue
from lantern.db.dialect import insert_for, text_lower
from lantern.detect.series import TRAINING_DAYS, training_remaining
from lantern.errors import Invalid, NotFound
from lantern.insights.models import Insight, MetricWatch
from lantern.insights.service import feedback_raised
from lantern.metrics.keys import (
    IDENTIFY_VOLUME,
    NAME_SUFFIX,
    OVER_THE_CAP,
    TOTAL_WORDS,
    Measure,
    MetricKind,
    display_name,
    is_value_kind,
    measure,
)
from lantern.metrics.models import Bucket, Metric
from lantern.metrics.service import epoch_hour, hour_index
from lantern.workspaces.models import Source
from lantern.workspaces.service import get_source

Status = Literal["training", "active", "muted", "snoozed"]
STATUSES: tuple[Status, ...] = ("training", "active", "muted", "snoozed")
OPEN_STATUSES = ("open", "updated")
VOLUME_HOURS = 7 * 24
PAGE_LIMIT = 50  # metrics a page when the caller does not say
MAX_PAGE_LIMIT = 200


@dataclass(frozen=True, slots=True)
class MetricItem:
    """One metric with what a list of metrics shows about it."""

    id: int
    source_id: int
    source_name: str
    kind: str
    name: str
    label: str
    value_metric: bool
    measure: Measure
    status: Status
    training_left_seconds: int | None
    snoozed_until: datetime | None
    muted: bool
    latest_hour: datetime | None
    latest_value: float | None
    volume_7d: float | None
    open_insights: int
    first_hour: datetime | None
    owner: str | None = None
    note: str | None = None
    # kinds whose bar the team's feedback raised, and by how many settings
    feedback: dict[str, int] | None = None
    # a breakdown value's metric: the metric it splits, and the dimension and value
    parent_id: int | None = None
    breakdown: BreakdownOf | None = None


@dataclass(frozen=True, slots=True)
class BreakdownOf:
    """The dimension and value a breakdown value's metric counts, of its parent's events."""

    dimension: str
    value: str


def metric_status(
    *, first_hour: datetime | None, muted: bool, snoozed_until: datetime | None, now: datetime
) -> tuple[Status, int | None]:
    """The status and the training seconds left of a metric first seen at `first_hour`.

    `_has_status` is the same rule in SQL, for the list's status filter.
    """
    if first_hour is None:
        return "training", None
    left = int(training_remaining(first_hour, now).total_seconds())  # type: ignore[arg-type]
    if left > 0:
        return "training", left
    if muted:
        return "muted", 0
    if snoozed_until is not None and snoozed_until > now:
        return "snoozed", 0
    return "active", 0


def metric_items(
    session: Session,
    *,
    workspace_id: int,
    now: datetime,
    source_id: int | None = None,
    metric_ids: Sequence[int] | None = None,
) -> list[MetricItem]:
    """A workspace's metrics (of one source, or these ids) with their figures, by source and
    label; `metric_page` filters and pages the list."""
    since = epoch_hour(now) - VOLUME_HOURS + 1

    def per_metric(column: ColumnElement[float] | ColumnElement[int]) -> ColumnElement[float]:
        return select(column).where(Bucket.metric_id == Metric.id).scalar_subquery()

    latest = (
        select(Bucket.count, Bucket.value_sum)
        .where(Bucket.metric_id == Metric.id)
        .order_by(Bucket.hour.desc())
        .limit(1)
    )
    recent = select(Bucket.count, Bucket.value_sum).where(
        Bucket.metric_id == Metric.id, Bucket.hour >= since
    )
    query = (
        select(
            Metric.id,
            Metric.source_id,
            Source.name,
            Metric.kind,
            Metric.name,
            MetricWatch.muted,
            MetricWatch.snoozed_until,
            Metric.owner,
            Metric.note,
            Metric.first_hour,
            per_metric(func.max(Bucket.hour)),
            latest.with_only_columns(Bucket.count).scalar_subquery(),
            latest.with_only_columns(Bucket.value_sum).scalar_subquery(),
            recent.with_only_columns(func.sum(Bucket.count)).scalar_subquery(),
            recent.with_only_columns(func.sum(Bucket.value_sum)).scalar_subquery(),
            select(func.count())
            .select_from(Insight)
            .where(Insight.metric_id == Metric.id, Insight.status.in_(OPEN_STATUSES))
            .scalar_subquery(),
            Metric.parent_id,
            BreakdownDimension.name,
            BreakdownValue.value,
        )
        .join(Source, Source.id == Metric.source_id)
        .outerjoin(MetricWatch, MetricWatch.metric_id == Metric.id)
        .outerjoin(BreakdownValue, BreakdownValue.id == Metric.breakdown_value_id)
        .outerjoin(BreakdownDimension, BreakdownDimension.id == BreakdownValue.dimension_id)
        .where(Source.workspace_id == workspace_id)
        .order_by(Source.name, Metric.kind, Metric.name)
    )
    if source_id is not None:
        get_source(session, workspace_id=workspace_id, source_id=source_id)
        query = query.where(Metric.source_id == source_id)
    if metric_ids is not None:
        query = query.where(Metric.id.in_(list(metric_ids)))
    items = []
    for row in session.execute(query).all():
        (mid, sid, source_name, kind, name, muted, snoozed, owner, note, first, last) = row[:11]
        latest_count, latest_sum, week_count, week_sum, open_count = row[11:16]
        parent_id, dimension, split_value = row[16:]
        value, held = is_value_kind(kind), measure(kind)
        first_hour = hour_index(first).to_pydatetime() if first is not None else None
        state, left = metric_status(
            first_hour=first_hour, muted=bool(muted), snoozed_until=snoozed, now=now
        )
        item = MetricItem(
            id=mid,
            source_id=sid,
            source_name=source_name,
            kind=kind,
            name=name,
            label=display_name(kind, name),
            value_metric=value,
            measure=held,
            status=state,
            training_left_seconds=left,
            snoozed_until=snoozed,
            muted=bool(muted),
            latest_hour=hour_index(last).to_pydatetime() if last is not None else None,
            latest_value=None if last is None else _hourly(held, latest_count, latest_sum),
            volume_7d=_hourly(held, week_count, week_sum),
            open_insights=int(open_count or 0),
            first_hour=first_hour,
            owner=owner,
            note=note,
            parent_id=parent_id,
            breakdown=(
                BreakdownOf(dimension, split_value)
                if dimension is not None and split_value is not None
                else None
            ),
        )
        items.append(item)
    return items


@dataclass(frozen=True, slots=True)
class MetricPage:
    """One page of a workspace's metrics, the cursor of the next page, and how many match."""

    items: list[MetricItem]
    next_cursor: str | None
    total: int


BAD_CURSOR = "cursor: not a cursor this API gave; pass next_cursor back unchanged"


def encode_cursor(metric_id: int) -> str:
    """An opaque cursor after the metric `metric_id` (in the list's order)."""
    return base64.urlsafe_b64encode(f"metric:{metric_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Inverse of `encode_cursor`; Invalid for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        metric_id = int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid(BAD_CURSOR) from None
    if prefix != "metric" or not 1 <= metric_id <= 2_147_483_647:
        raise Invalid(BAD_CURSOR)
    return metric_id


def metric_page(
    session: Session,
    *,
    workspace_id: int,
    now: datetime,
    source_id: int | None = None,
    status: Status | None = None,
    q: str | None = None,
    limit: int = PAGE_LIMIT,
    cursor: str | None = None,
) -> MetricPage:
    """A page of a workspace's metrics, by source and label, filtered by source, status and
    text (in the label or the source name, any case); the filters run in SQL."""
    if source_id is not None:
        get_source(session, workspace_id=workspace_id, source_id=source_id)
    matching = _matching(
        workspace_id=workspace_id, now=now, source_id=source_id, status=status, q=q
    )
    # One pass: the count of every match rides along with the page's rows.
    listed = (
        matching.add_columns(*_family_order(), func.count().over().label("total"))
        .outerjoin(_PARENT, _PARENT.id == Metric.parent_id)
        .subquery()
    )
    order = (
        listed.c.source_name,
        listed.c.kind,
        listed.c.metric_name,
        listed.c.value_name,
        listed.c.id,
    )
    page = select(listed.c.id, listed.c.total).order_by(*order).limit(limit + 1)
    if cursor is not None:
        after = session.execute(
            select(*_family_order(), Metric.id)
            .join(Source, Source.id == Metric.source_id)
            .outerjoin(_PARENT, _PARENT.id == Metric.parent_id)
            .where(Metric.id == decode_cursor(cursor), Source.workspace_id == workspace_id)
        ).one_or_none()
        if after is None:
            raise Invalid(
                "cursor: the metric this page started after is gone (its source was deleted); "
                "start again from the first page"
            )
        page = page.where(tuple_(*order) > tuple_(*after))
    rows = session.execute(page).all()
    ids = [row.id for row in rows]
    if rows:
        total = int(rows[0].total)
    else:  # nothing on this page: count apart
        total = session.scalar(select(func.count()).select_from(matching.subquery())) or 0
    shown = ids[:limit]
    found = {
        item.id: item
        for item in metric_items(session, workspace_id=workspace_id, now=now, metric_ids=shown)
    }
    return MetricPage(
        items=[found[i] for i in shown if i in found],
        next_cursor=encode_cursor(shown[-1]) if len(ids) > limit else None,
        total=total,
    )


# A breakdown value's metric is listed right after the metric it splits.
_PARENT = aliased(Metric, name="parent")


def _family_order() -> tuple[ColumnElement[str], ...]:
    """The list's order of a metric row (its parent joined as `_PARENT`): by source, then
    kind and name, a breakdown value's metric by its parent's and then by its own name."""
    return (
        Source.name.label("source_name"),
        func.coalesce(_PARENT.kind, Metric.kind).label("kind"),
        func.coalesce(_PARENT.name, Metric.name).label("metric_name"),
        case((Metric.parent_id.is_(None), literal("")), else_=Metric.name).label("value_name"),
    )


def _matching(
    *, workspace_id: int, now: datetime, source_id: int | None, status: Status | None, q: str | None
) -> Select[tuple[int]]:
    """The ids of the workspace's metrics that pass the filters, unordered."""
    query = (
        select(Metric.id)
        .join(Source, Source.id == Metric.source_id)
        .outerjoin(MetricWatch, MetricWatch.metric_id == Metric.id)
        .where(Source.workspace_id == workspace_id)
    )
    if source_id is not None:
        query = query.where(Metric.source_id == source_id)
    needle = q.strip().lower() if q else ""
    if needle:
        query = query.where(
            or_(
                text_lower(_label()).contains(needle, autoescape=True),
                text_lower(Source.name).contains(needle, autoescape=True),
            )
        )
    if status is not None:
        query = query.where(_has_status(status, now))
    return query


def _label() -> ColumnElement[str]:
    """`display_name` of the metric row, in SQL."""
    suffix = case(
        *((Metric.kind == kind.value, words) for kind, words in NAME_SUFFIX.items()),
        else_=Metric.kind,
    )
    before, after = TOTAL_WORDS
    return case(
        (Metric.kind.in_([MetricKind.TRACK.value, MetricKind.BREAKDOWN.value]), Metric.name),
        (
            and_(Metric.kind == MetricKind.TOTAL.value, Metric.name == "identify"),
            literal(IDENTIFY_VOLUME),
        ),
        (Metric.kind == MetricKind.TOTAL.value, literal(before) + Metric.name + literal(after)),
        (Metric.kind == MetricKind.OVERFLOW.value, literal(OVER_THE_CAP)),
        else_=Metric.name + literal(" (") + suffix + literal(")"),
    )


def _has_status(status: Status, now: datetime) -> ColumnElement[bool]:
    """`metric_status(...) == status` of the metric row, in SQL."""
    # metric_status counts whole seconds of training left: a metric first seen at hour h
    # trains while h * 3600 s + TRAINING_DAYS - now is at least one second.
    micros = (now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    hour_us, training_us = 3_600_000_000, TRAINING_DAYS * 86_400_000_000
    trains_from = -((training_us - 1_000_000 - micros) // hour_us)  # ceil division
    # trained: its first hour is before that (a metric without buckets trains)
    trained = func.coalesce(Metric.first_hour < trains_from, false())
    if status == "training":
        return ~trained
    muted = func.coalesce(MetricWatch.muted, false())
    snoozed = and_(MetricWatch.snoozed_until.is_not(None), MetricWatch.snoozed_until > now)
    if status == "muted":
        return and_(trained, muted.is_(True))
    if status == "snoozed":
        return and_(trained, muted.is_(False), snoozed)
    return and_(trained, muted.is_(False), ~snoozed)


def _hourly(held: Measure, count: int | None, total: float | None) -> float | None:
    """What buckets summed over some hours say: events, the sum, or the average (None if none)."""
    if held == "count":
        return float(count or 0)
    if held == "sum":
        return float(total or 0.0)
    return float(total or 0.0) / float(count) if count else None  # sum() is a Decimal on PG


def get_metric_item(
    session: Session, *, workspace_id: int, metric_id: int, now: datetime
) -> MetricItem:
    """One of a workspace's metrics, or NotFound."""
    found = metric_items(session, workspace_id=workspace_id, now=now, metric_ids=[metric_id])
    if not found:
        raise NotFound(f"no metric {metric_id} in this workspace")
    raised = feedback_raised(session, [metric_id]).get(metric_id, ())
    return replace(found[0], feedback=dict(raised))


def reset_feedback(
    session: Session, *, workspace_id: int, metric_id: int, now: datetime
) -> MetricItem:
    """Forget the team's "useful" / "not useful" on the metric's insights: its bars go
    back to the workspace's setting at the next hourly pass."""
    get_metric_item(session, workspace_id=workspace_id, metric_id=metric_id, now=now)
    session.execute(
        update(Insight)
        .where(Insight.metric_id == metric_id, Insight.useful.is_not(None))
        .values(useful=None, feedback_at=None)
    )
    session.flush()
    return get_metric_item(session, workspace_id=workspace_id, metric_id=metric_id, now=now)


def watch_metric(
    session: Session,
    *,
    workspace_id: int,
    metric_id: int,
    muted: bool | None,
    snoozed_until: datetime | None,
    now: datetime,
    keep_snooze: bool = False,
) -> MetricItem:
    """Mute or unmute a metric and set or clear its snooze; its insights still open.

    `muted=None` leaves the mute as it is; `keep_snooze` leaves the snooze as it is.
    """
    get_metric_item(session, workspace_id=workspace_id, metric_id=metric_id, now=now)
    if snoozed_until is not None and snoozed_until <= now:
        raise Invalid("snoozed_until is in the past: send a future time, or null to stop snoozing")
    # The hourly pass creates watch rows too: never race it into a duplicate key.
    session.execute(
        insert_for(session.connection(), MetricWatch)
        .values(metric_id=metric_id, muted=False)
        .on_conflict_do_nothing()
    )
    watch = session.get(MetricWatch, metric_id, populate_existing=True)
    assert watch is not None
    if muted is not None:
        watch.muted = muted
    if not keep_snooze:
        watch.snoozed_until = snoozed_until
    session.flush()
    return get_metric_item(session, workspace_id=workspace_id, metric_id=metric_id, now=now)


def set_owner(
    session: Session,
    *,
    workspace_id: int,
    metric_id: int,
    owner: str | None,
    note: str | None,
    now: datetime,
) -> MetricItem:
    """Who the metric's alerts mention (a Slack user or group id) and what they say to check."""
    get_metric_item(session, workspace_id=workspace_id, metric_id=metric_id, now=now)
    metric = session.get(Metric, metric_id)
    assert metric is not None
    metric.owner = owner or None
    metric.note = (note or "").strip() or None
    session.flush()
    return get_metric_item(session, workspace_id=workspace_id, metric_id=metric_id, now=now)


def training_ends(first_hour: datetime | None) -> datetime | None:
    """When a metric first seen at `first_hour` has finished training."""
    return None if first_hour is None else first_hour + timedelta(days=TRAINING_DAYS)
