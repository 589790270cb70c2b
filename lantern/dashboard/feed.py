"""The newsfeed of insights: paged listing, one insight in full, and feedback on them."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from lantern.dashboard.status import MetricItem, get_metric_item, watch_metric
from lantern.detect.kinds import KINDS, label
from lantern.errors import Invalid, NotFound
from lantern.insights.incidents import INCIDENT_MIN_METRICS, story_incident
from lantern.insights.models import Insight
from lantern.insights.service import insight_causes
from lantern.insights.tracking import shown
from lantern.insights.words import in_words
from lantern.metrics.keys import display_name, measure
from lantern.metrics.models import Metric
from lantern.notify.models import Notification
from lantern.workspaces.models import Source
from lantern.workspaces.service import get_source

InsightStatus = Literal["open", "updated", "resolved", "accepted"]
INSIGHT_STATUSES: tuple[InsightStatus, ...] = ("open", "updated", "resolved", "accepted")


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def _summary_query() -> Any:
    child = aliased(Insight)
    related = (
        select(func.count()).select_from(child).where(child.parent_id == Insight.id)
    ).scalar_subquery()
    return (
        select(Insight, Metric.kind, Metric.name, Metric.source_id, Source.name, related)
        .join(Metric, Metric.id == Insight.metric_id)
        .join(Source, Source.id == Metric.source_id)
    )


def _summary(row: Any, *, has_causes: bool = False) -> dict[str, Any]:
    insight, metric_kind, metric_name, source_id, source_name, related = row
    words = in_words(
        kind=insight.kind,
        direction=insight.direction,
        status=insight.status,
        severity=insight.severity,
        score=insight.score,
        observed=insight.observed,
        lower=insight.lower,
        upper=insight.upper,
        measure=measure(metric_kind),
        start=insight.start,
        detected_at=insight.detected_at,
        has_causes=has_causes,
    )
    return {
        "id": insight.id,
        "metric_id": insight.metric_id,
        "metric_label": display_name(metric_kind, metric_name),
        "source_id": source_id,
        "source_name": source_name,
        "kind": insight.kind,
        "kind_label": label(insight.kind),
        "direction": insight.direction,
        "status": insight.status,
        "severity": insight.severity,
        "start": insight.start,
        "detected_at": insight.detected_at,
        "updated_at": insight.updated_at,
        "ended_at": insight.ended_at,
        "observed": insight.observed,
        "expected": insight.expected,
        "lower": insight.lower,
        "upper": insight.upper,
        "relative_change": insight.relative_change,
        "score": insight.score,
        "useful": insight.useful,
        "related": int(related or 0),
        "tracking_break": None if insight.tracking_break is None else shown(insight.tracking_break),
        "words": words,
        "root_cause": _root_cause(insight.root_cause),
        "incident": None,
    }


def _incident(session: Session, row: Any) -> dict[str, Any] | None:
    """The source-wide incident the row's insight leads, if it does (`insights.incidents`)."""
    insight, related = row[0], row[-1]
    if insight.direction != "down" or int(related or 0) + 1 < INCIDENT_MIN_METRICS:
        return None  # cheap: too small a story to be one
    incident = story_incident(session, insight)
    return incident.as_dict() if incident is not None else None


def _root_cause(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored root cause without its chart (which only the insight's page shows)."""
    if not stored:
        return None
    return {key: value for key, value in stored.items() if key != "chart"}


def root_cause_chart(insight: Insight) -> dict[str, Any] | None:
    """The stored per-value hours of an insight's root cause, as points."""
    chart = (insight.root_cause or {}).get("chart")
    if not chart or not chart.get("values"):
        return None
    first = datetime.fromisoformat(chart["start"])
    hours = len(chart["values"][0]["observed"])
    times = [first + timedelta(hours=h) for h in range(hours)]
    return {
        "start": insight.start,
        "end": times[-1] + timedelta(hours=1),
        "values": [
            {
                "value": series["value"],
                "points": [
                    {"t": t, "observed": seen, "expected": wanted}
                    for t, seen, wanted in zip(
                        times, series["observed"], series["expected"], strict=True
                    )
                ],
            }
            for series in chart["values"]
        ],
    }


def encode_cursor(detected_at: datetime, insight_id: int) -> str:
    """An opaque cursor after the insight (detected_at, id)."""
    raw = f"{detected_at.astimezone(UTC).isoformat()}|{insight_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Inverse of `encode_cursor`; Invalid for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, number = raw.partition("|")
        moment, insight_id = datetime.fromisoformat(at), int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid(
            "cursor: not a cursor this API gave; pass next_cursor back unchanged"
        ) from None
    if moment.tzinfo is None:
        raise Invalid("cursor: not a cursor this API gave; pass next_cursor back unchanged")
    return moment, insight_id


def list_insights(
    session: Session,
    *,
    workspace_id: int,
    status: InsightStatus | None = None,
    kind: str | None = None,
    source_id: int | None = None,
    metric_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """Insights newest first by detection time, a page at a time.

    Only the story leads (insights not grouped under another) unless `metric_id` is
    given, when every insight of that metric is listed. With `source_id`, a workspace-wide
    incident that holds the source's insights is listed too. `since` is inclusive, `until`
    exclusive, both on the detection time.
    """
    query = _summary_query().where(Insight.workspace_id == workspace_id)
    if source_id is not None:
        get_source(session, workspace_id=workspace_id, source_id=source_id)
        query = query.where(or_(Metric.source_id == source_id, _leads_source(source_id)))
    if metric_id is not None:
        _own_metric(session, metric_id, workspace_id)
        query = query.where(Insight.metric_id == metric_id)
    else:
        query = query.where(Insight.parent_id.is_(None))
    if status is not None:
        query = query.where(Insight.status == status)
    if kind is not None:
        query = query.where(Insight.kind == kind)
    if since is not None:
        query = query.where(Insight.detected_at >= since)
    if until is not None:
        query = query.where(Insight.detected_at < until)
    if cursor is not None:
        at, after_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Insight.detected_at < at,
                and_(Insight.detected_at == at, Insight.id < after_id),
            )
        )
    rows = session.execute(
        query.order_by(Insight.detected_at.desc(), Insight.id.desc()).limit(limit + 1)
    ).all()
    items = [{**_summary(row), "incident": _incident(session, row)} for row in rows[:limit]]
    more = len(rows) > limit
    last = items[-1] if items else None
    return Page(
        items=items,
        next_cursor=encode_cursor(last["detected_at"], last["id"]) if more and last else None,
    )


def _leads_source(source_id: int) -> Any:
    """The insight leads a workspace-wide incident that holds insights of the source: the
    incident is the source's news too, though another source's metric leads it."""
    child = aliased(Insight)
    child_metric = aliased(Metric)
    return Insight.id.in_(
        select(child.parent_id)
        .join(child_metric, child_metric.id == child.metric_id)
        .where(
            child_metric.source_id == source_id,
            child.parent_id.is_not(None),
            child.direction == "down",
        )
    )


def _own_metric(session: Session, metric_id: int, workspace_id: int) -> None:
    """NotFound unless the metric is the workspace's (missing or another's: alike)."""
    found = session.scalar(
        select(Metric.id)
        .join(Source, Source.id == Metric.source_id)
        .where(Metric.id == metric_id, Source.workspace_id == workspace_id)
    )
    if found is None:
        raise NotFound(f"no metric {metric_id} in this workspace")


def get_insight(session: Session, *, workspace_id: int, insight_id: int) -> Insight:
    """A workspace's insight by id, or NotFound."""
    insight = session.get(Insight, insight_id)
    if insight is None or insight.workspace_id != workspace_id:
        raise NotFound(f"no insight {insight_id} in this workspace")
    return insight


def insight_detail(
    session: Session, *, workspace_id: int, insight_id: int, now: datetime
) -> dict[str, Any]:
    """An insight in full: its summary, possible causes, grouped insights, notifications."""
    insight = get_insight(session, workspace_id=workspace_id, insight_id=insight_id)
    row = session.execute(_summary_query().where(Insight.id == insight.id)).one()
    causes = insight_causes(session, insight_id=insight.id)
    children = session.execute(
        _summary_query()
        .where(Insight.parent_id == insight.id, Insight.workspace_id == workspace_id)
        .order_by(Insight.detected_at, Insight.id)
    ).all()
    notifications = session.execute(
        select(Notification.purpose, Notification.status, Notification.error, Notification.sent_at)
        .where(Notification.insight_id == insight.id)
        .order_by(Notification.id)
    ).all()
    metric: MetricItem = get_metric_item(
        session, workspace_id=workspace_id, metric_id=insight.metric_id, now=now
    )
    return {
        **_summary(row, has_causes=bool(causes)),
        "incident": _incident(session, row),
        "causes": [
            {"flag_key": k, "old_version": old, "new_version": new, "changed_at": at}
            for k, old, new, at in causes
        ],
        "related": [_summary(child) for child in children],
        "notifications": [
            {"purpose": p, "status": s, "error": e, "sent_at": at} for p, s, e, at in notifications
        ],
        "metric": metric,
        "root_cause_chart": root_cause_chart(insight),
    }


def give_feedback(
    session: Session, *, workspace_id: int, insight_id: int, useful: bool, now: datetime
) -> dict[str, Any]:
    """Record whether an insight was useful (the latest answer counts)."""
    insight = get_insight(session, workspace_id=workspace_id, insight_id=insight_id)
    insight.useful, insight.feedback_at = useful, now
    session.flush()
    return insight_detail(session, workspace_id=workspace_id, insight_id=insight_id, now=now)


def silence_metric_of(
    session: Session, *, workspace_id: int, insight_id: int, until: datetime | None, now: datetime
) -> MetricItem:
    """Mute the insight's metric (`until` None) or snooze it until `until`."""
    insight = get_insight(session, workspace_id=workspace_id, insight_id=insight_id)
    return watch_metric(
        session,
        workspace_id=workspace_id,
        metric_id=insight.metric_id,
        muted=True if until is None else None,
        snoozed_until=until,
        keep_snooze=until is None,
        now=now,
    )


def feedback_by_kind(session: Session, *, workspace_id: int) -> list[dict[str, Any]]:
    """For each detector kind, how many of its insights were found useful and not useful."""
    rows = session.execute(
        select(Insight.kind, Insight.useful, func.count())
        .where(Insight.workspace_id == workspace_id, Insight.useful.is_not(None))
        .group_by(Insight.kind, Insight.useful)
    ).all()
    counts: dict[str, dict[str, int]] = {kind: {"useful": 0, "not_useful": 0} for kind in KINDS}
    for kind, useful, count in rows:
        entry = counts.setdefault(kind, {"useful": 0, "not_useful": 0})
        entry["useful" if useful else "not_useful"] += int(count)
    return [{"kind": kind, "kind_label": label(kind), **entry} for kind, entry in counts.items()]
