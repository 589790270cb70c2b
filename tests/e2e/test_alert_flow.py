"""End to end: eight weeks imported, the hourly job on a controlled clock, Slack told once."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from lantern.config import Settings
from lantern.db import session_scope
from lantern.metrics.service import epoch_hour, hour_index
from lantern.notify.connection import connect_with_token
from lantern.scheduler import detection_tick
from tests.factories import make_source
from tests.fakeslack import GOOD_TOKEN, FakeSlack

WEEKS = 8
DROP_HOURS = 4


def counts(index: pd.DatetimeIndex, peak: float, seed: int) -> np.ndarray:
    """A daily and weekly rhythm with Poisson noise."""
    hour = index.hour.to_numpy()
    daily = 0.35 + 0.65 * np.exp(-0.5 * ((hour - 15) / 4.5) ** 2)
    weekly = np.where(index.day_of_week.to_numpy() >= 5, 0.7, 1.0)
    return np.random.default_rng(seed).poisson(peak * daily * weekly)


def events(index: pd.DatetimeIndex, values: np.ndarray, kind: str, name: str) -> list[dict]:
    out: list[dict] = []
    field = "event" if kind == "track" else "name"
    for stamp, count in zip(index, values, strict=True):
        step = 3600 // max(int(count), 1)
        out.extend(
            {
                "type": kind,
                field: name,
                "anonymousId": "a",
                "timestamp": (stamp + pd.Timedelta(seconds=i * step)).isoformat(),
            }
            for i in range(int(count))
        )
    return out


@pytest.mark.slow
def test_an_injected_drop_is_one_slack_alert_with_its_chart_and_one_reply_when_over(
    fresh_client: TestClient, fresh_engine: Engine, settings: Settings, fake_slack: FakeSlack
) -> None:
    settings = settings.model_copy(update={"slack_base_url": fake_slack.api_url})
    src = make_source(fresh_engine)
    with session_scope(fresh_engine) as session:
        connect_with_token(
            session,
            workspace_id=src.workspace_id,
            bot_token=GOOD_TOKEN,
            channel="alerts",
            settings=settings,
        )
    end = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)
    index = pd.date_range(end - pd.Timedelta(weeks=WEEKS) + pd.Timedelta(hours=1), end, freq="h")
    # The drop starts at the latest 14:00 UTC that leaves eight quiet hours after it.
    drop_start = (end - pd.Timedelta(hours=DROP_HOURS + 8)).floor("D") + pd.Timedelta(hours=14)
    if drop_start > end - pd.Timedelta(hours=DROP_HOURS + 8):
        drop_start -= pd.Timedelta(days=1)
    checkout = counts(index, 150, seed=1)
    dropping = (index >= drop_start) & (index < drop_start + pd.Timedelta(hours=DROP_HOURS))
    checkout[dropping] = np.random.default_rng(9).poisson(checkout[dropping] * 0.05)
    batch = (
        events(index, checkout, "track", "Checkout")
        + events(index, counts(index, 120, seed=2), "track", "Search")
        + events(index, counts(index, 90, seed=3), "page", "Pricing")
    )
    for i in range(0, len(batch), 2500):
        response = fresh_client.post(
            "/v1/import", json={"batch": batch[i : i + 2500]}, auth=(src.key, "")
        )
        assert response.json()["accepted"] == len(batch[i : i + 2500])

    seen: dict[int, int] = {}
    first_hour = epoch_hour(drop_start) - 6
    for hour in range(first_hour, epoch_hour(end) + 1):
        tick = hour_index(hour + 1).to_pydatetime() + timedelta(minutes=5)
        detection_tick(fresh_engine, settings, now=tick)
        seen[hour] = len(fake_slack.top_level())

    [alert] = fake_slack.top_level()
    assert "Checkout" in alert["text"]
    alerted_at = min(hour for hour, n in seen.items() if n == 1)
    # Sent by the tick five minutes after the anomalous hour closed, in the drop's first hours.
    assert epoch_hour(drop_start) <= alerted_at < epoch_hour(drop_start) + 2
    assert len(fake_slack.uploads) == 1
    assert len(fake_slack.images(alert["ts"])) == 1  # the chart is in the alert itself
    [reply] = [m for m in fake_slack.replies(alert["ts"]) if not m.get("files")]
    assert "Checkout" in reply["text"]
