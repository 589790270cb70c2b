"""Source-wide and workspace-wide incidents: stories going down that cover most metrics.

When a pipeline breaks, a key expires or a holiday empties the site, most of a source's
metrics go down (or quiet) together. The hourly pass already groups the insights of one
source opened together into one story (`service.group_and_alert`: a leader, the others
pointing at it). A story going down is a **source-wide incident** when its metrics are at
least INCIDENT_SHARE of the source's active metrics (trained, with events in the day before
the story began) and at least INCIDENT_MIN_METRICS of them.

When two or more sources of one workspace go down together (in the same hour, or one
within STORY_WINDOW of the other's start) and one of them at least is such an incident,
they are one **workspace-wide incident** (`join_workspace_incidents`) as long as, together,
they still cover most of their sources' active metrics: the story told first leads (else
the largest source's), and the others' insights point at its leader, as any follower does.
An incident is computed on read, from the story as it stands: its alert says so and lists
the metrics source by source, the newsfeed and the insight's page say the same, and its
end is told once, when every metric of every source in it is over
(`service.queue_story_ends`). A story told before it was one (a source's busiest metric,
told alone an hour before the rest went quiet) is told so once, in its alert's thread
(`service.group_and_alert`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import distinct, func, or_, select
from sqlalchemy.orm import Session

from lantern.insights.models import Insight
from lantern.metrics.keys import MetricKind, display_name
from lantern.metrics.models import Bucket, Metric
from lantern.metrics.service import epoch_hour
from lantern.workspaces.models import Source, Workspace

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
# Episodes starting this close together are taken for one story: a source's insights that
# open within it of an earlier story's start follow that story (`service._earlier_story`),
# and a source's incident that starts within it of another source's joins that incident.
STORY_WINDOW = timedelta(hours=3)
QUESTION = "a broken pipeline, an expired key or a holiday?"


@dataclass(frozen=True, slots=True)
class SourcePart:
    """One source's share of an incident: its metrics in the story, of its active ones."""

    source_id: int
    source_name: str
    metrics: int  # distinct metrics of the source in the story
    of: int  # the source's active metrics when its part began
    names: tuple[str, ...]  # its metrics, as a person reads them, the leader's first


@dataclass(frozen=True, slots=True)
class Incident:
    """A story that is a source-wide incident, or a workspace-wide one (several sources).

    `metrics` and `of` add up its sources' parts; `parts` has one per source, the
    leader's first, then the larger ones.
    """

    source_name: str  # the leader's source
    metrics: int  # distinct metrics of the story
    of: int  # its sources' active metrics when the story began
    since: datetime  # the earliest start of the story's insights
    names: tuple[str, ...]  # the story's metrics, as a person reads them, leader first
    ended_at: datetime | None  # when its last metric was over; None while one still is not
    accepted: int  # metrics whose drop was accepted as their new normal
    parts: tuple[SourcePart, ...]
    workspace_name: str
    # the workspace's sources that had active metrics when it began (at least those in it)
    workspace_sources: int

    @property
    def scope(self) -> str:
        """ "source" for one source's incident, "workspace" for several sources'."""
        return "workspace" if len(self.parts) > 1 else "source"

    @property
    def who(self) -> str:
        """What went down: "web", "web, ios", or "All 3 sources of workspace demo"."""
        if self.scope == "source":
            return self.source_name
        if len(self.parts) >= self.workspace_sources:
            every = "Both" if len(self.parts) == 2 else f"All {len(self.parts)}"
            return f"{every} sources of workspace {self.workspace_name}"
        return ", ".join(part.source_name for part in self.parts)

    @property
    def text(self) -> str:
        """One line: "web: 14 of 16 metrics went down or quiet together since 10:00 UTC"."""
        return f"{self.headline} since {self.since:%H:%M} UTC — {QUESTION}"

    @property
    def headline(self) -> str:
        """ "web: 14 of 16 metrics went down or quiet together"."""
        return f"{self.who}: {self.metrics} of {self.of} metrics went down or quiet together"

    def as_dict(self) -> dict[str, object]:
        """What the API shows of it."""
        return {
            "scope": self.scope,
            "metrics": self.metrics,
            "of": self.of,
            "since": self.since,
            "ended_at": self.ended_at,
            "text": self.text,
            "sources": [
                {
                    "source_id": part.source_id,
                    "source_name": part.source_name,
                    "metrics": part.metrics,
                    "of": part.of,
                }
                for part in self.parts
            ],
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


def sending_sources(session: Session, *, workspace_id: int, before: datetime) -> set[int]:
    """The workspace's sources with active metrics (`active_metrics`) before `before`."""
    hour = epoch_hour(before)
    first = hour - int(ACTIVE_WINDOW.total_seconds() // 3600)
    return {
        int(source_id)
        for source_id in session.scalars(
            select(distinct(Metric.source_id))
            .join(Bucket, Bucket.metric_id == Metric.id)
            .join(Source, Source.id == Metric.source_id)
            .where(
                Source.workspace_id == workspace_id,
                Metric.first_hour <= first - TRAINED_HOURS,
                Bucket.hour >= first,
                Bucket.hour < hour,
                Bucket.count > 0,
            )
        )
    }


def story_incident(
    session: Session, leader: Insight, *, before: datetime | None = None
) -> Incident | None:
    """The incident the story led by `leader` is, or None (not a leader, up, or too few);
    with `before`, the story as it stood before the insights detected from then on.

    The story's insights are taken source by source. It is an incident when one of its
    sources at least is a source-wide incident on its own (`is_incident`) and, together,
    its sources' metrics in it are still most of their active metrics: the other sources'
    insights are there because they went down with it (`join_workspace_incidents`), or as
    a source's late followers.
    """
    if leader.parent_id is not None or leader.direction != "down":
        return None
    query = (
        select(Insight, Metric.kind, Metric.name, Metric.source_id, Source.name)
        .join(Metric, Metric.id == Insight.metric_id)
        .join(Source, Source.id == Metric.source_id)
        .where(or_(Insight.id == leader.id, Insight.parent_id == leader.id))
        .order_by(Insight.id)
    )
    if before is not None:
        query = query.where(Insight.detected_at < before)
    rows = list(session.execute(query).all())
    rows.sort(key=lambda row: row[0].id != leader.id)  # the leader first
    if not rows or rows[0][0].id != leader.id:
        return None
    # a breakdown value's metric moves with its parent: it is no metric more of the source
    metric_ids = {row[0].metric_id for row in rows if row[1] != MetricKind.BREAKDOWN}
    if len(metric_ids) < INCIDENT_MIN_METRICS:
        return None
    by_source: dict[int, list[Any]] = {}
    for row in rows:
        by_source.setdefault(row[3], []).append(row)
    lead, *others = [_part(session, members) for members in by_source.values()]
    parts = (lead, *sorted(others, key=lambda part: (-part.metrics, part.source_name)))
    of = sum(part.of for part in parts)
    if not any(is_incident(part.metrics, part.of) for part in parts):
        return None
    if not is_incident(len(metric_ids), of):
        return None
    since = min(row[0].start for row in rows)
    ended = [
        row[0].ended_at for row in rows if row[0].status in ENDED and row[0].ended_at is not None
    ]
    workspace_name, sending = "", 1
    if others:
        workspace = session.get(Workspace, leader.workspace_id)
        workspace_name = workspace.name if workspace is not None else ""
        sending = len(
            sending_sources(session, workspace_id=leader.workspace_id, before=since)
            | {part.source_id for part in parts}
        )
    return Incident(
        source_name=lead.source_name,
        metrics=len(metric_ids),
        of=of,
        since=since,
        names=tuple(name for part in parts for name in part.names),
        ended_at=max(ended) if len(ended) == len(rows) else None,
        accepted=len(
            {row[0].metric_id for row in rows if row[0].status == "accepted"} & metric_ids
        ),
        parts=parts,
        workspace_name=workspace_name,
        workspace_sources=sending,
    )


def _part(session: Session, rows: Sequence[Any]) -> SourcePart:
    """One source's rows of a story (Insight, metric kind, metric name, source id and name)
    as its part: its metrics, of its active ones before its earliest start."""
    source_id, source_name = rows[0][3], rows[0][4]
    names: list[str] = []
    seen: set[int] = set()
    for insight, kind, name, _, _ in rows:
        if kind != MetricKind.BREAKDOWN and insight.metric_id not in seen:
            seen.add(insight.metric_id)
            names.append(display_name(kind, name))
    since = min(row[0].start for row in rows)
    of = max(active_metrics(session, source_id=source_id, before=since), len(seen))
    return SourcePart(
        source_id=source_id, source_name=source_name, metrics=len(seen), of=of, names=tuple(names)
    )


def holding_metrics(session: Session, *, at: datetime) -> set[int]:
    """The metrics whose open episode belongs to an incident (source- or workspace-wide)
    still going on at `at`, begun less than INCIDENT_HOLD before it: the hourly pass holds
    their new normal.

    A day the whole source, or the whole workspace, is low (a holiday, a broken pipeline) is
    then no new level: each metric's drop ends when it is back, whichever source it is of,
    and the model learns nothing from it.
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
