"""`lantern demo`: a workspace with five weeks of realistic events, scored as if live.

The events go through the real ingest path (`/v1/import`, in process), and detection runs
hour by hour over the history exactly as the scheduler would have, so the newsfeed holds
what Lantern would have said. Anomalies are injected: a spike, a level shift, six silent
hours of the Docs page while the rest of the site goes on (told as a tracking break), and a
drop right after a LaunchDarkly flag change.
"""

from __future__ import annotations

import secrets
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from lantern.breakdowns.service import add_default_dimensions
from lantern.config import Settings
from lantern.db.session import session_scope
from lantern.metrics.service import epoch_hour
from lantern.workspaces.models import Source, Workspace

DEMO_WORKSPACE = "demo"
DEMO_SOURCE = "demo-web"
DEMO_EMAIL = "demo@lantern.local"


@dataclass(frozen=True)
class Stream:
    """One demo metric: a call type, a name, a volume and a rhythm."""

    kind: str  # track | page | screen | identify
    name: str
    peak: float
    shape: str = "consumer"  # consumer | business
    value: float | None = None  # mean of properties.revenue, for a value metric


STREAMS = (
    Stream("page", "Home", 240),
    Stream("page", "Pricing", 60, "business"),
    Stream("page", "Docs", 45, "business"),
    Stream("screen", "Feed", 150),
    Stream("screen", "Settings", 12),
    Stream("track", "Signed Up", 20),
    Stream("track", "Search", 90),
    Stream("track", "Add to Cart", 35),
    Stream("track", "Checkout Completed", 18, value=42.0),
    Stream("track", "Invite Sent", 3, "business"),
    Stream("identify", "identify", 25),
)
FLAG = "new-checkout"

# The clients the demo's visitors use, as the official libraries fill in `context`: the
# web pages come from analytics.js, the screens from the two apps, the rest from all three.
WEB: dict[str, object] = {
    "library": {"name": "analytics.js", "version": "next-1.70.0"},
    "locale": "en-US",
    "userAgent": "Mozilla/5.0",
}
IOS: dict[str, object] = {
    "app": {"name": "Demo", "version": "5.2", "build": "520"},
    "library": {"name": "analytics-ios", "version": "4.1.8"},
    "locale": "en-US",
    "os": {"name": "iOS", "version": "17.1"},
}
ANDROID: dict[str, object] = {
    "app": {"name": "Demo", "version": "5.1.3", "build": "5103"},
    "library": {"name": "analytics-android", "version": "4.11.3"},
    "locale": "de-DE",
    "os": {"name": "Android", "version": "14"},
}
# each client's share of a stream's events; checkouts come mostly from the iOS app, whose
# version 5.2 is the one the flag change breaks
SHARES = {"page": (1.0, 0.0, 0.0), "screen": (0.0, 0.6, 0.4), "checkout": (0.0, 0.85, 0.15)}
MIXED = (0.4, 0.35, 0.25)


def rhythm(index: pd.DatetimeIndex, shape: str) -> np.ndarray:
    """Relative volume by hour of day and day of week."""
    hour = index.hour.to_numpy()
    weekend = index.day_of_week.to_numpy() >= 5
    if shape == "business":
        daily = 0.08 + 0.92 * np.exp(-0.5 * ((hour - 14) / 3.5) ** 2)
        return daily * np.where(weekend, 0.3, 1.0)
    daily = 0.25 + 0.75 * np.exp(-0.5 * ((hour - 19) / 5.0) ** 2)
    return daily * np.where(weekend, 1.15, 1.0)


@dataclass(frozen=True)
class Plan:
    """The demo's timeline: the hours, and when each anomaly happens."""

    index: pd.DatetimeIndex
    flag_change: pd.Timestamp
    checkout_drop: tuple[pd.Timestamp, pd.Timestamp]
    search_spike: tuple[pd.Timestamp, pd.Timestamp]
    signup_shift: pd.Timestamp
    docs_outage: tuple[pd.Timestamp, pd.Timestamp]


def plan(end: pd.Timestamp, weeks: int) -> Plan:
    """Anomalies placed in the last two weeks, at business hours."""
    index = pd.date_range(end - pd.Timedelta(weeks=weeks) + pd.Timedelta(hours=1), end, freq="h")
    day = end.floor("D")
    flag = day - pd.Timedelta(days=3) + pd.Timedelta(hours=15)
    return Plan(
        index=index,
        flag_change=flag,
        checkout_drop=(flag + pd.Timedelta(hours=1), flag + pd.Timedelta(hours=7)),
        search_spike=(
            day - pd.Timedelta(days=9) + pd.Timedelta(hours=20),
            day - pd.Timedelta(days=9) + pd.Timedelta(hours=23),
        ),
        signup_shift=day - pd.Timedelta(days=6) + pd.Timedelta(hours=12),
        docs_outage=(
            day - pd.Timedelta(days=1) + pd.Timedelta(hours=10),
            day - pd.Timedelta(days=1) + pd.Timedelta(hours=16),
        ),
    )


def counts(stream: Stream, timeline: Plan, rng: np.random.Generator) -> np.ndarray:
    """Hourly counts of a stream, anomalies included."""
    index = timeline.index
    growth = np.exp(0.003 * np.arange(len(index)) / 24)
    lam = stream.peak * rhythm(index, stream.shape) * growth
    if stream.name == "Checkout Completed":
        lam[(index >= timeline.checkout_drop[0]) & (index < timeline.checkout_drop[1])] *= 0.15
    if stream.name == "Search":
        lam[(index >= timeline.search_spike[0]) & (index < timeline.search_spike[1])] *= 5
    if stream.name == "Signed Up":
        lam[index >= timeline.signup_shift] *= 2.2
    if stream.name == "Docs":
        lam[(index >= timeline.docs_outage[0]) & (index < timeline.docs_outage[1])] = 0
    return rng.poisson(rng.gamma(40.0, lam / 40.0))


def clients(
    stream: Stream, timeline: Plan, stamp: pd.Timestamp, count: int, rng: np.random.Generator
) -> list[dict[str, object]]:
    """The context of each of an hour's ``count`` events of ``stream``.

    During the checkout drop the checkouts still made come from the clients it spares: the
    flag change broke the iOS app's checkout, not Android's.
    """
    if stream.name == "Checkout Completed":
        shares = SHARES["checkout"]
        if timeline.checkout_drop[0] <= stamp < timeline.checkout_drop[1]:
            shares = (0.0, 0.0, 1.0)
    else:
        shares = SHARES.get(stream.kind, MIXED)
    picked = rng.choice(3, size=count, p=shares)
    return [(WEB, IOS, ANDROID)[int(k)] for k in picked]


def events(timeline: Plan, seed: int = 7) -> Iterator[dict[str, object]]:
    """Every demo event, as a Segment call."""
    rng = np.random.default_rng(seed)
    # who sent each event is drawn apart, so that the counts stay those of `counts`
    who = np.random.default_rng(seed + 1)
    for stream in STREAMS:
        for stamp, count in zip(timeline.index, counts(stream, timeline, rng), strict=True):
            contexts = clients(stream, timeline, stamp, int(count), who)
            for i in range(int(count)):
                moment = (stamp + pd.Timedelta(seconds=int(3599 * (i + 0.5) / count))).isoformat()
                event: dict[str, object] = {
                    "type": stream.kind,
                    "timestamp": moment,
                    "anonymousId": f"visitor-{i}",
                    "messageId": str(uuid.uuid4()),
                    "context": contexts[i],
                }
                if stream.kind == "page":
                    path = "/" if stream.name == "Home" else f"/{stream.name.lower()}"
                    event["context"] = {**contexts[i], "page": {"path": path}}
                if stream.kind == "track":
                    event["event"] = stream.name
                    if stream.value is not None:
                        event["properties"] = {
                            "revenue": round(float(rng.gamma(4, stream.value / 4)), 2)
                        }
                elif stream.kind in ("page", "screen"):
                    event["name"] = stream.name
                yield event
    # LaunchDarkly's export: evaluations of the checkout flag, whose version changes.
    for stamp in timeline.index:
        version = 4 if stamp >= timeline.flag_change else 3
        for i in range(int(rng.poisson(30 * rhythm(pd.DatetimeIndex([stamp]), "consumer")[0]))):
            yield {
                "type": "track",
                "event": "feature",
                "userId": f"ld-{i}",
                "timestamp": (stamp + pd.Timedelta(seconds=60 * i % 3600)).isoformat(),
                "messageId": str(uuid.uuid4()),
                "properties": {
                    "key": FLAG,
                    "environment": "production",
                    "project": "web",
                    "value": version == 4,
                    "variation": 1,
                    "flagVersion": version,
                },
            }


def existing(engine: Engine) -> int | None:
    """The demo workspace's id, if a demo was already made in this database."""
    with session_scope(engine) as session:
        return session.scalar(select(Workspace.id).where(Workspace.name == DEMO_WORKSPACE))


@dataclass(frozen=True, slots=True)
class Demo:
    """What `make_demo` made: where to log in, the source's key, and what it found."""

    workspace_id: int
    source_id: int
    api_key: str
    email: str
    password: str
    events: int
    insights: int


def make_demo(
    engine: Engine,
    settings: Settings,
    *,
    weeks: int = 5,
    progress: Callable[[str, int, int], None] | None = None,
) -> Demo:
    """Create the demo source, import its history and score it hour by hour."""
    with warnings.catch_warnings():
        # Starlette asks test suites to move to httpx2; the demo only borrows the client
        # to post through the real routes in process, and its user should not see that
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    from lantern.accounts.service import create_user
    from lantern.api.app import create_app
    from lantern.pipeline import run_hour
    from lantern.workspaces.service import create_source, get_or_create_workspace

    report = progress or (lambda _stage, _done, _total: None)
    password = secrets.token_urlsafe(9)
    with session_scope(engine) as session:
        workspace = get_or_create_workspace(
            session, name=DEMO_WORKSPACE, sensitivity=settings.sensitivity
        )
        source, key = create_source(session, workspace=workspace, name=DEMO_SOURCE)
        add_default_dimensions(session, source_id=source.id)
        create_user(session, workspace=workspace, email=DEMO_EMAIL, password=password)
        source_id, workspace_id = source.id, workspace.id
    end = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)
    timeline = plan(end, weeks)
    batch: list[dict[str, object]] = []
    sent = 0
    quiet = settings.model_copy(update={"scheduler_enabled": False})
    # The real ingest path, in process: the same routes a Segment source posts to.
    with TestClient(create_app(quiet, engine)) as client:

        def flush() -> None:
            nonlocal sent
            response = client.post("/v1/import", json={"batch": batch}, auth=(key, ""))
            response.raise_for_status()
            sent += len(batch)
            batch.clear()
            report("events", sent, 0)

        for event in events(timeline):
            batch.append(event)
            if len(batch) == 1000:
                flush()
        if batch:
            flush()
    # One pass replays each metric's history hour by hour, as the scheduler would have.
    report("scoring", 0, len(timeline.index))
    scored = run_hour(engine, settings, hour=epoch_hour(end), worker="demo", source_id=source_id)
    found = scored.insights if scored is not None else 0
    return Demo(
        workspace_id=workspace_id,
        source_id=source_id,
        api_key=key,
        email=DEMO_EMAIL,
        password=password,
        events=sent,
        insights=found,
    )


__all__ = [
    "DEMO_EMAIL",
    "DEMO_SOURCE",
    "DEMO_WORKSPACE",
    "Demo",
    "Source",
    "existing",
    "make_demo",
]
