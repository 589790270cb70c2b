"""Stories that go down with a source-wide incident of their workspace join it.

The hourly pass records a workspace's sources, then groups the insights each opened into
stories (`service.group_and_alert`); `join_workspace_incidents` then makes the stories
just formed one incident with each other, or with a story of the workspace already told,
where the rule of what an incident is (`incidents.story_incident`) says they are one: a
workspace's day told once, whichever of its metrics went down first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from lantern.insights.incidents import STORY_WINDOW, Incident, story_incident
from lantern.insights.models import Insight
from lantern.notify.models import Notification


def join_workspace_incidents(
    session: Session, leaders: Sequence[Insight], *, detected_at: datetime
) -> list[Insight]:
    """Make the stories just formed at `detected_at` (their `leaders`, members already
    pointing at them) that go down with a source-wide incident of their workspace one
    incident; returns the leaders still owed an alert.

    When some of a workspace's new stories going down are incidents, they join the story of
    the workspace already told (its alert out or held as history), still going on, begun
    within STORY_WINDOW of theirs: its incident if it has one, else the earliest story that
    is one with them (a source's busiest metric, told alone an hour before the rest of the
    workspace went quiet). Else, when there are two or more, the largest source's (most
    active metrics, then most metrics down) leads and the others' insights point at its
    leader. The workspace's other new stories going down, no incident of their own (two of
    a source's five metrics), join it too when it is still one with them
    (`story_incident`): a workspace told one day once, whichever metric went down first.
    """
    found: dict[int, list[tuple[Insight, Incident | None]]] = {}
    for leader in leaders:
        if leader.direction == "down":
            found.setdefault(leader.workspace_id, []).append(
                (leader, story_incident(session, leader))
            )
    joined: set[int] = set()
    for workspace_id, stories in found.items():
        incidents = [leader for leader, incident in stories if incident is not None]
        rest = [leader for leader, incident in stories if incident is None]
        new_ids = {leader.id for leader, _ in stories}
        # the new incidents' start; without any, the other new stories' (they may join one told)
        since = min(
            [incident.since for _, incident in stories if incident is not None]
            or [_story_since(session, leader) for leader in rest]
        )
        told = _told_stories(
            session,
            workspace_id=workspace_id,
            since=since,
            detected_at=detected_at,
            not_ids=new_ids,
        )
        target = next((leader for leader, incident in told if incident is not None), None)
        if target is None and incidents:
            smaller = [leader for leader, incident in told if incident is None]
            target = _smaller_joined(session, smaller, incidents)
        if target is None:
            if not incidents or (len(incidents) < 2 and not rest):
                continue
            target = max(
                ((leader, incident) for leader, incident in stories if incident is not None),
                key=lambda pair: (pair[1].of, pair[1].metrics, -pair[0].id),
            )[0]
        for leader in incidents:
            if leader is not target:
                if leader.parent_id is None:
                    _hang(session, leader, under=target)
                joined.add(leader.id)
        target_since = _story_since(session, target)
        for leader in rest:
            if abs(_story_since(session, leader) - target_since) > STORY_WINDOW:
                continue
            if _hang_if_incident(session, [leader], under=target):
                joined.add(leader.id)
    session.flush()
    return [leader for leader in leaders if leader.id not in joined]


def _story(session: Session, leader: Insight) -> list[Insight]:
    """The story's insights, its leader first."""
    members = session.scalars(
        select(Insight).where(Insight.parent_id == leader.id).order_by(Insight.id)
    ).all()
    return [leader, *members]


def _hang(session: Session, leader: Insight, *, under: Insight) -> None:
    """The story led by `leader` follows `under`'s: each of its insights points at it."""
    for insight in _story(session, leader):
        insight.parent_id = under.id


def _hang_if_incident(session: Session, leaders: Sequence[Insight], *, under: Insight) -> bool:
    """Hang the stories of `leaders` under `under`'s if, with them, it is an incident
    (`story_incident`, the one rule, read as the story then stands); else leave all as it was."""
    moved = [
        (insight, insight.parent_id) for leader in leaders for insight in _story(session, leader)
    ]
    for insight, _ in moved:
        insight.parent_id = under.id
    session.flush()
    if story_incident(session, under) is not None:
        return True
    for insight, parent_id in moved:
        insight.parent_id = parent_id
    session.flush()
    return False


def _story_since(session: Session, leader: Insight) -> datetime:
    """The earliest start of the story's insights."""
    since = session.scalar(
        select(func.min(Insight.start)).where(
            or_(Insight.id == leader.id, Insight.parent_id == leader.id)
        )
    )
    return since if since is not None else leader.start


def _told_stories(
    session: Session,
    *,
    workspace_id: int,
    since: datetime,
    detected_at: datetime,
    not_ids: set[int],
) -> list[tuple[Insight, Incident | None]]:
    """The workspace's stories going down whose alert is out (or held as history), their end
    not queued, begun within STORY_WINDOW of `since`, the earliest told first, each with its
    incident (None for a smaller story); an incident is listed only while it goes on."""
    told = (
        select(Notification.id)
        .where(Notification.insight_id == Insight.id, Notification.purpose == "alert")
        .exists()
    )
    over = (
        select(Notification.id)
        .where(Notification.insight_id == Insight.id, Notification.purpose == "resolution")
        .exists()
    )
    leaders = session.scalars(
        select(Insight)
        .where(
            Insight.workspace_id == workspace_id,
            Insight.parent_id.is_(None),
            Insight.direction == "down",
            Insight.detected_at <= detected_at,
            # a story's members start within STORY_WINDOW of its leader
            Insight.start >= since - 2 * STORY_WINDOW,
            Insight.start <= since + 2 * STORY_WINDOW,
            Insight.id.not_in(not_ids),
            told,
            ~over,
        )
        .order_by(Insight.detected_at, Insight.id)
    ).all()
    found: list[tuple[Insight, Incident | None]] = []
    for leader in leaders:
        incident = story_incident(session, leader)
        if incident is None:
            if abs(_story_since(session, leader) - since) <= STORY_WINDOW:
                found.append((leader, None))
        elif incident.ended_at is None and abs(incident.since - since) <= STORY_WINDOW:
            found.append((leader, incident))
    return found


def _smaller_joined(
    session: Session, told: Sequence[Insight], incidents: Sequence[Insight]
) -> Insight | None:
    """The earliest of the `told` stories, no incident, that the new `incidents` make one
    with them (they are then hung under it): its alert posted on its own (not held for the
    digest, nor history) and a metric of it still going on; None if there is none."""
    for leader in told:
        alert = session.scalar(
            select(Notification.status)
            .where(Notification.insight_id == leader.id, Notification.purpose == "alert")
            .limit(1)
        )
        if alert in ("skipped", "digest") or not _going_on(session, leader):
            continue
        if _hang_if_incident(session, incidents, under=leader):
            return leader
    return None


def _going_on(session: Session, leader: Insight) -> bool:
    """Whether an insight of the story is still open."""
    return (
        session.scalar(
            select(Insight.id)
            .where(
                or_(Insight.id == leader.id, Insight.parent_id == leader.id),
                Insight.status.in_(("open", "updated")),
            )
            .limit(1)
        )
        is not None
    )
