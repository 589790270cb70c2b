"""Source-wide incidents: most of a source's metrics down together make one alert, one end."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select

from lantern.config import Settings
from lantern.db import session_scope
from lantern.insights.incidents import story_incident
from lantern.insights.models import Insight
from lantern.metrics.models import Metric
from lantern.metrics.service import epoch_hour, hour_index
from lantern.notify.connection import connect_with_token
from lantern.notify.models import Notification
from lantern.notify.outbox import flush_outbox
from lantern.pipeline import run_hour
from tests.factories import MadeSource, last_closed_hour, make_metric, make_source
from tests.fakeslack import GOOD_TOKEN, FakeSlack

METRICS = 20
DAYS = 14
QUIET_HOURS = 6
BACK_HOURS = 4


def rhythm(end: pd.Timestamp, *, peak: float, seed: int) -> pd.Series:
    """Hourly counts with a daily rhythm and Poisson noise over DAYS days ending at `end`."""
    index = pd.date_range(end=end, periods=DAYS * 24, freq="h")
    daily = 0.55 + 0.45 * np.sin((index.hour.to_numpy() - 6) / 24 * 2 * np.pi)
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
    engine: Engine, settings: Settings, *, quiet: int
) -> tuple[MadeSource, pd.Timestamp]:
    """METRICS metrics of one source, of which `quiet` send nothing for QUIET_HOURS hours
    that end BACK_HOURS before the last closed hour; returns the source and the first quiet
    hour."""
    src = slack_source(engine, settings)
    end = last_closed_hour()
    first_quiet = end - pd.Timedelta(hours=QUIET_HOURS + BACK_HOURS - 1)
    for i in range(METRICS):
        counts = rhythm(end, peak=80 + 10 * i, seed=i)
        if i < quiet:
            counts[(counts.index >= first_quiet) & (counts.index < end - pd.Timedelta(hours=3))] = 0
        make_metric(engine, src, name=f"Event {i:02d}", counts=counts)
    return src, first_quiet


def live_hours(
    engine: Engine, settings: Settings, fake: FakeSlack, first: pd.Timestamp
) -> dict[int, int]:
    """Run the hourly pass from two hours before `first` to the last closed hour, flushing the
    outbox after each as the scheduler does; returns Slack's top-level messages after each."""
    seen = {}
    for hour in range(epoch_hour(first) - 2, epoch_hour(last_closed_hour()) + 1):
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
    src, first_quiet = source_with_quiet_hours(fresh_engine, settings, quiet=METRICS)
    seen = live_hours(fresh_engine, settings, fake_slack, first_quiet)

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
    src, first_quiet = source_with_quiet_hours(fresh_engine, settings, quiet=2)
    live_hours(fresh_engine, settings, fake_slack, first_quiet)

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
