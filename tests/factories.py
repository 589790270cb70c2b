"""Rows for tests: each test gets its own workspace, source and token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from lantern.breakdowns.service import add_default_dimensions
from lantern.db import session_scope
from lantern.workspaces.service import create_api_token, create_source, get_or_create_workspace


@dataclass(frozen=True)
class MadeSource:
    """A source created for one test, with its secrets in the clear."""

    id: int
    name: str
    key: str
    workspace_id: int
    workspace: str
    token: str


def make_source(engine: Engine, *, name: str = "web", workspace: str | None = None) -> MadeSource:
    """A new workspace (unique name) with one source and one API token."""
    workspace = workspace or f"ws-{uuid.uuid4().hex[:12]}"
    with session_scope(engine) as session:
        space = get_or_create_workspace(session, name=workspace)
        source, key = create_source(session, workspace=space, name=name)
        add_default_dimensions(session, source_id=source.id)
        _, token = create_api_token(session, workspace=space, name="tests")
        return MadeSource(source.id, name, key, space.id, workspace, token)


def history_events(
    counts: pd.Series, *, event: str = "Signed Up", kind: str = "track"
) -> list[dict[str, object]]:
    """One Segment event per counted occurrence, spread over each hour of `counts`."""
    import uuid as _uuid

    events: list[dict[str, object]] = []
    for hour, count in zip(pd.DatetimeIndex(counts.index), counts, strict=True):
        for i in range(int(count)):
            stamp = (hour + pd.Timedelta(seconds=int(i * 3600 / max(count, 1)))).isoformat()
            item: dict[str, object] = {
                "type": kind,
                "userId": "u",
                "timestamp": stamp,
                "messageId": str(_uuid.uuid4()),
            }
            if kind == "track":
                item["event"] = event
            else:
                item["name"] = event
            events.append(item)
    return events


def import_events(client: TestClient, key: str, events: list[dict[str, object]]) -> None:
    """Send events to /v1/import in batches, as a backfill would."""
    for i in range(0, len(events), 2000):
        response = client.post("/v1/import", json={"batch": events[i : i + 2000]}, auth=(key, ""))
        assert response.status_code == 200, response.text
        assert response.json()["rejected"] == [], response.json()["rejected"][:3]


def make_insight(engine: Engine, src: MadeSource, *, name: str = "Signed Up") -> int:
    """A metric with 14 days of hourly buckets and an open insight whose alert is queued."""
    from dataclasses import dataclass as _dataclass
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from lantern.insights.models import Insight
    from lantern.insights.service import MetricRef, record_events
    from lantern.metrics.models import Metric
    from lantern.metrics.service import add_to_buckets, epoch_hour

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    hours = np.arange(epoch_hour(end) - 14 * 24 + 1, epoch_hour(end) + 1)
    counts = (60 + 40 * np.sin(hours / 24 * 2 * np.pi)).astype(int)
    counts[-3:] //= 3

    @_dataclass(frozen=True)
    class Found:
        kind: str = "level_shift"
        direction: str = "down"
        start: datetime = end - timedelta(hours=2)
        detected_at: datetime = end
        observed: float = 20.0
        expected: float = 60.0
        lower: float = 45.0
        upper: float = 75.0
        relative_change: float = -0.66
        score: float = 8.0

    @_dataclass(frozen=True)
    class Event:
        status: str
        detection: Found

    with session_scope(engine) as session:
        metric = Metric(source_id=src.id, kind="track", name=name)
        session.add(metric)
        session.flush()
        add_to_buckets(
            session.connection(),
            {(metric.id, int(h)): (int(c), 0.0, 0.0) for h, c in zip(hours, counts, strict=True)},
        )
        record_events(
            session,
            metric=MetricRef(id=metric.id, source_id=src.id, workspace_id=src.workspace_id),
            events=[Event("opened", Found())],
            watch=None,
            now=end + timedelta(minutes=5),
        )
        insight = session.query(Insight).filter(Insight.metric_id == metric.id).one()
        return insight.id


def resolve_insight(engine: Engine, insight_id: int) -> None:
    """End an insight's episode the way the pipeline does, queueing the resolution."""
    from datetime import UTC, datetime

    from lantern.insights.models import Insight
    from lantern.notify.models import Notification

    with session_scope(engine) as session:
        insight = session.get(Insight, insight_id)
        assert insight is not None
        insight.status, insight.ended_at = "resolved", datetime.now(UTC)
        session.add(
            Notification(
                workspace_id=insight.workspace_id,
                insight_id=insight.id,
                purpose="resolution",
                sequence=1,
            )
        )


def last_closed_hour() -> pd.Timestamp:
    """The start of the last hour that has closed."""
    return pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)


def make_metric(
    engine: Engine,
    src: MadeSource,
    *,
    name: str = "Signed Up",
    kind: str = "track",
    counts: pd.Series | None = None,
    days: float = 14,
) -> int:
    """A metric with hourly buckets: `counts` (an hourly Series), else a daily cycle that
    ends in the last closed hour and began `days` ago. Value metrics store them as sums,
    average metrics as one valued event an hour (a NaN hour has none)."""
    import numpy as np

    from lantern.metrics.models import Metric
    from lantern.metrics.service import add_to_buckets, epoch_hour

    if counts is None:
        hours = int(days * 24)
        index = pd.date_range(end=last_closed_hour(), periods=hours, freq="h")
        steps = np.arange(hours)
        counts = pd.Series((60 + 40 * np.sin(steps / 24 * 2 * np.pi)).round(), index=index)
    value = kind in ("value", "mean")
    with session_scope(engine) as session:
        metric = Metric(source_id=src.id, kind=kind, name=name)
        session.add(metric)
        session.flush()
        add_to_buckets(
            session.connection(),
            {
                (metric.id, epoch_hour(t)): (
                    (1, float(c), float(c) ** 2) if value else (int(c), 0.0, 0.0)
                )
                for t, c in zip(pd.DatetimeIndex(counts.index), counts, strict=True)
                if (pd.notna(c) if kind == "mean" else c > 0)
            },
        )
        return metric.id


def add_insight(
    engine: Engine,
    src: MadeSource,
    metric_id: int,
    *,
    detected_at: pd.Timestamp,
    kind: str = "spike",
    direction: str = "up",
    status: str = "open",
    parent_id: int | None = None,
    start: pd.Timestamp | None = None,
) -> int:
    """An insight row as the pipeline writes it, for listings."""
    from lantern.insights.models import Insight

    at = detected_at.to_pydatetime()
    begun = start.to_pydatetime() if start is not None else at
    with session_scope(engine) as session:
        insight = Insight(
            workspace_id=src.workspace_id,
            metric_id=metric_id,
            fingerprint=f"{metric_id}:{kind}:{direction}",
            kind=kind,
            direction=direction,
            status=status,
            severity="high",
            start=begun,
            detected_at=at,
            updated_at=at,
            ended_at=at if status in ("resolved", "accepted") else None,
            observed=300.0,
            expected=100.0,
            lower=70.0,
            upper=130.0,
            relative_change=2.0,
            score=9.0,
            parent_id=parent_id,
        )
        session.add(insight)
        session.flush()
        return insight.id
