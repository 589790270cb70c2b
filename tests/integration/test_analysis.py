"""The analyst's library reads what the service wrote and replays the same detector."""

from __future__ import annotations

import uuid

import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from lantern.analysis import Lantern
from lantern.config import Settings
from lantern.metrics.service import epoch_hour
from lantern.pipeline import run_hour
from tests.factories import (
    history_events,
    import_events,
    last_closed_hour,
    make_metric,
    make_source,
)
from tests.integration.test_pipeline import recent_end, rhythm_counts


def test_a_notebook_sees_the_metrics_series_replay_and_insights_of_the_service(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings
) -> None:
    src = make_source(fresh_engine)
    end = recent_end()
    checkout = rhythm_counts(end, peak=120, seed=11)
    checkout.iloc[-3:] = 0
    import_events(
        fresh_client,
        src.key,
        history_events(checkout, event="Checkout")
        + history_events(rhythm_counts(end, peak=60, seed=12), event="Pricing", kind="page"),
    )
    for hour in range(epoch_hour(end) - 3, epoch_hour(end) + 1):
        run_hour(fresh_engine, settings, hour=hour, worker="test")
    lantern = Lantern(fresh_engine)

    metrics = lantern.metrics()
    assert set(zip(metrics["kind"], metrics["name"], strict=True)) == {
        ("track", "Checkout"),
        ("total", "track"),
        ("page", "Pricing"),
        ("total", "page"),
    }
    assert int(metrics.loc[metrics["name"] == "Checkout", "events"].iloc[0]) == checkout.sum()

    series = lantern.series("Checkout")
    assert isinstance(series.index, pd.DatetimeIndex)
    assert series.index.freq == "h" and str(series.index.tz) == "UTC"
    assert series.sum() == checkout.sum()
    assert (series[checkout.index[-3] :] == 0).all()

    replayed = lantern.replay("Checkout")
    opened = replayed[replayed["status"] == "opened"]
    assert ("outage", "down") in set(zip(opened["kind"], opened["direction"], strict=True))
    assert pd.Timestamp(opened["at"].iloc[-1]) >= checkout.index[-3]

    fitted = lantern.decompose("Pricing")
    assert fitted.expected.index.equals(lantern.series("Pricing").index)
    assert len(lantern.plot("Checkout").axes) == 3

    insights = lantern.insights()
    # Pricing went on: Checkout's outage is told as a tracking break
    told = set(zip(insights["metric"], insights["kind"], insights["detected_as"], strict=True))
    assert ("Checkout", "tracking_break", "outage") in told


def test_a_replay_at_the_workspace_sensitivity_opens_the_insights_the_service_recorded(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings
) -> None:
    src = make_source(fresh_engine)
    end = recent_end()
    checkout = rhythm_counts(end, peak=120, seed=11)
    checkout.iloc[-3:] = 0
    pricing = rhythm_counts(end, peak=60, seed=12)
    pricing.iloc[-30:-26] *= 6
    import_events(
        fresh_client,
        src.key,
        history_events(checkout, event="Checkout")
        + history_events(pricing, event="Pricing", kind="page"),
    )
    # A backfilled source catches up on its history: every hour's insights are recorded.
    run_hour(fresh_engine, settings, hour=epoch_hour(end), worker="test", source_id=src.id)
    lantern = Lantern(fresh_engine)

    alerts = lantern.replay_alerts(source="web")
    recorded = lantern.insights(source="web")
    medium = alerts[alerts["sensitivity"] == "medium"]
    assert len(recorded) >= 4
    # the replay is the detector's: an insight told as a tracking break is its outage
    assert sorted(zip(medium["metric_id"], medium["kind"], medium["at"], strict=True)) == sorted(
        zip(recorded["metric_id"], recorded["detected_as"], recorded["detected_at"], strict=True)
    )
    assert int(medium["sent"].sum()) == int(recorded["grouped_under"].isna().sum())
    assert set(alerts["sensitivity"]) <= {"low", "medium", "high"}

    checkout_only = lantern.insights(metric="Checkout", feedback=False)
    assert set(checkout_only["metric"]) == {"Checkout"}
    assert "useful" not in checkout_only.columns
    assert {"useful", "feedback_at", "causes"} <= set(recorded.columns)
    assert lantern.insights(source="elsewhere").empty


def test_a_notebook_reads_an_average_metric_as_hourly_means_and_plots_it_as_an_average(
    engine: Engine,
) -> None:
    src = make_source(engine, name=f"site-{uuid.uuid4().hex[:8]}")
    index = pd.date_range(end=last_closed_hour(), periods=9 * 24, freq="h")
    loads = pd.Series(250.0 + (index.hour.to_numpy() % 5), index=index)
    loads.iloc[-2] = float("nan")  # an hour without a valued event
    make_metric(engine, src, name="Page Load", kind="mean", counts=loads)
    lantern = Lantern(engine)

    table = lantern.metrics(source=src.name)
    mine = table[table["name"] == "Page Load"]
    assert list(mine["measure"]) == ["average"]
    # an id straight from the table (a numpy integer) is a metric id
    assert lantern.info(mine.index[0]).series_kind == "mean"

    series = lantern.series(mine.index[0])
    assert series.iloc[:-2].tolist() == loads.iloc[:-2].tolist()
    assert pd.isna(series.iloc[-2])
    assert lantern.frame([mine.index[0]]).iloc[:-2, 0].tolist() == loads.iloc[:-2].tolist()
    figure = lantern.plot(mine.index[0], days=7)
    assert figure.axes[0].get_ylabel() == "average value"
    assert "average value" in figure.axes[0].get_title(loc="left")
