"""A metric trains for a week from its first data, whenever that data arrives."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, select

from lantern.db import session_scope
from lantern.metrics.models import Metric
from lantern.metrics.service import (
    add_to_buckets,
    bucket_upsert,
    first_hour_update,
)
from tests.factories import make_source


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
