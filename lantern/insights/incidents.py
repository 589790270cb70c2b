"""Source-wide incidents: a story going down that covers most of its source's metrics.

When a pipeline breaks, a key expires or a holiday empties the site, most of a source's
metrics go down (or quiet) together. The hourly pass already groups the insights of one
source opened together into one story (`service.group_and_alert`: a leader, the others
pointing at it). A story going down is a **source-wide incident** when its metrics are at
least INCIDENT_SHARE of the source's active metrics (trained, with events in the day before
the story began) and at least INCIDENT_MIN_METRICS of them. It is computed on read, from
the story as it stands: its alert says so and lists the metrics, the newsfeed and the
insight's page say the same, and its end is told once, when every metric of the story is
over (`service.queue_story_ends`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import distinct, func, or_, select
from sqlalchemy.orm import Session

from lantern.insights.models import Insight
from lantern.metrics.keys import MetricKind, display_name
from lantern.metrics.models import Bucket, Metric
from lantern.metrics.service import epoch_hour

INCIDENT_MIN_METRICS = 3
INCIDENT_SHARE = 0.5
# A metric is active when it had events in this window before the story began.
ACTIVE_WINDOW = timedelta(hours=24)
# Only a trained metric can be told going down (`pipeline.TRAINING_HOURS`).
TRAINED_HOURS = 7 * 24
ENDED = ("resolved", "accepted")
# While an incident goes on, its metrics' drops are not adopted as their new normal
# (`holding_metrics`); one that lasts longer than this is a new normal after all.
INCIDENT_HOLD = timedelta(days=3)
QUESTION = "a broken pipeline, an expired key or a holiday?"


@dataclass(frozen=True, slots=True)
class Incident:
    """A story that is a source-wide incident: its metrics, out of the source's active ones."""

    source_name: str
    metrics: int  # distinct metrics of the story
    of: int  # the source's active metrics when the story began
    since: datetime  # the earliest start of the story's insights
    names: tuple[str, ...]  # the story's metrics, as a person reads them, leader first
    ended_at: datetime | None  # when its last metric was over; None while one still is not
    accepted: int  # metrics whose drop was accepted as their new normal

    @property
    def scope(self) -> str:
        return "source"

    @property
    def text(self) -> str:
        """One line: "web: 14 of 16 metrics went down or quiet together since 10:00 UTC"."""
        return f"{self.headline} since {self.since:%H:%M} UTC — {QUESTION}"

    @property
    def headline(self) -> str:
        """ "web: 14 of 16 metrics went down or quiet together"."""
        return (
            f"{self.source_name}: {self.metrics} of {self.of} metrics went down or quiet together"
        )

    def as_dict(self) -> dict[str, object]:
        """What the API shows of it."""
        return {
            "scope": self.scope,
            "metrics": self.metrics,
            "of": self.of,
            "since": self.since,
            "ended_at": self.ended_at,
            "text": self.text,
        }


def is_incident(metrics: int, of: int) -> bool:
    """Most of the source's active metrics, and enough of them to be more than a neighbourhood."""
    return metrics >= INCIDENT_MIN_METRICS and metrics >= INCIDENT_SHARE * of


def active_metrics(session: Session, *, source_id: int, before: datetime) -> int:
    """The source's trained metrics with events in the day before `before` (not counting
    the metrics of breakdown values: their events are their parents')."""
    hour = epoch_hour(before)
    first = hour - int(ACTIVE_WINDOW.total_seconds() // 3600)
    return int(
        session.scalar(
            select(func.count(distinct(Bucket.metric_id)))
            .join(Metric, Metric.id == Bucket.metric_id)
            .where(
                Metric.source_id == source_id,
                Metric.kind != MetricKind.BREAKDOWN,
                Metric.first_hour <= first - TRAINED_HOURS,
                Bucket.hour >= first,
                Bucket.hour < hour,
                Bucket.count > 0,
            )
        )
        or 0
    )


def story_incident(session: Session, leader: Insight) -> Incident | None:
    """The incident the story led by `leader` is, or None (not a leader, up, or too few)."""
    if leader.parent_id is not None or leader.direction != "down":
        return None
    from lantern.workspaces.models import Source

    rows = list(
        session.execute(
            select(Insight, Metric.kind, Metric.name, Metric.source_id, Source.name)
            .join(Metric, Metric.id == Insight.metric_id)
            .join(Source, Source.id == Metric.source_id)
            .where(or_(Insight.id == leader.id, Insight.parent_id == leader.id))
            .order_by(Insight.id)
        ).all()
    )
    if not rows:
        return None
    rows.sort(key=lambda row: row[0].id != leader.id)  # the leader first
    # a breakdown value's metric moves with its parent: it is no metric more of the source
    metric_ids = {row[0].metric_id for row in rows if row[1] != MetricKind.BREAKDOWN}
    if len(metric_ids) < INCIDENT_MIN_METRICS:
        return None
    since = min(row[0].start for row in rows)
    source_id, source_name = rows[0][3], rows[0][4]
    of = max(active_metrics(session, source_id=source_id, before=since), len(metric_ids))
    if not is_incident(len(metric_ids), of):
        return None
    names: list[str] = []
    seen: set[int] = set()
    for insight, kind, name, _, _ in rows:
        if kind != MetricKind.BREAKDOWN and insight.metric_id not in seen:
            seen.add(insight.metric_id)
            names.append(display_name(kind, name))
    ended = [
        row[0].ended_at for row in rows if row[0].status in ENDED and row[0].ended_at is not None
    ]
    last = max(ended) if len(ended) == len(rows) else None
    accepted = len({row[0].metric_id for row in rows if row[0].status == "accepted"} & metric_ids)
    return Incident(
        source_name=source_name,
        metrics=len(metric_ids),
        of=of,
        since=since,
        names=tuple(names),
        ended_at=last,
        accepted=accepted,
    )


def holding_metrics(session: Session, *, at: datetime) -> set[int]:
    """The metrics whose open episode belongs to a source-wide incident still going on at
    `at`, begun less than INCIDENT_HOLD before it: the hourly pass holds their new normal.

    A day the whole source is low (a holiday, a broken pipeline) is then no new level: each
    metric's drop ends when it is back, and the model learns nothing from it.
    """
    rows = session.execute(
        select(Insight.metric_id, func.coalesce(Insight.parent_id, Insight.id))
        .where(
            Insight.status.in_(("open", "updated")),
            Insight.direction == "down",
            Insight.start >= at - INCIDENT_HOLD,
        )
        .order_by(Insight.id)
    ).all()
    stories: dict[int, set[int]] = {}
    for metric_id, leader_id in rows:
        stories.setdefault(int(leader_id), set()).add(int(metric_id))
    held: set[int] = set()
    for leader_id, metric_ids in stories.items():
        leader = session.get(Insight, leader_id)
        if leader is None:
            continue
        incident = story_incident(session, leader)
        if (
            incident is not None
            and incident.ended_at is None
            and at - incident.since < INCIDENT_HOLD
        ):
            held |= metric_ids
    return held
