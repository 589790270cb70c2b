"""Source-wide incidents: most of a source's metrics down together make one alert, one end."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from lantern.config import Settings
from lantern.db import session_scope
from lantern.insights.incidents import story_incident
from lantern.insights.models import Insight
from lantern.insights.service import MetricRef, queue_story_ends, record_events
from lantern.metrics.models import Metric
from lantern.metrics.service import epoch_hour, hour_index
from lantern.notify.connection import connect_with_token
from lantern.notify.models import Notification
from lantern.notify.outbox import flush_outbox
from lantern.pipeline import run_hour
from tests.factories import (
    MadeSource,
    closed_hour_at,
    last_closed_hour,
    make_metric,
    make_source,
    open_story,
)
from tests.fakeslack import GOOD_TOKEN, FakeSlack

METRICS = 20
DAYS = 14
QUIET_HOURS = 6
BACK_HOURS = 4
# The tests that run the hourly pass end their series at this hour of the day (UTC), so a
# run at any time sees the same hours: a metric quiet at night is told an hour or two later
# than by day, and that decides which alert tells what.
END_HOUR = 12


def rhythm(end: pd.Timestamp, *, peak: float, seed: int) -> pd.Series:
    """Hourly counts with a daily rhythm and Poisson noise over DAYS days ending at `end`.

    Busy enough at every hour (at least 64 events an hour) for an hour of silence to be
    told at once whatever the hour it falls in: metrics quiet at night are told an hour or
    two later, and a story's alert counts only those already told (see
    docs/how-it-works.md, "Stories and source-wide incidents").
    """
    index = pd.date_range(end=end, periods=DAYS * 24, freq="h")
    daily = 0.8 + 0.2 * np.sin((index.hour.to_numpy() - 6) / 24 * 2 * np.pi)
    return pd.Series(np.random.default_rng(seed).poisson(peak * daily), index=index)


def slack_source(engine: Engine, settings: Settings) -> MadeSource:
    src = make_source(engine)
    with session_scope(engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="alerts",
            settings=settings,
        )
    return src


def source_with_quiet_hours(
    engine: Engine, settings: Settings, *, quiet: int, end: pd.Timestamp
) -> tuple[MadeSource, pd.Timestamp]:
    """METRICS metrics of one source up to `end`, of which `quiet` send nothing for
    QUIET_HOURS hours that end BACK_HOURS before it; returns the source and the first quiet
    hour."""
    src = slack_source(engine, settings)
    first_quiet = end - pd.Timedelta(hours=QUIET_HOURS + BACK_HOURS - 1)
    for i in range(METRICS):
        counts = rhythm(end, peak=80 + 10 * i, seed=i)
        if i < quiet:
            counts[(counts.index >= first_quiet) & (counts.index < end - pd.Timedelta(hours=3))] = 0
        make_metric(engine, src, name=f"Event {i:02d}", counts=counts)
    return src, first_quiet


def live_hours(
    engine: Engine, settings: Settings, fake: FakeSlack, first: pd.Timestamp, end: pd.Timestamp
) -> dict[int, int]:
    """Run the hourly pass from two hours before `first` to `end`, flushing the outbox after
    each as the scheduler does; returns Slack's top-level messages after each."""
    seen = {}
    for hour in range(epoch_hour(first) - 2, epoch_hour(end) + 1):
        now = hour_index(hour + 1).to_pydatetime() + timedelta(minutes=5)
        run_hour(engine, settings, hour=hour, worker="test", now=now)
        flush_outbox(engine, settings, now=now)
        seen[hour] = len(fake.top_level())
    return seen


def purposes(engine: Engine, workspace_id: int) -> list[str]:
    with session_scope(engine) as session:
        return list(
            session.scalars(
                select(Notification.purpose)
                .where(Notification.workspace_id == workspace_id)
                .order_by(Notification.id)
            )
        )


def test_a_whole_source_quiet_for_hours_is_one_incident_alert_and_one_end(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    end = closed_hour_at(END_HOUR)
    src, first_quiet = source_with_quiet_hours(fresh_engine, settings, quiet=METRICS, end=end)
    seen = live_hours(fresh_engine, settings, fake_slack, first_quiet, end)

    [alert] = fake_slack.top_level()
    # told within the hour after the first quiet hour closed
    assert min(hour for hour, n in seen.items() if n) <= epoch_hour(first_quiet) + 1
    # the alert counts the metrics known when it was sent (those quiet in the first hour)
    told = re.search(r"web: (\d+) of (\d+) metrics went down or quiet together", alert["text"])
    assert told is not None, alert["text"]
    assert int(told[2]) == METRICS and int(told[1]) >= METRICS // 2
    assert "a broken pipeline, an expired key or a holiday?" in alert["text"]
    listed = next(b for b in alert["blocks"] if b.get("block_id") == "lantern_incident")
    assert listed["text"]["text"].count("• ") == min(10, int(told[1]))
    if int(told[1]) > 10:
        assert f"and {int(told[1]) - 10} more" in listed["text"]["text"]
    [end] = [m["text"] for m in fake_slack.replies(alert["ts"]) if not m.get("files")]
    assert f"the {METRICS} metrics that went down or quiet together are back to normal" in end
    assert purposes(fresh_engine, src.workspace_id) == ["alert", "resolution"]
    with session_scope(fresh_engine) as session:
        leader = session.scalars(
            select(Insight).where(
                Insight.workspace_id == src.workspace_id, Insight.parent_id.is_(None)
            )
        ).one()
        incident = story_incident(session, leader)
        assert incident is not None and incident.ended_at is not None
        ended = session.scalar(
            select(func.max(Insight.ended_at)).where(Insight.workspace_id == src.workspace_id)
        )
        assert incident.ended_at == ended  # told when the last metric was back


def test_two_metrics_of_twenty_going_quiet_are_an_ordinary_story(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    end = closed_hour_at(END_HOUR)
    src, first_quiet = source_with_quiet_hours(fresh_engine, settings, quiet=2, end=end)
    live_hours(fresh_engine, settings, fake_slack, first_quiet, end)

    [alert] = fake_slack.top_level()  # the two moved together: one story
    assert "metrics went down or quiet together" not in alert["text"]
    assert not [b for b in alert["blocks"] if b.get("block_id") == "lantern_incident"]
    [end] = [m["text"] for m in fake_slack.replies(alert["ts"]) if not m.get("files")]
    assert "is back to normal after" in end  # the metric's own end, as for any story
    assert purposes(fresh_engine, src.workspace_id) == ["alert", "resolution"]
    with session_scope(fresh_engine) as session:
        names = set(
            session.scalars(
                select(Metric.name)
                .join(Insight, Insight.metric_id == Metric.id)
                .where(Insight.workspace_id == src.workspace_id)
            )
        )
        leader = session.scalars(
            select(Insight).where(
                Insight.workspace_id == src.workspace_id, Insight.parent_id.is_(None)
            )
        ).one()
        assert story_incident(session, leader) is None
    assert names == {"Event 00", "Event 01"}


@dataclass(frozen=True)
class Found:
    start: datetime
    detected_at: datetime
    kind: str = "outage"
    direction: str = "down"
    observed: float = 0.0
    expected: float = 100.0
    lower: float = 80.0
    upper: float = 120.0
    relative_change: float = -1.0
    score: float = 9.0


@dataclass(frozen=True)
class Event:
    status: str
    detection: Found


def story_of(engine: Engine, *, active: int, down: int) -> tuple[MadeSource, list[int], datetime]:
    """A source of `active` trained metrics, of which the first `down` went quiet together
    (recorded and grouped as the hourly pass does); returns the source, the insights (the
    leader first) and the detection hour."""
    src = make_source(engine)
    metrics = [make_metric(engine, src, name=f"Event {i:02d}") for i in range(active)]
    start = last_closed_hour() - pd.Timedelta(hours=8)
    at = start + pd.Timedelta(hours=1)
    story = open_story(engine, src, metrics[:down], start=start, detected_at=at)
    return src, story, at.to_pydatetime()


def end(engine: Engine, src: MadeSource, insight_id: int, at: datetime, status: str) -> int:
    """End one insight as the hourly pass at `at` does; returns the ends it queued."""
    with session_scope(engine) as session:
        insight = session.get(Insight, insight_id)
        assert insight is not None
        found = Found(start=insight.start, detected_at=at)
        record_events(
            session,
            metric=MetricRef(id=insight.metric_id, source_id=src.id, workspace_id=src.workspace_id),
            events=[Event(status, found)],
            watch=None,
            now=at,
        )
        return queue_story_ends(session, source_id=src.id, now=at)


def test_an_incidents_end_is_told_once_when_its_last_metric_is_back(engine: Engine) -> None:
    src, (leader, *others), at = story_of(engine, active=4, down=3)
    assert end(engine, src, leader, at + timedelta(hours=2), "resolved") == 0
    assert purposes(engine, src.workspace_id) == ["alert"]
    assert end(engine, src, others[0], at + timedelta(hours=3), "resolved") == 0
    assert end(engine, src, others[1], at + timedelta(hours=4), "accepted") == 1
    assert purposes(engine, src.workspace_id) == ["alert", "resolution"]
    with session_scope(engine) as session:
        row = session.get(Insight, leader)
        assert row is not None
        incident = story_incident(session, row)
        assert incident is not None
        assert (incident.metrics, incident.of, incident.accepted) == (3, 4, 1)
        assert incident.ended_at == at + timedelta(hours=4)


def test_a_story_of_three_metrics_of_ten_is_no_incident_and_ends_with_its_leader(
    engine: Engine,
) -> None:
    src, (leader, *_), at = story_of(engine, active=10, down=3)
    assert end(engine, src, leader, at + timedelta(hours=2), "resolved") == 0
    assert purposes(engine, src.workspace_id) == ["alert", "resolution"]
    with session_scope(engine) as session:
        row = session.get(Insight, leader)
        assert row is not None and story_incident(session, row) is None


def test_the_newsfeed_and_the_insights_page_name_the_incident_on_its_leader_only(
    client: TestClient, engine: Engine
) -> None:
    src, (leader, child, _), _ = story_of(engine, active=5, down=3)
    headers = {"Authorization": f"Bearer {src.token}"}
    [item] = client.get("/api/v1/insights", headers=headers).json()["items"]
    assert item["id"] == leader
    assert {k: item["incident"][k] for k in ("scope", "metrics", "of")} == {
        "scope": "source",
        "metrics": 3,
        "of": 5,
    }
    assert item["incident"]["text"].startswith("web: 3 of 5 metrics went down or quiet together")
    assert item["incident"]["ended_at"] is None
    page = client.get(f"/api/v1/insights/{leader}", headers=headers).json()
    assert page["incident"] == item["incident"]
    assert [r["incident"] for r in page["related"]] == [None, None]
    assert client.get(f"/api/v1/insights/{child}", headers=headers).json()["incident"] is None


LOW_HOURS = 30  # a calendar day of a far-away time zone, and the night after it
LOW_BACK_HOURS = 10


def source_with_a_low_day(
    engine: Engine, settings: Settings, *, low: int, end: pd.Timestamp
) -> pd.Timestamp:
    """Six metrics of one source up to `end`, of which `low` run at 30% for LOW_HOURS hours
    and come back LOW_BACK_HOURS before it; returns the first low hour."""
    src = slack_source(engine, settings)
    first_low = end - pd.Timedelta(hours=LOW_HOURS + LOW_BACK_HOURS - 1)
    for i in range(6):
        counts = rhythm(end, peak=150 + 10 * i, seed=i)
        if i < low:
            day = (counts.index >= first_low) & (
                counts.index < first_low + pd.Timedelta(hours=LOW_HOURS)
            )
            counts[day] = np.random.default_rng(50 + i).poisson(counts[day] * 0.3)
        make_metric(engine, src, name=f"Event {i:02d}", counts=counts)
    return first_low


def statuses(engine: Engine) -> list[tuple[str, str, str]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(Metric.name, Insight.direction, Insight.status)
            .join(Metric, Metric.id == Insight.metric_id)
            .order_by(Metric.name, Insight.id)
        ).all()
    return [(name, direction, status) for name, direction, status in rows]


def test_a_day_the_whole_source_is_low_is_told_once_and_teaches_no_new_normal(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    end = closed_hour_at(END_HOUR)
    first_low = source_with_a_low_day(fresh_engine, settings, low=6, end=end)
    live_hours(fresh_engine, settings, fake_slack, first_low, end)

    found = statuses(fresh_engine)
    # every metric's drop ended when it came back: none adopted as its new normal, and the
    # return is no news
    assert {name for name, _, _ in found} == {f"Event {i:02d}" for i in range(6)}
    assert {(direction, status) for _, direction, status in found} == {("down", "resolved")}
    [alert] = fake_slack.top_level()
    assert "metrics went down or quiet together" in alert["text"]
    [end] = [m["text"] for m in fake_slack.replies(alert["ts"]) if not m.get("files")]
    assert "the 6 metrics that went down or quiet together are back to normal" in end


def test_one_metric_low_as_long_is_adopted_as_its_new_normal(
    fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    end = closed_hour_at(END_HOUR)
    first_low = source_with_a_low_day(fresh_engine, settings, low=1, end=end)
    live_hours(fresh_engine, settings, fake_slack, first_low, end)

    assert ("Event 00", "down", "accepted") in statuses(fresh_engine)
