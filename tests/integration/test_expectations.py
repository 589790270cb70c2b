"""What the detector expected of each hour: stored by the hourly pass, read by every chart.

The dashboard's chart, the Slack alert's chart and the analysis API show the same expected
value and band for the same metric-hours, the ones the pass judged with; hours without a
stored row are replayed, to the same figures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, func, select

from lantern.analysis import connect
from lantern.config import Settings
from lantern.db import session_scope
from lantern.db.migrate import upgrade
from lantern.db.session import make_engine
from lantern.detect import replay_expected
from lantern.insights.expectations import replays
from lantern.insights.models import HourExpectation, Insight
from lantern.metrics.models import Bucket, Metric
from lantern.metrics.service import epoch_hour, hour_index, load_series
from lantern.notify.message import alert_series
from lantern.pipeline import clean_up, run_hour
from tests.factories import MadeSource, history_events, import_events, make_source
from tests.integration.test_pipeline import recent_end, rhythm_counts

BEFORE_EXPECTATIONS = "4d5e6f7a8b9c"
PASSES = 6


def bearer(src: MadeSource) -> dict[str, str]:
    return {"Authorization": f"Bearer {src.token}"}


def scored_source(
    client: TestClient, engine: Engine, settings: Settings
) -> tuple[MadeSource, int, int]:
    """A source whose Checkout goes silent in its last four hours, after `PASSES` passes
    (the first judges the metric's history, each next one its hour); with its first and
    last hours."""
    src = make_source(engine)
    broken = rhythm_counts(recent_end(), peak=120, seed=1)
    broken.iloc[-4:] = 0
    steady = rhythm_counts(recent_end(), peak=80, seed=2)
    import_events(
        client,
        src.key,
        history_events(broken, event="Checkout") + history_events(steady, event="Search"),
    )
    last = epoch_hour(broken.index[-1])
    for hour in range(last - PASSES + 1, last + 1):
        run_hour(engine, settings, hour=hour, worker="test")
    return src, epoch_hour(broken.index[0]), last


def metric_id(engine: Engine, source_id: int, name: str) -> int:
    with engine.connect() as connection:
        found = connection.scalar(
            select(Metric.id).where(
                Metric.source_id == source_id, Metric.kind == "track", Metric.name == name
            )
        )
    assert found is not None
    return int(found)


def stored(engine: Engine, metric: int) -> pd.DataFrame:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                HourExpectation.hour,
                HourExpectation.expected,
                HourExpectation.lower,
                HourExpectation.upper,
            )
            .where(HourExpectation.metric_id == metric)
            .order_by(HourExpectation.hour)
        ).all()
    frame = pd.DataFrame(rows, columns=["hour", "expected", "lower", "upper"])
    frame.index = pd.DatetimeIndex([hour_index(h) for h in frame.pop("hour")])
    return frame


def three_charts(
    client: TestClient, engine: Engine, src: MadeSource, insight: Insight, metric: int
) -> dict[str, pd.DataFrame]:
    """The alert's hours as the dashboard, the Slack alert and the analysis API show them."""
    with session_scope(engine) as session:
        found = session.get(Metric, metric)
        assert found is not None
        index, _, expected, lower, upper = alert_series(session, insight, found)
    slack = pd.DataFrame({"expected": expected, "lower": lower, "upper": upper}, index=index)
    start, end = index[0], index[-1] + pd.Timedelta(hours=1)
    response = client.get(
        f"/api/v1/metrics/{metric}/series",
        params={"start": start.isoformat(), "end": end.isoformat()},
        headers=bearer(src),
    )
    assert response.status_code == 200
    points = pd.DataFrame(response.json()["points"])
    points.index = pd.DatetimeIndex(pd.to_datetime(points.pop("t"), utc=True))
    dashboard = points[["expected", "lower", "upper"]].astype(float)
    url = engine.url.render_as_string(hide_password=False)
    analysis = connect(url).expected(metric, start=start, end=end)[["expected", "lower", "upper"]]
    return {"slack": slack, "dashboard": dashboard, "analysis": analysis}


def assert_same(charts: dict[str, pd.DataFrame], truth: pd.DataFrame) -> None:
    for name, chart in charts.items():
        assert list(chart.index) == list(truth.index), name
        # the dashboard's JSON rounds to six decimals
        np.testing.assert_allclose(chart.to_numpy(), truth.to_numpy(), rtol=1e-9, atol=1e-6)


def opened_insight(engine: Engine, metric: int) -> Insight:
    with session_scope(engine) as session:
        insight = session.scalars(
            select(Insight).where(
                Insight.metric_id == metric, Insight.fingerprint == f"{metric}:outage:down"
            )
        ).one()
        session.expunge(insight)
    return insight


def test_the_dashboard_the_slack_chart_and_the_analysis_api_show_the_stored_expectation(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings
) -> None:
    src, first, last = scored_source(fresh_client, fresh_engine, settings)
    checkout = metric_id(fresh_engine, src.id, "Checkout")
    kept = stored(fresh_engine, checkout)
    first_judged = hour_index(first + 7 * 24)
    # the first pass judged the metric's history after its training week, each next its hour
    assert kept.index[0] == first_judged and kept.index[-1] == hour_index(last)
    assert len(kept) == last - epoch_hour(first_judged) + 1
    assert (kept["lower"] <= kept["expected"]).all() and (kept["expected"] <= kept["upper"]).all()

    insight = opened_insight(fresh_engine, checkout)
    replays.clear()
    charts = three_charts(fresh_client, fresh_engine, src, insight, checkout)
    window = charts["slack"].index
    truth = kept.reindex(window)  # NaN during the training week
    assert window[-1] == pd.Timestamp(insight.detected_at)
    assert truth["expected"].notna().sum() == (kept.index <= window[-1]).sum()
    assert_same(charts, truth)
    # all read from the store: nothing was replayed
    assert len(replays) == 0


def test_the_pass_stores_what_a_replay_of_the_metric_expects(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings
) -> None:
    src, _, last = scored_source(fresh_client, fresh_engine, settings)
    search = metric_id(fresh_engine, src.id, "Search")
    kept = stored(fresh_engine, search)
    with fresh_engine.connect() as connection:
        first = connection.scalar(select(func.min(Bucket.hour)).where(Bucket.metric_id == search))
        assert first is not None
        series = load_series(
            connection,
            metric_ids=[search],
            start=hour_index(first),
            end=hour_index(last + 1),
            kinds={search: "track"},
        )[search]
    replayed = replay_expected(series, stagger=search % 24)
    again = pd.DataFrame(
        {"expected": replayed.expected, "lower": replayed.lower, "upper": replayed.upper}
    ).reindex(kept.index)
    np.testing.assert_allclose(kept.to_numpy(), again.to_numpy(), rtol=1e-9)


def test_hours_judged_before_the_store_existed_are_replayed_to_the_same_figures(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings
) -> None:
    src, _, last = scored_source(fresh_client, fresh_engine, settings)
    checkout = metric_id(fresh_engine, src.id, "Checkout")
    kept = stored(fresh_engine, checkout)
    insight = opened_insight(fresh_engine, checkout)
    # as an installation upgraded at the last pass: only that hour was stored
    with session_scope(fresh_engine) as session:
        session.execute(
            delete(HourExpectation).where(
                HourExpectation.metric_id == checkout, HourExpectation.hour < last
            )
        )
    replays.clear()
    charts = three_charts(fresh_client, fresh_engine, src, insight, checkout)
    assert_same(charts, kept.reindex(charts["slack"].index))
    assert len(replays) == 1  # one replay, shared by the three


def test_expectations_go_with_the_buckets_they_describe(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings
) -> None:
    src, _, last = scored_source(fresh_client, fresh_engine, settings)
    checkout = metric_id(fresh_engine, src.id, "Checkout")
    search = metric_id(fresh_engine, src.id, "Search")
    before = {m: stored(fresh_engine, m) for m in (checkout, search)}
    horizon = last - 24
    with session_scope(fresh_engine) as session:
        # retention took Checkout's buckets older than a day
        session.execute(delete(Bucket).where(Bucket.metric_id == checkout, Bucket.hour < horizon))
    clean_up(fresh_engine, settings, now=hour_index(last + 1).to_pydatetime())
    after = stored(fresh_engine, checkout)
    assert list(after.index) == [t for t in before[checkout].index if t >= hour_index(horizon)]
    pd.testing.assert_frame_equal(after, before[checkout].loc[hour_index(horizon) :])
    pd.testing.assert_frame_equal(stored(fresh_engine, search), before[search])


def test_an_installation_upgraded_with_history_charts_it_and_stores_from_its_next_pass(
    empty_database_url: str, settings: Settings
) -> None:
    from lantern.api.app import create_app
    from tests.integration.test_schema import _downgrade

    engine = make_engine(empty_database_url)
    try:
        # an installation from before the table, holding history: imported with today's
        # code (whose models need today's schema), then taken back to that revision
        upgrade(engine)
        with TestClient(create_app(settings, engine)) as client:
            src = make_source(engine)
            counts = rhythm_counts(recent_end(), peak=90, seed=5)
            import_events(client, src.key, history_events(counts, event="Checkout"))
        _downgrade(engine, BEFORE_EXPECTATIONS)
        upgrade(engine)
        last = epoch_hour(counts.index[-1])
        settings = settings.model_copy(
            update={"database_url": engine.url.render_as_string(hide_password=False)}
        )
        with TestClient(create_app(settings, engine)) as client:
            checkout = metric_id(engine, src.id, "Checkout")
            url = f"/api/v1/metrics/{checkout}/series"
            params = {"end": hour_index(last + 1).isoformat()}
            replayed = client.get(url, params=params, headers=bearer(src)).json()["points"]
            assert stored(engine, checkout).empty
            run_hour(engine, settings, hour=last, worker="test")
            read = client.get(url, params=params, headers=bearer(src)).json()["points"]
        assert not stored(engine, checkout).empty
        assert [p["expected"] for p in replayed][-24:] == pytest.approx(
            [p["expected"] for p in read][-24:], rel=1e-9
        )
        assert replayed[-1]["expected"] is not None
        _downgrade(engine, BEFORE_EXPECTATIONS)
        with engine.connect() as connection:
            kept = connection.scalar(select(Bucket.hour).where(Bucket.metric_id == checkout))
        assert kept is not None
    finally:
        engine.dispose()


def test_an_hour_closed_before_its_pass_is_charted_as_that_pass_then_stores_it(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings
) -> None:
    src, _, last = scored_source(fresh_client, fresh_engine, settings)
    search = metric_id(fresh_engine, src.id, "Search")
    url = f"/api/v1/metrics/{search}/series"
    params = {
        "start": hour_index(last - 47).isoformat(),
        "end": hour_index(last + 2).isoformat(),
    }
    replays.clear()
    before = fresh_client.get(url, params=params, headers=bearer(src)).json()["points"]
    assert len(replays) == 0  # judged from the saved state, not replayed
    unjudged = [p for p in before if pd.Timestamp(p["t"]) > hour_index(last)]
    assert len(unjudged) == 1 and unjudged[0]["expected"] is not None
    run_hour(fresh_engine, settings, hour=last + 1, worker="test")
    kept = stored(fresh_engine, search).loc[hour_index(last + 1)]
    after = fresh_client.get(url, params=params, headers=bearer(src)).json()["points"]
    assert after == before
    for name in ("expected", "lower", "upper"):
        assert unjudged[0][name] == pytest.approx(kept[name], rel=1e-9, abs=1e-6)


def test_deleting_a_source_takes_its_metrics_expectations(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings
) -> None:
    src, _, _ = scored_source(fresh_client, fresh_engine, settings)
    checkout = metric_id(fresh_engine, src.id, "Checkout")
    assert not stored(fresh_engine, checkout).empty
    deleted = fresh_client.delete(f"/api/v1/sources/{src.id}", headers=bearer(src))
    assert deleted.status_code == 204
    with fresh_engine.connect() as connection:
        left = connection.scalar(select(func.count()).select_from(HourExpectation))
    assert left == 0
