"""A metric trains for a week from its first data, whenever that data arrives."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from lantern.config import Settings
from lantern.db import session_scope
from lantern.metrics.models import Metric
from lantern.metrics.partitions import oldest_kept_hour
from lantern.metrics.service import (
    add_to_buckets,
    bucket_upsert,
    epoch_hour,
    first_hour_update,
    hour_index,
)
from lantern.pipeline import run_hour
from lantern.scheduler import cleanup_tick, partitions_tick
from tests.factories import MadeSource, history_events, import_events, make_source

WEEK = 7 * 24
# the metrics one track event feeds: its own count and the total of track calls
METRICS_OF_AN_EVENT = 2


def hours_of_events(first: int, last: int) -> pd.Series:
    """Two events an hour over hours [first, last]."""
    index = pd.date_range(hour_index(first), hour_index(last), freq="h")
    return pd.Series(2, index=index)


def scored_at(engine: Engine, settings: Settings, src: MadeSource, hour: int) -> int:
    """How many of the source's metrics the hourly pass of `hour` scores."""
    result = run_hour(engine, settings, hour=hour, worker="test", source_id=src.id)
    assert result is not None
    return result.metrics


def listed(client: TestClient, src: MadeSource) -> dict[str, dict[str, Any]]:
    """The source's metrics as the dashboard's list shows them, by label."""
    response = client.get(
        f"/api/v1/metrics?source_id={src.id}",
        headers={"Authorization": f"Bearer {src.token}"},
    )
    assert response.status_code == 200, response.text
    return {item["label"]: item for item in response.json()["items"]}


def test_a_metric_is_scored_from_the_pass_that_ends_its_first_week_of_data(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    src = make_source(engine)
    first = epoch_hour(datetime.now(UTC)) - 10 * 24
    import_events(client, src.key, history_events(hours_of_events(first, first + WEEK)))
    assert scored_at(engine, settings, src, first + WEEK - 2) == 0
    assert scored_at(engine, settings, src, first + WEEK - 1) == METRICS_OF_AN_EVENT
    assert listed(client, src)["Signed Up"]["status"] == "active"


def test_history_older_than_the_first_event_seen_starts_the_training_week_earlier(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    src = make_source(engine)
    first = epoch_hour(datetime.now(UTC)) - 8 * 24
    seen = first + 5 * 24  # three days ago: the metric is in training
    import_events(client, src.key, history_events(hours_of_events(seen, seen + 12)))
    before = listed(client, src)["Signed Up"]
    # then older history comes (on PostgreSQL through ingest's one-statement path: the
    # metrics are known by now)
    import_events(client, src.key, history_events(hours_of_events(first, first + 2)))
    after = listed(client, src)["Signed Up"]

    # first seen three days ago: four days of training left, until the older history came
    assert before["status"] == "training" and before["training_left_seconds"] > 3 * 86_400
    assert after["status"] == "active" and after["training_left_seconds"] == 0
    assert scored_at(engine, settings, src, first + WEEK - 2) == 0
    assert scored_at(engine, settings, src, first + WEEK - 1) == METRICS_OF_AN_EVENT


def test_data_arriving_after_the_first_hour_never_moves_it_later(engine: Engine) -> None:
    src = make_source(engine)
    with session_scope(engine) as session:
        metric = Metric(source_id=src.id, kind="track", name="Signed Up")
        session.add(metric)
        session.flush()
        add_to_buckets(session.connection(), {(metric.id, 500_010): (1, 0.0, 0.0)})
        add_to_buckets(session.connection(), {(metric.id, 500_020): (1, 0.0, 0.0)})
        add_to_buckets(session.connection(), {(metric.id, 500_003): (1, 0.0, 0.0)})
        add_to_buckets(session.connection(), {(metric.id, 500_007): (1, 0.0, 0.0)})
        session.refresh(metric)
        assert metric.first_hour == 500_003


@pytest.mark.parametrize("later_first", [True, False])
def test_two_writers_of_the_same_metrics_at_once_keep_the_earlier_first_hour(
    engine: Engine, later_first: bool
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes one transaction at a time")
    src = make_source(engine)
    with session_scope(engine) as session:
        metrics = [Metric(source_id=src.id, kind="track", name=f"E{i}") for i in range(3)]
        session.add_all(metrics)
        session.flush()
        ids = [m.id for m in metrics]
    early, late = 600_000, 600_050
    hours = (late, early) if later_first else (early, late)
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            with engine.begin() as connection:
                # its new buckets of the same metrics, in the other order of ids
                add_to_buckets(connection, {(m, hours[1]): (1, 0.0, 0.0) for m in reversed(ids)})
        except BaseException as exc:  # reported below
            errors.append(exc)

    with engine.begin() as connection:
        add_to_buckets(connection, {(m, hours[0]): (1, 0.0, 0.0) for m in ids})
        other = threading.Thread(target=second_writer)
        other.start()
        other.join(timeout=1.0)  # it waits for this transaction's first hours
    other.join(timeout=30)
    assert not other.is_alive() and errors == []
    with engine.connect() as connection:
        firsts = connection.scalars(select(Metric.first_hour).where(Metric.id.in_(ids))).all()
    assert firsts == [early] * 3


def test_two_writers_that_created_buckets_of_the_same_new_metrics_both_commit(
    engine: Engine,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes one transaction at a time")
    src = make_source(engine)
    with session_scope(engine) as session:
        metrics = [Metric(source_id=src.id, kind="track", name=f"E{i}") for i in range(3)]
        session.add_all(metrics)
        session.flush()
        ids = [m.id for m in metrics]
    buckets = bucket_upsert(
        "SELECT * FROM unnest(%s::int[], %s::int[], %s::bigint[], %s::float8[], %s::float8[])"
    )
    firsts = first_hour_update("SELECT * FROM unnest(%s::int[], %s::int[])")
    early, late = 700_000, 700_050
    with engine.connect() as first, engine.connect() as second:
        # each creates its buckets (its foreign keys share-lock the metrics), then each
        # moves their first hours, in the order ingest's one statement runs them
        for connection, hour in ((first, early), (second, late)):
            connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            connection.exec_driver_sql(buckets, (ids, [hour] * 3, [1] * 3, [0.0] * 3, [0.0] * 3))
        second.exec_driver_sql(firsts, (ids, [late] * 3))
        second.commit()
        first.exec_driver_sql(firsts, (ids, [early] * 3))
        first.commit()
    with engine.connect() as connection:
        found = connection.scalars(select(Metric.first_hour).where(Metric.id.in_(ids))).all()
    assert found == [early] * 3


def test_a_metric_stays_trained_when_its_first_weeks_expire_and_trains_again_once_all_did(
    fresh_client: TestClient, fresh_engine: Engine, tmp_path: Path
) -> None:
    engine = fresh_engine
    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(
        data_dir=tmp_path, database_url=url, scheduler_enabled=False, retention_days=30
    )
    now = datetime.now(UTC)
    expired = oldest_kept_hour(now, retention_days=30) - 20 * 24
    last = epoch_hour(now) - 1
    src = make_source(engine)
    with session_scope(engine) as session:
        steady = Metric(source_id=src.id, kind="track", name="Steady")
        gone = Metric(source_id=src.id, kind="track", name="Gone")
        session.add_all([steady, gone])
        session.flush()
        add_to_buckets(
            session.connection(),
            {(steady.id, expired): (1, 0.0, 0.0), (gone.id, expired): (1, 0.0, 0.0)}
            | {(steady.id, h): (5, 0.0, 0.0) for h in range(last - 9 * 24, last + 1)},
        )
    # the old weeks get partitions of their own on PostgreSQL, which the retention drops
    partitions_tick(engine, settings, now=hour_index(expired).to_pydatetime())
    cleanup_tick(engine, settings, now=now)

    shown = listed(fresh_client, src)
    assert shown["Steady"]["status"] == "active"
    assert shown["Gone"]["status"] == "training"
    assert scored_at(engine, settings, src, last) == 1  # Steady only
    # events come back: a week of training from them
    with engine.begin() as connection:
        add_to_buckets(connection, {(gone.id, last): (1, 0.0, 0.0)})
    assert listed(fresh_client, src)["Gone"]["training_left_seconds"] > 6 * 86_400
