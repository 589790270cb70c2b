"""The hourly pass: trained metrics are scored once per hour, and a change opens one insight."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from lantern import pipeline
from lantern.config import Settings
from lantern.db import session_scope
from lantern.insights.models import DetectionRun, Insight, MetricWatch
from lantern.metrics.models import Metric
from lantern.metrics.service import epoch_hour, hour_index
from lantern.notify.models import Notification
from lantern.pipeline import _claim, due_hours, run_due_hours, run_hour
from tests.factories import history_events, import_events, make_source

DAYS = 10


def rhythm_counts(end: pd.Timestamp, *, peak: float, seed: int) -> pd.Series:
    """Hourly counts with a daily rhythm over DAYS days ending before `end`."""
    index = pd.date_range(end - pd.Timedelta(days=DAYS), periods=DAYS * 24, freq="h")
    daily = 0.55 + 0.45 * np.sin((index.hour.to_numpy() - 6) / 24 * 2 * np.pi)
    rng = np.random.default_rng(seed)
    return pd.Series(rng.poisson(peak * daily), index=index)


def recent_end() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)


def insights_of(engine: Engine, source_id: int) -> list[tuple[str, str, str]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(Metric.name, Insight.kind, Insight.direction)
            .join(Metric, Metric.id == Insight.metric_id)
            .where(Metric.source_id == source_id)
        ).all()
    return [tuple(r) for r in rows]


def test_an_event_silent_in_the_last_hours_opens_one_insight_and_queues_its_alert(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings
) -> None:
    client, engine = fresh_client, fresh_engine
    src = make_source(engine)
    end = recent_end()
    broken = rhythm_counts(end, peak=120, seed=1)
    broken.iloc[-4:] = 0  # the last four hours go silent
    steady = rhythm_counts(end, peak=120, seed=2)
    import_events(
        client,
        src.key,
        history_events(broken, event="Checkout") + history_events(steady, event="Search"),
    )
    last = epoch_hour(broken.index[-1])
    for hour in range(last - 5, last + 1):
        run_hour(engine, settings, hour=hour, worker="test")
    found = insights_of(engine, src.id)
    # Search went on: Checkout's outage is told as a tracking break (test_tracking_breaks.py)
    assert ("Checkout", "tracking_break", "down") in found
    assert all(name != "Search" for name, _, _ in found)
    with session_scope(engine) as session:
        alerts = session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.workspace_id == src.workspace_id, Notification.purpose == "alert")
        )
    # Checkout and the total of track calls dropped together: one story, one alert.
    assert alerts == 1


def alerts_of(engine: Engine, workspace_id: int) -> int:
    with session_scope(engine) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.workspace_id == workspace_id, Notification.purpose == "alert")
            )
            or 0
        )


def outage_history(client: TestClient, engine: Engine) -> tuple[int, int, int]:
    """A source whose Checkout goes silent for its last four hours: (source, workspace, last)."""
    src = make_source(engine)
    broken = rhythm_counts(recent_end(), peak=120, seed=1)
    broken.iloc[-4:] = 0
    import_events(client, src.key, history_events(broken, event="Checkout"))
    return src.id, src.workspace_id, epoch_hour(broken.index[-1])


def test_an_alert_is_queued_when_the_pass_of_the_hour_its_episode_opened_died(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings
) -> None:
    source_id, workspace_id, last = outage_history(fresh_client, fresh_engine)
    run_hour(fresh_engine, settings, hour=last - 5, worker="before")
    began = datetime.now(UTC)
    for hour in range(last - 4, last):
        assert _claim(fresh_engine, hour, "died", began)  # claimed, then the process died
    run_hour(fresh_engine, settings, hour=last, worker="after")
    with session_scope(fresh_engine) as session:
        opened = session.scalars(
            select(Insight.detected_at)
            .join(Metric, Metric.id == Insight.metric_id)
            .where(Metric.source_id == source_id, Insight.parent_id.is_(None))
        ).all()
    assert alerts_of(fresh_engine, workspace_id) == 1
    # The episode opened in an hour whose pass died; the next pass recorded it.
    assert len(opened) == 1 and opened[0] < hour_index(last)


def test_a_source_whose_alerts_cannot_be_queued_keeps_none_of_its_insights_until_they_can(
    fresh_client: TestClient,
    fresh_engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source_id, workspace_id, last = outage_history(fresh_client, fresh_engine)

    def lost_connection(*args: object, **kwargs: object) -> int:
        raise ConnectionError("the database went away while alerts were queued")

    # The passes of the hours the outage opened in fail once they queue its alert.
    with monkeypatch.context() as failing:
        failing.setattr(pipeline, "queue_alerts", lost_connection)
        for hour in range(last - 5, last):
            with contextlib.suppress(ConnectionError):
                run_hour(fresh_engine, settings, hour=hour, worker="failing")
    assert insights_of(fresh_engine, source_id) == []  # none recorded without its alert
    run_hour(fresh_engine, settings, hour=last, worker="after")
    assert ("Checkout", "outage", "down") in insights_of(fresh_engine, source_id)
    assert alerts_of(fresh_engine, workspace_id) == 1


def test_a_claimed_hour_whose_pass_died_is_run_again_later_scoring_nothing_twice(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings
) -> None:
    source_id, workspace_id, last = outage_history(fresh_client, fresh_engine)
    run_hour(fresh_engine, settings, hour=last - 5, worker="before")
    run_hour(fresh_engine, settings, hour=last - 4, worker="died after scoring")
    with session_scope(fresh_engine) as session:
        run = session.get(DetectionRun, last - 4)
        assert run is not None
        run.finished_at = None  # it scored its metrics, then died before finishing
    began = datetime.now(UTC)
    for hour in range(last - 3, last + 1):
        assert _claim(fresh_engine, hour, "died", began)
    tick = began + timedelta(hours=1)
    done = run_due_hours(fresh_engine, settings, now=tick, worker="later")
    again = run_due_hours(fresh_engine, settings, now=tick, worker="later")
    with session_scope(fresh_engine) as session:
        unfinished = session.scalars(
            select(DetectionRun.hour).where(DetectionRun.finished_at.is_(None))
        ).all()
        outages = session.scalars(
            select(Insight.id)
            .join(Metric, Metric.id == Insight.metric_id)
            .where(Metric.source_id == source_id, Metric.name == "Checkout")
        ).all()
    assert [r.hour for r in done][:5] == list(range(last - 4, last + 1))
    assert done[0].metrics == 0  # what the dead pass scored is not scored again
    assert done[1].metrics > 0
    assert unfinished == [] and again == []
    assert len(outages) == 1  # one episode, one insight
    assert alerts_of(fresh_engine, workspace_id) == 1


def test_two_workers_never_score_the_same_hour_twice(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings
) -> None:
    client, engine = fresh_client, fresh_engine
    src = make_source(engine)
    end = recent_end()
    import_events(client, src.key, history_events(rhythm_counts(end, peak=30, seed=3)))
    now = (end + pd.Timedelta(hours=1, minutes=10)).to_pydatetime()
    due = due_hours(engine, now=now, grace=timedelta(minutes=5))
    results: dict[str, list[int]] = {}

    def worker(name: str) -> None:
        done = run_due_hours(engine, settings, now=now, worker=name)
        results[name] = [r.hour for r in done]

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    scored = results["w0"] + results["w1"]
    assert sorted(scored) == sorted(set(scored))
    assert set(due) <= set(scored)
    with session_scope(engine) as session:
        claims = session.execute(
            select(DetectionRun.hour, DetectionRun.claimed_by).where(DetectionRun.hour.in_(due))
        ).all()
        watch_hours = session.scalars(
            select(MetricWatch.scored_hour)
            .join(Metric, Metric.id == MetricWatch.metric_id)
            .where(Metric.source_id == src.id)
        ).all()
    assert len(claims) == len(due)
    assert set(watch_hours) == {max(due)}


def test_hours_missed_while_down_are_caught_up_once_each_in_order(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings
) -> None:
    client, engine = fresh_client, fresh_engine
    src = make_source(engine)
    end = recent_end()
    import_events(client, src.key, history_events(rhythm_counts(end, peak=20, seed=4)))
    last = epoch_hour(end)
    # The last pass before the downtime scored the hour six hours before `end`.
    first_missed = last - 5
    run_hour(engine, settings, hour=first_missed - 1, worker="before-downtime")
    now = (end + pd.Timedelta(hours=1, minutes=6)).to_pydatetime()
    done = run_due_hours(engine, settings, now=now, worker="after-downtime")
    again = run_due_hours(engine, settings, now=now, worker="after-downtime")
    assert [r.hour for r in done] == list(range(first_missed, last + 1))
    assert again == []


def test_a_process_pool_finds_what_the_inline_pass_finds(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings
) -> None:
    client, engine = fresh_client, fresh_engine
    src = make_source(engine)
    end = recent_end()
    broken = rhythm_counts(end, peak=80, seed=5)
    broken.iloc[-3:] *= 4  # a spike in the last three hours
    import_events(client, src.key, history_events(broken, event="Checkout"))
    last = epoch_hour(end)
    pooled = settings.model_copy(update={"detect_executor": "process"})
    for hour in range(last - 3, last + 1):
        run_hour(engine, pooled, hour=hour, worker="pool")
    found = insights_of(engine, src.id)
    assert ("Checkout", "spike", "up") in found


def test_not_useful_on_a_metrics_small_spikes_stops_the_next_and_a_large_one_is_told(
    fresh_engine: Engine, settings: Settings
) -> None:
    from lantern.dashboard.feed import give_feedback
    from tests.factories import make_metric
    from tests.unit.test_detect_real import feedback_series

    series, at = feedback_series()
    # the same hours of the week as the unit test's series (it starts on a Monday at 00:00)
    start = (recent_end() - pd.Timedelta(weeks=8)).floor("D")
    start -= pd.Timedelta(days=start.day_of_week)
    series.index = pd.date_range(start, periods=len(series), freq="h")
    end = series.index[-1]
    src = make_source(fresh_engine, name="web")
    metric_id = make_metric(fresh_engine, src, name="Search", counts=series)
    hour_of = {name: epoch_hour(series.index[i]) for name, i in at.items()}
    # a metric's first pass records what its last hour raised: the first small spike
    run_hour(fresh_engine, settings, hour=hour_of["first"], worker="test")
    with session_scope(fresh_engine) as session:
        spikes = session.scalars(select(Insight).where(Insight.metric_id == metric_id)).all()
        assert [(i.kind, epoch_hour(i.detected_at)) for i in spikes] == [
            ("spike", hour_of["first"])
        ]
        give_feedback(
            session,
            workspace_id=src.workspace_id,
            insight_id=spikes[0].id,
            useful=False,
            now=datetime.now(UTC),
        )
    run_hour(fresh_engine, settings, hour=epoch_hour(end), worker="test")
    with session_scope(fresh_engine) as session:
        told = session.execute(
            select(Insight.kind, Insight.detected_at)
            .where(Insight.metric_id == metric_id)
            .order_by(Insight.detected_at)
        ).all()
    # the second small spike is not told; the large one is
    assert [(kind, epoch_hour(at)) for kind, at in told] == [
        ("spike", hour_of["first"]),
        ("spike", hour_of["large"]),
    ]
