"""Episode events become insights with a life cycle, causes and queued notifications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from lantern.db import session_scope
from lantern.insights.models import Insight, InsightCause, MetricWatch
from lantern.insights.service import MetricRef, record_events
from lantern.metrics.models import FlagChange, Metric
from lantern.notify.models import Notification
from tests.factories import MadeSource, make_source

START = datetime(2026, 2, 10, 14, tzinfo=UTC)


@dataclass(frozen=True)
class Found:
    kind: str = "level_shift"
    direction: str = "down"
    start: datetime = START
    detected_at: datetime = START + timedelta(hours=2)
    observed: float = 40.0
    expected: float = 100.0
    lower: float = 80.0
    upper: float = 120.0
    relative_change: float = -0.6
    score: float = 9.0


@dataclass(frozen=True)
class Event:
    status: str
    detection: Found


def metric_of(engine: Engine, src: MadeSource) -> MetricRef:
    with session_scope(engine) as session:
        metric = Metric(source_id=src.id, kind="track", name="Signed Up")
        session.add(metric)
        session.flush()
        return MetricRef(id=metric.id, source_id=src.id, workspace_id=src.workspace_id)


def notifications(engine: Engine, metric: MetricRef) -> list[str]:
    with session_scope(engine) as session:
        return list(
            session.scalars(
                select(Notification.purpose)
                .join(Insight, Insight.id == Notification.insight_id)
                .where(Insight.metric_id == metric.id)
                .order_by(Notification.id)
            )
        )


def test_an_episode_opens_one_insight_and_its_end_queues_one_resolution(engine: Engine) -> None:
    metric = metric_of(engine, make_source(engine))
    later = Found(detected_at=START + timedelta(hours=9))
    with session_scope(engine) as session:
        opened = record_events(
            session,
            metric=metric,
            events=[Event("opened", Found())],
            watch=None,
            now=START + timedelta(hours=2, minutes=5),
        )
        record_events(
            session,
            metric=metric,
            events=[Event("resolved", later)],
            watch=None,
            now=START + timedelta(hours=9, minutes=5),
        )
    with session_scope(engine) as session:
        insight = session.scalars(select(Insight).where(Insight.metric_id == metric.id)).one()
        assert (insight.status, insight.severity, insight.kind) == (
            "resolved",
            "high",
            "level_shift",
        )
        assert insight.ended_at == later.detected_at
    assert opened == 1
    assert notifications(engine, metric) == ["alert", "resolution"]


def test_a_drop_that_lasts_is_followed_as_a_level_shift_and_its_end_is_told(
    engine: Engine,
) -> None:
    metric = metric_of(engine, make_source(engine))
    with session_scope(engine) as session:
        for status, found, hours in (
            ("opened", Found(kind="drop"), 2),
            ("updated", Found(detected_at=START + timedelta(hours=8)), 8),
            ("accepted", Found(detected_at=START + timedelta(hours=32)), 32),
        ):
            record_events(
                session,
                metric=metric,
                events=[Event(status, found)],
                watch=None,
                now=START + timedelta(hours=hours, minutes=5),
            )
    with session_scope(engine) as session:
        insight = session.scalars(select(Insight).where(Insight.metric_id == metric.id)).one()
        assert (insight.kind, insight.status) == ("drop", "accepted")
        assert insight.ended_at == START + timedelta(hours=32)
    assert notifications(engine, metric) == ["alert", "resolution"]


def test_a_change_adopted_as_normal_that_ends_back_at_the_old_normal_is_told_over(
    engine: Engine,
) -> None:
    # detection ends an adopted change when the metric comes back to the normal before it
    # (`resolved` after `accepted`): the insight says so and the thread is told again
    metric = metric_of(engine, make_source(engine))
    back = START + timedelta(days=9)
    with session_scope(engine) as session:
        for status, found, at in (
            ("opened", Found(direction="up"), START + timedelta(hours=2)),
            ("accepted", Found(direction="up"), START + timedelta(hours=26)),
            ("resolved", Found(direction="up", detected_at=back), back),
        ):
            record_events(session, metric=metric, events=[Event(status, found)], watch=None, now=at)
    with session_scope(engine) as session:
        insight = session.scalars(select(Insight).where(Insight.metric_id == metric.id)).one()
        assert (insight.status, insight.ended_at) == ("resolved", back)
    assert notifications(engine, metric) == ["alert", "resolution", "resolution"]


def test_a_muted_metric_is_scored_but_nobody_is_told(engine: Engine) -> None:
    metric = metric_of(engine, make_source(engine))
    with session_scope(engine) as session:
        watch = MetricWatch(metric_id=metric.id, muted=True)
        session.add(watch)
        record_events(
            session,
            metric=metric,
            events=[Event("opened", Found())],
            watch=watch,
            now=START + timedelta(hours=3),
        )
        record_events(
            session,
            metric=metric,
            events=[Event("resolved", Found())],
            watch=watch,
            now=START + timedelta(hours=4),
        )
    with session_scope(engine) as session:
        insight = session.scalars(select(Insight).where(Insight.metric_id == metric.id)).one()
        assert insight.muted
    assert notifications(engine, metric) == []


def test_a_snooze_silences_only_until_it_ends(engine: Engine) -> None:
    metric = metric_of(engine, make_source(engine))
    with session_scope(engine) as session:
        watch = MetricWatch(metric_id=metric.id, snoozed_until=START + timedelta(days=1))
        session.add(watch)
        record_events(
            session,
            metric=metric,
            events=[Event("opened", Found())],
            watch=watch,
            now=START + timedelta(hours=3),
        )
        after = Found(
            kind="spike",
            direction="up",
            start=START + timedelta(days=2),
            detected_at=START + timedelta(days=2),
        )
        record_events(
            session,
            metric=metric,
            events=[Event("opened", after)],
            watch=watch,
            now=START + timedelta(days=2, minutes=5),
        )
    assert notifications(engine, metric) == ["alert"]


def test_a_flag_change_shortly_before_the_start_is_a_possible_cause(engine: Engine) -> None:
    src = make_source(engine)
    metric = metric_of(engine, src)
    with session_scope(engine) as session:
        near = FlagChange(
            source_id=src.id,
            flag_key="new-checkout",
            old_version=3,
            new_version=4,
            changed_at=START - timedelta(hours=1),
        )
        far = FlagChange(
            source_id=src.id,
            flag_key="old-thing",
            old_version=1,
            new_version=2,
            changed_at=START - timedelta(days=3),
        )
        session.add_all([near, far])
        session.flush()
        near_id = near.id
        record_events(
            session,
            metric=metric,
            events=[Event("opened", Found())],
            watch=None,
            now=START + timedelta(hours=3),
        )
    with session_scope(engine) as session:
        causes = session.scalars(
            select(InsightCause.flag_change_id)
            .join(Insight, Insight.id == InsightCause.insight_id)
            .where(Insight.metric_id == metric.id)
        ).all()
    assert causes == [near_id]


def test_an_update_notifies_only_when_the_episode_gets_louder(engine: Engine) -> None:
    metric = metric_of(engine, make_source(engine))
    small = Found(relative_change=-0.25)
    with session_scope(engine) as session:
        record_events(
            session, metric=metric, events=[Event("opened", small)], watch=None, now=START
        )
        record_events(
            session,
            metric=metric,
            events=[Event("updated", Found(relative_change=-0.3))],
            watch=None,
            now=START,
        )
        record_events(
            session,
            metric=metric,
            events=[Event("updated", Found(relative_change=-0.7))],
            watch=None,
            now=START,
        )
    assert notifications(engine, metric) == ["alert", "update"]


def test_insights_of_one_source_opening_together_make_one_alert(engine: Engine) -> None:
    from lantern.insights.service import group_and_alert

    src = make_source(engine)
    named = metric_of(engine, src)
    with session_scope(engine) as session:
        total_row = Metric(source_id=src.id, kind="total", name="track")
        session.add(total_row)
        session.flush()
        total = MetricRef(id=total_row.id, source_id=src.id, workspace_id=src.workspace_id)
        at = START + timedelta(hours=2)
        for metric, change in ((total, -0.7), (named, -0.6)):
            record_events(
                session,
                metric=metric,
                events=[Event("opened", Found(relative_change=change))],
                watch=None,
                now=at,
                queue_alerts=False,
            )
        queued = group_and_alert(session, detected_at=at, now=at)
        again = group_and_alert(session, detected_at=at, now=at)
    assert (queued, again) == (1, 0)
    assert notifications(engine, named) == ["alert"]
    assert notifications(engine, total) == []
    with session_scope(engine) as session:
        follower = session.scalars(select(Insight).where(Insight.metric_id == total.id)).one()
        leader = session.scalars(select(Insight).where(Insight.metric_id == named.id)).one()
        assert follower.parent_id == leader.id
