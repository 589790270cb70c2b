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


def closed_hour_at(hour: int) -> pd.Timestamp:
    """The start of the latest closed hour that begins at `hour`:00 UTC: series that end there
    put their episodes at the same hours of the day whenever the test runs."""
    last = last_closed_hour()
    return last - pd.Timedelta(hours=(last.hour - hour) % 24)


def make_metric(
    engine: Engine,
    src: MadeSource,
    *,
    name: str = "Signed Up",
    kind: str = "track",
    counts: pd.Series | None = None,
    days: float = 14,
    events: pd.Series | None = None,
    within: pd.Series | None = None,
) -> int:
    """A metric with hourly buckets: `counts` (an hourly Series), else a daily cycle that
    ends in the last closed hour and began `days` ago. Value metrics store them as sums,
    average metrics as one valued event an hour (a NaN hour has none), or, with `events`
    (and `within`, the variance of their values in the hour; NaN for one event), as that
    many events whose values average `counts`."""
    import numpy as np

    from lantern.metrics.models import Metric
    from lantern.metrics.service import add_to_buckets, epoch_hour

    if counts is None:
        hours = int(days * 24)
        index = pd.date_range(end=last_closed_hour(), periods=hours, freq="h")
        steps = np.arange(hours)
        counts = pd.Series((60 + 40 * np.sin(steps / 24 * 2 * np.pi)).round(), index=index)
    value = kind in ("value", "mean")
    n = pd.Series(1.0, index=counts.index) if events is None else events.reindex(counts.index)
    spread = pd.Series(0.0, index=counts.index) if within is None else within.reindex(counts.index)

    def bucket(c: float, k: float, s2: float) -> tuple[int, float, float]:
        if not value:
            return int(c), 0.0, 0.0
        # n values averaging c, of sample variance s2: sum n c, sum of squares (n-1) s2 + n c^2
        return int(k), k * c, (k - 1) * (0.0 if k < 2 else s2) + k * c * c

    with session_scope(engine) as session:
        metric = Metric(source_id=src.id, kind=kind, name=name)
        session.add(metric)
        session.flush()
        add_to_buckets(
            session.connection(),
            {
                (metric.id, epoch_hour(t)): bucket(float(c), float(k), float(s2))
                for t, c, k, s2 in zip(
                    pd.DatetimeIndex(counts.index), counts, n, spread, strict=True
                )
                if (pd.notna(c) and k > 0 if kind == "mean" else c > 0)
            },
        )
        return metric.id


def average_checkouts(
    index: pd.DatetimeIndex,
    *,
    seed: int,
    odd_hour: pd.Timestamp | None = None,
    shift_from: pd.Timestamp | None = None,
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """A checkout's average value by hour of `index`, the checkouts behind each hour, and
    the variance of their values within it (NaN for one).

    About 250 checkouts an hour from 08:00 to 22:59 UTC, 30 in the hours around them, one
    to three at night (01:00-05:59; an hour without one has no average). A checkout's
    value is gamma-distributed, its spread half its mean, around 40 with a daily cycle of
    10%. `odd_hour` holds one checkout worth 3.2 times the hour's average; from
    `shift_from` on, every checkout is worth half as much again.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    hour = index.hour.to_numpy()
    night = (hour >= 1) & (hour <= 5)
    busy = (hour >= 8) & (hour <= 22)
    events = rng.poisson(np.where(busy, 250.0, np.where(night, 1.5, 30.0)))
    events = np.where(night, np.minimum(events, 3), events)
    level = 40.0 * (1 + 0.1 * np.sin((hour - 8) / 24 * 2 * np.pi))
    if shift_from is not None:
        level = np.where(index >= shift_from, 1.5 * level, level)
    average, within = np.full(len(index), np.nan), np.full(len(index), np.nan)
    for i in np.flatnonzero(events):
        values = rng.gamma(4.0, level[i] / 4.0, size=events[i])
        if odd_hour is not None and index[int(i)] == odd_hour:
            values, events[i] = np.array([3.2 * level[i]]), 1
        average[i] = values.mean()
        if len(values) > 1:
            within[i] = values.var(ddof=1)
    return (
        pd.Series(average, index=index),
        pd.Series(events.astype(float), index=index),
        pd.Series(within, index=index),
    )


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
    tracking_break: dict[str, object] | None = None,
) -> int:
    """An insight row as the pipeline writes it, for listings."""
    from lantern.insights.models import Insight

    at = detected_at.to_pydatetime()
    begun = start.to_pydatetime() if start is not None else at
    with session_scope(engine) as session:
        insight = Insight(
            workspace_id=src.workspace_id,
            metric_id=metric_id,
            # a tracking break keeps the fingerprint of the kind its detector found
            fingerprint=f"{metric_id}:{(tracking_break or {}).get('detected_as', kind)}:"
            f"{direction}",
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
            tracking_break=tracking_break,
        )
        session.add(insight)
        session.flush()
        return insight.id


def breakdown_counts(
    shares: dict[str, float],
    *,
    change: dict[str, float] | None = None,
    new: dict[str, float] | None = None,
    weeks: float = 4,
    episode_hours: int = 4,
    rate: float = 400.0,
    seed: int = 0,
    dimension: str = "app_version",
    end: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, pd.Timestamp]:
    """A dimension's hourly counts per value (Poisson, with a daily rhythm) and where its
    episode starts: `episode_hours` that end at `end` (the last closed hour), in which each
    value's rate is multiplied by 1 + `change[value]` and each of `new` appears with that
    share of `rate`. Returns the frame (columns named by `dimension`) and the first hour of
    the episode: the truth a ranking of the values is tested against."""
    import numpy as np

    end = end if end is not None else last_closed_hour()
    index = pd.date_range(end=end, periods=int(weeks * 7 * 24), freq="h")
    start = index[-episode_hours]
    rhythm = 0.6 + 0.4 * np.sin(index.hour.to_numpy() / 24 * 2 * np.pi)
    episode = np.asarray(index >= start)
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for value, share in shares.items():
        lam = rate * share * rhythm * np.where(episode, 1 + (change or {}).get(value, 0.0), 1.0)
        columns[value] = rng.poisson(lam).astype(float)
    for value, share in (new or {}).items():
        columns[value] = np.where(episode, rng.poisson(rate * share * rhythm), 0).astype(float)
    frame = pd.DataFrame(columns, index=index)
    frame.columns.name = dimension
    return frame, start


def add_breakdown(engine: Engine, src: MadeSource, metric_id: int, frame: pd.DataFrame) -> None:
    """Store a dimension's hourly counts per value (`frame`, columns named by the dimension,
    one of the source's) for a metric, as ingest would have counted them."""
    from sqlalchemy import select

    from lantern.breakdowns.models import BreakdownDimension
    from lantern.breakdowns.service import add_to_breakdowns, resolve_values
    from lantern.metrics.service import epoch_hour

    with session_scope(engine) as session:
        connection = session.connection()
        dimension_id = connection.scalar(
            select(BreakdownDimension.id).where(
                BreakdownDimension.source_id == src.id,
                BreakdownDimension.name == frame.columns.name,
            )
        )
        assert dimension_id is not None, f"the source has no dimension {frame.columns.name}"
        found, _ = resolve_values(connection, wanted={dimension_id: [str(c) for c in frame]})
        add_to_breakdowns(
            connection,
            {
                (found[(dimension_id, str(value))], metric_id, epoch_hour(hour)): (int(n), 0, 0.0)
                for value in frame.columns
                for hour, n in zip(pd.DatetimeIndex(frame.index), frame[value], strict=True)
                if n > 0
            },
        )


def open_insight(
    engine: Engine,
    src: MadeSource,
    metric_id: int,
    *,
    start: pd.Timestamp,
    detected_at: pd.Timestamp,
    direction: str = "down",
    relative_change: float = -0.5,
    kind: str = "level_shift",
) -> int:
    """An insight of `kind` opened the way the hourly pass opens one (`record_events`),
    its alert queued: with its root cause when the metric has breakdowns."""
    from dataclasses import dataclass as _dataclass
    from datetime import UTC, datetime

    from sqlalchemy import select

    from lantern.insights.models import Insight
    from lantern.insights.service import MetricRef, record_events

    @_dataclass(frozen=True)
    class Found:
        kind: str
        direction: str
        start: datetime
        detected_at: datetime
        observed: float
        expected: float
        lower: float
        upper: float
        relative_change: float
        score: float

    @_dataclass(frozen=True)
    class Event:
        status: str
        detection: Found

    found = Found(
        kind=kind,
        direction=direction,
        start=start.to_pydatetime(),
        detected_at=detected_at.to_pydatetime(),
        observed=100 * (1 + relative_change),
        expected=100.0,
        lower=80.0,
        upper=120.0,
        relative_change=relative_change,
        score=8.0,
    )
    with session_scope(engine) as session:
        record_events(
            session,
            metric=MetricRef(id=metric_id, source_id=src.id, workspace_id=src.workspace_id),
            events=[Event("opened", found)],
            watch=None,
            now=datetime.now(UTC),  # its alert is due at once
        )
        insight_id = session.scalar(
            select(Insight.id).where(Insight.metric_id == metric_id).order_by(Insight.id.desc())
        )
        assert insight_id is not None
        return int(insight_id)


def open_story(
    engine: Engine,
    src: MadeSource,
    metric_ids: list[int],
    *,
    start: pd.Timestamp,
    detected_at: pd.Timestamp,
    kind: str = "outage",
    direction: str = "down",
) -> list[int]:
    """Insights of `kind` for each metric, opened in the same hour as the hourly pass opens
    them and grouped into one story with one alert queued; returns them, the leader first."""
    from dataclasses import dataclass as _dataclass
    from datetime import datetime

    from sqlalchemy import select

    from lantern.insights.models import Insight
    from lantern.insights.service import MetricRef, group_and_alert, record_events

    @_dataclass(frozen=True)
    class Found:
        kind: str
        direction: str
        start: datetime
        detected_at: datetime
        observed: float = 0.0
        expected: float = 100.0
        lower: float = 80.0
        upper: float = 120.0
        relative_change: float = -1.0
        score: float = 9.0

    @_dataclass(frozen=True)
    class Event:
        status: str
        detection: Found

    at = detected_at.to_pydatetime()
    found = Found(kind=kind, direction=direction, start=start.to_pydatetime(), detected_at=at)
    with session_scope(engine) as session:
        for metric_id in metric_ids:
            record_events(
                session,
                metric=MetricRef(id=metric_id, source_id=src.id, workspace_id=src.workspace_id),
                events=[Event("opened", found)],
                watch=None,
                now=at,
                queue_alerts=False,
            )
        group_and_alert(session, detected_at=at, now=at)
        rows = session.scalars(
            select(Insight.id)
            .where(Insight.metric_id.in_(metric_ids), Insight.detected_at == at)
            .order_by(Insight.parent_id.is_not(None), Insight.id)
        ).all()
        return list(rows)


def rhythm(end: pd.Timestamp, *, days: float = 10, peak: float = 120.0, seed: int = 0) -> pd.Series:
    """Poisson hourly counts with a daily rhythm over `days` days ending at hour `end`."""
    import numpy as np

    index = pd.date_range(end=end, periods=int(days * 24), freq="h")
    daily = 0.55 + 0.45 * np.sin((index.hour.to_numpy() - 6) / 24 * 2 * np.pi)
    return pd.Series(np.random.default_rng(seed).poisson(peak * daily), index=index)


def make_events(
    engine: Engine, src: MadeSource, counts: dict[str, pd.Series], *, kind: str = "track"
) -> dict[str, int]:
    """A metric per name (`counts`: its hourly counts, NaN or 0 where it sent nothing) and
    the source's total of that call type, as ingest would have counted them; their ids."""
    total = pd.concat(counts.values(), axis=1).fillna(0).sum(axis=1)
    ids = {
        name: make_metric(engine, src, name=name, kind=kind, counts=series.fillna(0))
        for name, series in counts.items()
    }
    ids[kind] = make_metric(engine, src, name=kind, kind="total", counts=total)
    return ids
