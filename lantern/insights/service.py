"""Detections become insights: one per episode, with causes, a life cycle and notifications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased

from lantern.breakdowns.read import root_cause_of
from lantern.detect import feedback_bar
from lantern.detect.kinds import DetectionKind
from lantern.insights.incidents import ENDED, STORY_WINDOW, story_incident
from lantern.insights.joining import join_workspace_incidents
from lantern.insights.models import Insight, InsightCause, MetricWatch
from lantern.insights.tracking import find_tracking_break
from lantern.metrics.models import FlagChange
from lantern.notify.models import Notification

# A flag change this long before an episode's start may have caused it.
CAUSE_WINDOW = timedelta(hours=6)
SEVERITIES = ("low", "medium", "high")


class DetectionLike(Protocol):
    """What an episode event's detection tells (read only: detection's results are frozen)."""

    @property
    def kind(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def start(self) -> Any: ...
    @property
    def detected_at(self) -> Any: ...
    @property
    def observed(self) -> float: ...
    @property
    def expected(self) -> float: ...
    @property
    def lower(self) -> float: ...
    @property
    def upper(self) -> float: ...
    @property
    def relative_change(self) -> float: ...
    @property
    def score(self) -> float: ...


class EpisodeEventLike(Protocol):
    """An episode's change of status at an hour, with the detection behind it."""

    @property
    def status(self) -> str: ...
    @property
    def detection(self) -> DetectionLike: ...


@dataclass(frozen=True, slots=True)
class MetricRef:
    """The metric an episode belongs to."""

    id: int
    source_id: int
    workspace_id: int


def fingerprint(metric_id: int, kind: str, direction: str) -> str:
    """What makes two detections the same episode's: metric, kind and direction."""
    return f"{metric_id}:{kind}:{direction}"


def detected_kind(key: str) -> str:
    """The kind the detector found, from an insight's fingerprint."""
    return key.split(":")[1]


def severity(kind: str, relative_change: float) -> str:
    """How loud an episode is: outages are high; otherwise by the size of the change."""
    size = abs(relative_change)
    if kind == "outage" or size >= 0.5:
        return "high"
    if size >= 0.2:
        return "medium"
    return "low"


def is_silenced(watch: MetricWatch | None, now: datetime) -> bool:
    """Muted, or snoozed until after `now`: scored, but nobody is told."""
    if watch is None:
        return False
    return watch.muted or (watch.snoozed_until is not None and watch.snoozed_until > now)


def _queue(session: Session, insight: Insight, purpose: str, now: datetime) -> Notification:
    sequence = (
        session.scalar(
            select(Notification.sequence)
            .where(Notification.insight_id == insight.id, Notification.purpose == purpose)
            .order_by(Notification.sequence.desc())
            .limit(1)
        )
        or 0
    )
    row = Notification(
        workspace_id=insight.workspace_id,
        insight_id=insight.id,
        purpose=purpose,
        sequence=sequence + 1,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    return row


def _open_insight(
    session: Session,
    metric_id: int,
    key: str,
    direction: str,
    statuses: tuple[str, ...] = ("open", "updated"),
) -> Insight | None:
    """The open insight an episode's later event is about (or, with ``statuses``, the one
    in those statuses).

    Its fingerprint's, or else the metric's newest one in that direction: a metric has one
    episode at a time, and a drop that lasts is followed on as a level shift, so its
    update, end or acceptance names a kind other than the one it opened with.
    """
    newest = (
        select(Insight)
        .where(Insight.metric_id == metric_id, Insight.status.in_(statuses))
        .order_by(Insight.id.desc())
        .limit(1)
    )
    found = session.scalar(newest.where(Insight.fingerprint == key))
    if found is not None:
        return found
    return session.scalar(newest.where(Insight.direction == direction))


def _attach_causes(session: Session, insight: Insight, source_id: int) -> None:
    changes = session.scalars(
        select(FlagChange.id).where(
            FlagChange.source_id == source_id,
            FlagChange.changed_at >= insight.start - CAUSE_WINDOW,
            FlagChange.changed_at <= insight.detected_at + timedelta(hours=1),
        )
    ).all()
    for change_id in changes:
        session.add(InsightCause(insight_id=insight.id, flag_change_id=change_id))


def record_events(
    session: Session,
    *,
    metric: MetricRef,
    events: list[EpisodeEventLike],
    watch: MetricWatch | None,
    now: datetime,
    queue_alerts: bool = True,
    notify: bool = True,
) -> int:
    """Apply a metric's episode events to its insights; returns how many insights opened.

    With `queue_alerts=False` the caller queues alerts itself, after grouping (see
    `group_and_alert`); with `notify=False` nothing is queued at all (history).
    """
    opened = 0
    silenced = is_silenced(watch, now)
    for event in events:
        found = event.detection
        key = fingerprint(metric.id, found.kind, found.direction)
        if event.status == "opened":
            # told as a tracking break when the source kept sending; the fingerprint stays
            # the detector's, so its later events reach the insight
            broken = find_tracking_break(
                session.connection(),
                metric_id=metric.id,
                detected_as=found.kind,
                direction=found.direction,
                start=found.start,
                detected_at=found.detected_at,
            )
            created = Insight(
                workspace_id=metric.workspace_id,
                metric_id=metric.id,
                fingerprint=key,
                kind=found.kind if broken is None else DetectionKind.TRACKING_BREAK.value,
                tracking_break=None if broken is None else broken.as_json(),
                direction=found.direction,
                status="open",
                severity=severity(found.kind, found.relative_change),
                start=_utc(found.start),
                detected_at=_utc(found.detected_at),
                updated_at=now,
                observed=float(found.observed),
                expected=float(found.expected),
                lower=float(found.lower),
                upper=float(found.upper),
                relative_change=float(found.relative_change),
                score=float(found.score),
                muted=silenced,
            )
            # a metric gone wholly silent has every value silent: nothing to rank, and a
            # source that stops sending would otherwise read weeks of breakdowns for each
            # of its metrics (an outage that still has a few events is ranked: which
            # client still sends them is the story)
            if not (found.kind == DetectionKind.OUTAGE and found.observed <= 0):
                created.root_cause = root_cause_of(
                    session.connection(),
                    metric_id=metric.id,
                    start=created.start,
                    end=created.detected_at,
                    direction=created.direction,
                )
            session.add(created)
            session.flush()
            _attach_causes(session, created, metric.source_id)
            if not silenced and queue_alerts and notify:
                _queue(session, created, "alert", now)
            opened += 1
            continue
        insight = _open_insight(session, metric.id, key, found.direction)
        if insight is None and event.status == "resolved":
            # a change adopted as the new normal that ended back at the old one
            # (detection ends it when the metric comes back within two weeks)
            insight = _open_insight(session, metric.id, key, found.direction, ("accepted",))
        if insight is None:
            continue
        if event.status == "updated":
            louder = SEVERITIES.index(severity(found.kind, found.relative_change)) > (
                SEVERITIES.index(insight.severity)
            )
            insight.status = "updated"
            insight.observed = float(found.observed)
            insight.expected = float(found.expected)
            insight.lower = float(found.lower)
            insight.upper = float(found.upper)
            insight.relative_change = float(found.relative_change)
            insight.score = max(insight.score, float(found.score))
            insight.updated_at = now
            if louder:
                insight.severity = severity(found.kind, found.relative_change)
                if notify and not insight.muted and insight.parent_id is None:
                    _queue(session, insight, "update", now)
        elif event.status in ("resolved", "accepted"):
            insight.status = event.status
            insight.ended_at = _utc(found.detected_at)
            insight.updated_at = now
            # a source-wide incident's end is told once, when its last metric is over
            # (`queue_story_ends`), not when the metric that leads it is
            if (
                notify
                and not insight.muted
                and insight.parent_id is None
                and story_incident(session, insight) is None
            ):
                _queue(session, insight, "resolution", now)
    return opened


def queue_story_ends(session: Session, *, source_id: int, now: datetime) -> int:
    """Queue the one resolution of each incident whose metrics are all over, of the stories
    of the source's insights this pass ended (`now` is the pass's moment).

    A workspace-wide incident's insights of every source point at its leader, so the pass
    of whichever source ends its last metric queues its end. Returns how many resolutions
    were queued. Only an incident whose alert went out (or waits to) is owed its end: one
    found in history, or muted, is told nowhere.
    """
    from lantern.metrics.models import Metric

    told = (
        select(Notification.id)
        .where(
            Notification.insight_id == Insight.id,
            Notification.purpose == "alert",
            Notification.status != "skipped",
        )
        .exists()
    )
    ended = (
        select(Notification.id)
        .where(Notification.insight_id == Insight.id, Notification.purpose == "resolution")
        .exists()
    )
    # the stories of the insights this pass ended (each was updated at `now`)
    stories = (
        select(func.coalesce(Insight.parent_id, Insight.id))
        .join(Metric, Metric.id == Insight.metric_id)
        .where(
            Metric.source_id == source_id,
            Insight.status.in_(ENDED),
            Insight.updated_at == now,
        )
    )
    leaders = session.scalars(
        select(Insight)
        .where(
            Insight.id.in_(stories),
            Insight.parent_id.is_(None),
            Insight.direction == "down",
            Insight.status.in_(ENDED),
            Insight.muted.is_(False),
            told,
            ~ended,
        )
        .order_by(Insight.id)
    ).all()
    queued = 0
    for leader in leaders:
        incident = story_incident(session, leader)
        # (a story no longer an incident had its end held back all the same: it is owed)
        if incident is None or incident.ended_at is not None:
            _queue(session, leader, "resolution", now)
            queued += 1
    return queued


def _utc(moment: Any) -> datetime:
    """A pandas or datetime moment as an aware datetime."""
    to_py = getattr(moment, "to_pydatetime", None)
    value: datetime = to_py() if to_py is not None else moment
    return value


def _lead_rank(insight: Insight, metric_kind: str) -> tuple[int, float]:
    # A named metric explains more than a call-type total, and a total more than one
    # breakdown value (a metric it belongs to says more, its root cause naming the value);
    # then the larger change leads.
    rank = {"breakdown": 0, "total": 1}.get(metric_kind, 2)
    return (rank, abs(insight.relative_change) * insight.score)


def group_and_alert(
    session: Session, *, detected_at: datetime, now: datetime, queue: bool = True
) -> int:
    """Queue alerts for the insights opened at `detected_at`, one per source and direction,
    and one for a workspace's sources that go down together with a source-wide incident
    (`joining.join_workspace_incidents`).

    A story already told that these insights make an incident (its busiest metric was
    told alone, the rest of its source or workspace went quiet an hour later) gets one
    follow-up in its alert's thread (`queue_incident_news`). Returns how many alerts were
    queued (with `queue=False`, history: the leader's alert is recorded as skipped, never
    sent, and nothing follows it).
    """
    from lantern.metrics.models import Metric

    rows = session.execute(
        select(Insight, Metric.source_id, Metric.kind)
        .join(Metric, Metric.id == Insight.metric_id)
        .where(Insight.detected_at == detected_at, Insight.parent_id.is_(None))
        .order_by(Insight.id)
    ).all()
    groups: dict[tuple[int, str], list[tuple[Insight, str]]] = {}
    for insight, source_id, metric_kind in rows:
        groups.setdefault((source_id, insight.direction), []).append((insight, metric_kind))
    leaders: list[Insight] = []
    grown: dict[int, Insight] = {}  # stories told before that take in insights of this hour
    for (source_id, direction), members in groups.items():
        already = [i for i, _ in members if _has_alert(session, i.id)]
        if already:
            continue  # this hour was grouped before (a re-run): nothing new to say
        earlier = _earlier_story(session, source_id, direction, members[0][0], detected_at)
        if earlier is not None:
            # A total or a neighbour that moved a few hours after a story already told.
            for insight, _ in members:
                insight.parent_id = earlier.id
            grown[earlier.id] = earlier
            continue
        audible = [(i, k) for i, k in members if not i.muted]
        if not audible:
            continue
        leader = max(audible, key=lambda pair: _lead_rank(*pair))[0]
        for insight, _ in members:
            if insight is not leader:
                insight.parent_id = leader.id
        leaders.append(leader)
    session.flush()
    owed = join_workspace_incidents(session, leaders, detected_at=detected_at)
    new_ids = {leader.id for leader in leaders}
    for leader in leaders:
        # a story told before that the new ones joined
        if leader.parent_id is not None and leader.parent_id not in new_ids:
            told = session.get(Insight, leader.parent_id)
            if told is not None:
                grown[told.id] = told
    queued = 0
    for leader in owed:
        if queue:
            _queue(session, leader, "alert", now)
            queued += 1
        else:
            # History is told in the feed, not on Slack: the row says so, and that the
            # insight has had its alert (`queue_alerts` passes over it).
            held = _queue(session, leader, "alert", now)
            held.status, held.error = "skipped", "found while catching up on history: not sent"
    if queue:
        queue_incident_news(session, list(grown.values()), detected_at=detected_at, now=now)
    return queued


def queue_incident_news(
    session: Session, leaders: list[Insight], *, detected_at: datetime, now: datetime
) -> int:
    """Queue the one follow-up (`incident`) of each of these told stories that the insights
    detected at `detected_at` made an incident: its alert did not say so.

    Each story is told it once, whatever it grows into after (the alert's thread, the
    newsfeed and the end count every metric). Returns how many were queued.
    """
    queued = 0
    for leader in leaders:
        alert = session.scalar(
            select(Notification.status)
            .where(Notification.insight_id == leader.id, Notification.purpose == "alert")
            .limit(1)
        )
        if alert is None or alert == "skipped":
            continue  # history, or muted: told nowhere
        said = session.scalar(
            select(Notification.id)
            .where(
                Notification.insight_id == leader.id,
                Notification.purpose.in_(("incident", "resolution")),
            )
            .limit(1)
        )
        if said is not None:
            continue
        if story_incident(session, leader) is None:
            continue
        if story_incident(session, leader, before=detected_at) is not None:
            continue  # its alert told it
        _queue(session, leader, "incident", now)
        queued += 1
    return queued


def queue_alerts(session: Session, *, since: datetime, now: datetime) -> int:
    """Group and queue alerts for every audible insight detected since `since` that has none.

    Whenever the insight was recorded: a pass that failed in the hour an episode opened
    leaves it to a later pass, which records it with its own detection hour.
    """
    has_alert = (
        select(Notification.id)
        .where(Notification.insight_id == Insight.id, Notification.purpose == "alert")
        .exists()
    )
    hours = session.scalars(
        select(Insight.detected_at)
        .where(
            Insight.detected_at >= since,
            Insight.parent_id.is_(None),
            Insight.muted.is_(False),
            ~has_alert,
        )
        .distinct()
        .order_by(Insight.detected_at)
    ).all()
    return sum(group_and_alert(session, detected_at=at, now=now) for at in hours)


def _earlier_story(
    session: Session, source_id: int, direction: str, insight: Insight, detected_at: datetime
) -> Insight | None:
    """The leader of the story told before `detected_at` that the source's `insight` follows:
    one of the source's, started within STORY_WINDOW of it, or the workspace-wide incident
    the source's earlier story joined."""
    from lantern.metrics.models import Metric

    parent = aliased(Insight)
    parent_metric = aliased(Metric)
    found = session.scalars(
        select(Insight)
        .join(Metric, Metric.id == Insight.metric_id)
        .outerjoin(parent, parent.id == Insight.parent_id)
        .outerjoin(parent_metric, parent_metric.id == parent.metric_id)
        .where(
            Metric.source_id == source_id,
            Insight.direction == direction,
            # the source's story leaders, and its insights in another source's story
            or_(Insight.parent_id.is_(None), parent_metric.source_id != source_id),
            Insight.detected_at < detected_at,
            Insight.start >= insight.start - STORY_WINDOW,
            Insight.start <= insight.start + STORY_WINDOW,
        )
        .order_by(Insight.detected_at, Insight.id)
        .limit(1)
    ).first()
    if found is None or found.parent_id is None:
        return found
    return session.get(Insight, found.parent_id)


def _has_alert(session: Session, insight_id: int) -> bool:
    return (
        session.scalar(
            select(Notification.id)
            .where(Notification.insight_id == insight_id, Notification.purpose == "alert")
            .limit(1)
        )
        is not None
    )


def insight_causes(session: Session, *, insight_id: int) -> list[Any]:
    """The flag changes attached to an insight, oldest first: (flag_key, old, new, changed_at)."""
    return list(
        session.execute(
            select(
                FlagChange.flag_key,
                FlagChange.old_version,
                FlagChange.new_version,
                FlagChange.changed_at,
            )
            .join(InsightCause, InsightCause.flag_change_id == FlagChange.id)
            .where(InsightCause.insight_id == insight_id)
            .order_by(FlagChange.changed_at, FlagChange.id)
        ).all()
    )


def feedback_raised(
    connection: Any, metric_ids: list[int]
) -> dict[int, tuple[tuple[str, int], ...]]:
    """Each metric's raised bars (`detect.feedback_bar`) from the team's "useful" and "not
    useful" on its insights, by kind; metrics without feedback are left out."""
    counts: dict[int, tuple[dict[str, int], dict[str, int]]] = {}
    if not metric_ids:
        return {}
    # by the kind the detector found (the fingerprint's): a tracking break was its outage
    rows = connection.execute(
        select(Insight.metric_id, Insight.fingerprint, Insight.useful, func.count())
        .where(Insight.metric_id.in_(metric_ids), Insight.useful.is_not(None))
        .group_by(Insight.metric_id, Insight.fingerprint, Insight.useful)
    ).all()
    for metric_id, key, useful, count in rows:
        not_useful, was_useful = counts.setdefault(metric_id, ({}, {}))
        tally = was_useful if useful else not_useful
        kind = detected_kind(key)
        tally[kind] = tally.get(kind, 0) + int(count)
    raised = {metric_id: feedback_bar(*pair) for metric_id, pair in counts.items()}
    return {metric_id: bars for metric_id, bars in raised.items() if bars}


# Rows a statement writes: a state is a few kB.
STATES_A_STATEMENT = 2_000

_SAVE_STATES = {
    # one statement of arrays on PostgreSQL, a parameter row a metric on SQLite
    "postgresql": (
        "INSERT INTO metric_watch (metric_id, muted, state, scored_hour) "
        "SELECT m, false, s, %s FROM unnest(%s::int[], %s::bytea[]) AS t (m, s) "
        "ORDER BY m "
        "ON CONFLICT (metric_id) DO UPDATE SET state = excluded.state, "
        "scored_hour = excluded.scored_hour"
    ),
    "sqlite": (
        "INSERT INTO metric_watch (metric_id, muted, state, scored_hour) VALUES (?, 0, ?, ?) "
        "ON CONFLICT (metric_id) DO UPDATE SET state = excluded.state, "
        "scored_hour = excluded.scored_hour"
    ),
}


def save_states(session: Session, states: list[tuple[int, bytes | None]], hour: int) -> None:
    """Keep each metric's new detector state, scored up to `hour`, creating its watch row
    (not muted) if it has none: in bulk, metric id order."""
    connection = session.connection()
    rows = sorted(states, key=lambda row: row[0])
    for i in range(0, len(rows), STATES_A_STATEMENT):
        chunk = rows[i : i + STATES_A_STATEMENT]
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(
                _SAVE_STATES["postgresql"],
                (hour, [m for m, _ in chunk], [state for _, state in chunk]),
            )
        else:
            connection.exec_driver_sql(
                _SAVE_STATES["sqlite"], [(m, state, hour) for m, state in chunk]
            )
