"""One hourly cycle for all trained metrics: load, detect, store what the detector expected,
record insights, queue notifications.

`run_hour` is what the scheduler, the end-to-end tests and `lantern demo` call, with the
hour they mean. The detection itself is `scoring.score_partition`, a pure function over
picklable partitions, run inline, in a process pool or on a Dask cluster
(`LANTERN_DETECT_EXECUTOR`); its outcomes are recorded here, by the process that claimed
the hour.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd
from sqlalchemy import Connection, Engine, delete, func, or_, select, update
from sqlalchemy.orm import Session

from lantern.breakdowns.alerts import FILL_HOURS, sync_value_metrics, watching
from lantern.config import Settings
from lantern.db.dialect import fetch_all, insert_for
from lantern.db.session import session_scope
from lantern.insights.expectations import forget_unbucketed, record_expectations
from lantern.insights.incidents import holding_metrics
from lantern.insights.models import DetectionRun, MetricWatch
from lantern.insights.service import (
    MetricRef,
    feedback_raised,
    group_and_alert,
    queue_alerts,
    queue_story_ends,
    record_events,
    save_states,
)
from lantern.metrics.models import Metric
from lantern.metrics.service import epoch_hour, hour_index, load_hourly
from lantern.scoring import Outcome, Partition, Scored, partition_mapper, score_partition
from lantern.workspaces.models import Source, Workspace

if TYPE_CHECKING:
    from lantern.detect import JudgedHours

log = logging.getLogger(__name__)

PARTITION = 500
TRAINING_HOURS = 7 * 24
MAX_CATCH_UP_HOURS = 7 * 24
# A claimed hour whose pass has not finished after this long is taken for dead and re-run
# (a pass of 100,000 metrics takes seconds; one that died holds its claim forever).
STALE_CLAIM = timedelta(minutes=30)


@dataclass
class RunResult:
    """What one hourly pass did."""

    hour: int
    metrics: int = 0
    insights: int = 0
    failures: int = 0
    alerts: int = 0
    failed_metrics: list[int] = field(default_factory=list)


class MetricRow(NamedTuple):
    """A trained metric as the pass reads it: whose it is, how it is judged, since when, and
    the last hour it was scored (None before its first pass)."""

    id: int
    kind: str
    source_id: int
    workspace_id: int
    sensitivity: str
    first_hour: int
    scored_hour: int | None
    has_state: bool


def _claim(engine: Engine, hour: int, worker: str, now: datetime) -> bool:
    """Take the run for `hour`, or a claim of it that went stale; False when someone has it."""
    with engine.begin() as connection:
        claimed = connection.execute(
            insert_for(connection, DetectionRun)
            .values(hour=hour, claimed_by=worker, started_at=now)
            .on_conflict_do_nothing()
            .returning(DetectionRun.hour)
        ).first()
        if claimed is not None:
            return True
        taken = connection.execute(
            update(DetectionRun)
            .where(
                DetectionRun.hour == hour,
                DetectionRun.finished_at.is_(None),
                DetectionRun.started_at < now - STALE_CLAIM,
            )
            .values(claimed_by=worker, started_at=now)
        )
    return bool(taken.rowcount == 1)


def _trained_metrics(session: Session, hour: int, source_id: int | None) -> list[MetricRow]:
    """Metrics with at least the training window of data before `hour` not yet scored at
    `hour`, source by source, with their saved state's last hour (one query).

    Each metric's first hour is read from its row (`Metric.first_hour`, kept by every write
    of buckets), so the pass reads the metrics table, whatever the buckets hold. A pass
    re-run after one that died leaves alone what that one already scored.
    """
    query = (
        select(
            Metric.id,
            Metric.kind,
            Metric.source_id,
            Source.workspace_id,
            Workspace.sensitivity,
            Metric.first_hour,
            MetricWatch.scored_hour,
            MetricWatch.state.is_not(None),
        )
        .join(Source, Source.id == Metric.source_id)
        .join(Workspace, Workspace.id == Source.workspace_id)
        .outerjoin(MetricWatch, MetricWatch.metric_id == Metric.id)
        .where(
            Metric.first_hour <= hour + 1 - TRAINING_HOURS,
            or_(MetricWatch.scored_hour.is_(None), MetricWatch.scored_hour < hour),
        )
        # A source's metrics come together: its insights are recorded and grouped at once;
        # and a workspace's sources, whose incidents of one hour are told as one.
        .order_by(Source.workspace_id, Metric.source_id, Metric.id)
    )
    if source_id is not None:
        query = query.where(Metric.source_id == source_id)
    rows = fetch_all(session.connection(), query)
    return [
        MetricRow(m, kind, src, ws, sens, first, scored, bool(has))
        for m, kind, src, ws, sens, first, scored, has in rows
    ]


def run_hour(
    engine: Engine,
    settings: Settings,
    *,
    hour: int,
    worker: str,
    now: datetime | None = None,
    source_id: int | None = None,
) -> RunResult | None:
    """Score closed hour `hour` (epoch hours) for every trained metric, once per database.

    The steps: claim the hour; read the metrics due and their saved states; score them in
    partitions (`score_partition`, on the configured executor); for each workspace, in one
    transaction, save its detectors' states and what they expected of the hours they
    judged (`insights.expectations`), record its insights source by source, and queue
    their alerts (grouped into stories, and its sources' incidents of one hour into one)
    and the ends of the incidents it closed; then mark the hour done. A pass that dies
    leaves each workspace either wholly recorded or untouched, and the next pass takes over
    what it left.

    With `source_id`, only that source's metrics are scored and the hour is not claimed:
    that is how a backfilled source (`lantern demo`) catches up on its history, whose
    insights are grouped into stories but not sent.
    """
    started = time.perf_counter()
    stamp = hour_index(hour).isoformat()
    claimed_at = now or pd.Timestamp.now(tz="UTC").to_pydatetime()
    if source_id is None and not _claim(engine, hour, worker, claimed_at):
        log.debug("hourly pass skipped: hour=%s worker=%s claimed elsewhere", stamp, worker)
        return None
    moment = now or hour_index(hour + 1).to_pydatetime()
    _sync_value_metrics(engine, settings, hour)
    with session_scope(engine) as session:
        metrics = _trained_metrics(session, hour, source_id)
        # the metrics whose new normal a source-wide incident holds (a live pass only: a
        # backfilled source's history is scored in one go)
        holding = (
            holding_metrics(session, at=hour_index(hour).to_pydatetime())
            if source_id is None
            else set()
        )
    result = RunResult(hour=hour)
    scored = _score(engine, settings, metrics, holding, hour)
    by_id = {row.id: row for row in metrics}
    for _, of_workspace in groupby(scored, key=lambda one: by_id[one.metric_id].workspace_id):
        with session_scope(engine) as session:
            opened: list[datetime] = []
            for _, outcomes in groupby(
                of_workspace, key=lambda one: by_id[one.metric_id].source_id
            ):
                of_source = [(by_id[outcome.metric_id], outcome) for outcome in outcomes]
                opened_here = _record(session, of_source, hour, moment, source_id, result)
                opened += opened_here
                if source_id is not None:
                    for at in opened_here:
                        group_and_alert(session, detected_at=at, now=moment, queue=False)
                else:
                    queue_story_ends(session, source_id=of_source[0][0].source_id, now=moment)
            if source_id is None and opened:
                # once every source of the workspace is recorded: its sources' incidents of
                # one hour are told as one (`insights.incidents.join_workspace_incidents`)
                result.alerts += queue_alerts(session, since=_alert_horizon(hour), now=moment)
    if source_id is None:
        _finish(engine, hour, result, moment)
    _log_pass(result, stamp, worker, source_id, time.perf_counter() - started)
    return result


def _sync_value_metrics(engine: Engine, settings: Settings, hour: int) -> None:
    """Bring the metrics of watched breakdown values up to date before they are scored
    (`breakdowns.alerts`): one query when no metric has alerts per value.

    Each pass copies the last FILL_HOURS again (late events); the pass of each day's first
    hour copies the whole late horizon.
    """
    with engine.connect() as connection:
        if not watching(connection):
            return
    back = FILL_HOURS
    if hour % 24 == 0:
        back = max(back, int(settings.late_horizon_days * 24) + 1)
    with session_scope(engine) as session:
        synced = sync_value_metrics(session.connection(), since=hour + 1 - back)
    if synced.created or synced.swept:
        log.info("breakdown value metrics: created=%d deleted=%d", synced.created, synced.swept)


def _score(
    engine: Engine,
    settings: Settings,
    metrics: list[MetricRow],
    holding: set[int],
    hour: int,
) -> Iterator[Outcome]:
    """Each metric's outcome, in the order of `metrics`, scored partition by partition."""
    mapper = partition_mapper(settings)
    parts = (
        _partition(engine, metrics[i : i + PARTITION], holding, hour)
        for i in range(0, len(metrics), PARTITION)
    )
    for outcomes in mapper(score_partition, parts):
        yield from outcomes


def _partition(engine: Engine, part: list[MetricRow], holding: set[int], hour: int) -> Partition:
    """A partition's metrics with their saved states, and their values up to `hour`: the
    states in one query, the values in another (`load_hourly`, with the events behind each
    hour of an average metric); `holding` marks those whose new normal a source-wide
    incident holds."""

    # A metric scored before needs the fit window before its next hour; a new one replays
    # its whole history once, as `lantern replay` would.
    def needed(row: MetricRow) -> int:
        if not row.has_state or row.scored_hour is None:
            return row.first_hour
        return max(row.first_hour, row.scored_hour + 1 - HISTORY_HOURS)

    start = min(needed(row) for row in part)
    ids = [row.id for row in part]
    with engine.connect() as connection:
        states = _states(connection, [row.id for row in part if row.has_state])
        hourly = load_hourly(
            connection,
            metric_ids=ids,
            start=hour_index(start),
            end=hour_index(hour + 1),
            kinds={row.id: row.kind for row in part},
        )
        raised = feedback_raised(connection, ids)
    return Partition(
        hour=hour,
        metrics=tuple(
            Scored(
                metric_id=row.id,
                kind=row.kind,
                sensitivity=row.sensitivity,
                first_hour=row.first_hour,
                state=states.get(row.id),
                raised=raised.get(row.id, ()),
                holding=row.id in holding,
            )
            for row in part
        ),
        frame=hourly.values,
        counts=hourly.counts if len(hourly.counts.columns) else None,
        within=hourly.within if len(hourly.within.columns) else None,
    )


def _states(connection: Connection, metric_ids: list[int]) -> dict[int, bytes]:
    """The saved detector states of `metric_ids`, read in one query."""
    if not metric_ids:
        return {}
    rows = fetch_all(
        connection,
        select(MetricWatch.metric_id, MetricWatch.state).where(
            MetricWatch.metric_id.in_(metric_ids), MetricWatch.state.is_not(None)
        ),
    )
    return {metric_id: bytes(state) for metric_id, state in rows}


def _record(
    session: Session,
    outcomes: list[tuple[MetricRow, Outcome]],
    hour: int,
    moment: datetime,
    source_id: int | None,
    result: RunResult,
) -> list[datetime]:
    """Save each metric's new state, what it expected of the hours it judged, and record its
    episode events as insights.

    States and expectations are written in bulk (`save_states`, `record_expectations`);
    only the metrics with news go through the insights one by one. Returns the detection
    hours at which insights opened, oldest first. Nothing is queued here
    (`queue_alerts=False`): alerts are queued once the whole workspace is recorded, so that
    a source's insights of one hour are told as one story, and its sources' incidents of
    one hour as one incident.
    """
    opened: set[datetime] = set()
    judged: list[tuple[int, JudgedHours]] = []
    states: list[tuple[int, bytes | None]] = []
    eventful: list[tuple[MetricRow, Outcome]] = []
    for row, outcome in outcomes:
        result.metrics += 1
        if outcome.error is not None:
            result.failures += 1
            result.failed_metrics.append(row.id)
            log.warning("metric %s skipped at hour %s: %s", row.id, hour, outcome.error)
            continue
        states.append((row.id, outcome.state))
        if outcome.judged is not None:
            judged.append((row.id, outcome.judged))
        if outcome.events:
            eventful.append((row, outcome))
    save_states(session, states, hour)
    for row, outcome in eventful:
        # A metric scored for the first time replays its history to build its state; only
        # what this hour raised is news, unless a backfilled source is catching up, when
        # its whole history is.
        if row.has_state and row.scored_hour is not None:
            since = row.scored_hour
        else:
            since = -1 if source_id is not None else hour - 1
        fresh = [e for e in outcome.events if _hour_of(e) > since]
        if not fresh:
            continue
        opened.update(
            hour_index(_hour_of(e)).to_pydatetime() for e in fresh if e.status == "opened"
        )
        result.insights += record_events(
            session,
            metric=MetricRef(id=row.id, source_id=row.source_id, workspace_id=row.workspace_id),
            events=fresh,
            watch=session.get(MetricWatch, row.id),
            now=moment,
            queue_alerts=False,
            notify=source_id is None,
        )
    record_expectations(session, judged)
    return sorted(opened)


def _alert_horizon(hour: int) -> datetime:
    """How far back the pass looks for insights still owed an alert."""
    return hour_index(hour + 1 - MAX_CATCH_UP_HOURS).to_pydatetime()


def _finish(engine: Engine, hour: int, result: RunResult, moment: datetime) -> None:
    """Queue the alerts earlier passes left owed (one that died, say), and mark the hour done."""
    with session_scope(engine) as session:
        result.alerts += queue_alerts(session, since=_alert_horizon(hour), now=moment)
        session.execute(
            update(DetectionRun)
            .where(DetectionRun.hour == hour)
            .values(
                finished_at=pd.Timestamp.now(tz="UTC").to_pydatetime(),
                metrics=result.metrics,
                insights=result.insights,
                failures=result.failures,
            )
        )


def _log_pass(
    result: RunResult,
    stamp: str,
    worker: str,
    source_id: int | None,
    seconds: float,
) -> None:
    if source_id is not None:
        log.info(
            "history pass done: source=%d hour=%s metrics=%d insights=%d failures=%d ms=%.1f",
            source_id,
            stamp,
            result.metrics,
            result.insights,
            result.failures,
            seconds * 1000,
        )
        return
    log.info(
        "hourly pass done: hour=%s worker=%s metrics=%d insights=%d alerts=%d failures=%d ms=%.1f",
        stamp,
        worker,
        result.metrics,
        result.insights,
        result.alerts,
        result.failures,
        seconds * 1000,
    )


# What a metric's detector needs before the next hour it judges (its fit window, 28 days).
HISTORY_HOURS = 29 * 24


def _hour_of(event: Any) -> int:
    return epoch_hour(event.detection.detected_at)


def due_hours(engine: Engine, *, now: datetime, grace: timedelta) -> list[int]:
    """Closed hours (after the grace for late events) not run yet, or whose pass died, in order."""
    last_closed = epoch_hour(now - grace) - 1
    oldest = last_closed - MAX_CATCH_UP_HOURS + 1
    with engine.connect() as connection:
        newest = connection.scalar(select(func.max(DetectionRun.hour)))
        died = connection.scalars(
            select(DetectionRun.hour).where(
                DetectionRun.hour >= oldest,
                DetectionRun.finished_at.is_(None),
                DetectionRun.started_at < now - STALE_CLAIM,
            )
        ).all()
    first = last_closed if newest is None else newest + 1
    first = max(first, oldest)
    return sorted(set(died) | set(range(first, last_closed + 1)))


def run_due_hours(
    engine: Engine, settings: Settings, *, now: datetime, worker: str
) -> list[RunResult]:
    """Run every due hour, oldest first (the scheduler's detection job)."""
    grace = timedelta(minutes=settings.detection_grace_minutes)
    done = []
    for hour in due_hours(engine, now=now, grace=grace):
        result = run_hour(engine, settings, hour=hour, worker=worker, now=now)
        if result is not None:
            done.append(result)
    return done


def forget_message_ids(engine: Engine, settings: Settings, *, now: datetime) -> int:
    """Drop message ids seen only before the dedupe horizon; returns how many went."""
    from lantern.ingest.dedupe import purge_seen_messages

    return purge_seen_messages(engine, now=now, horizon_hours=settings.dedupe_hours)


def prepare_partitions(engine: Engine, settings: Settings, *, now: datetime) -> list[str]:
    """Make sure the weeks ahead have bucket partitions (PostgreSQL); returns those created."""
    from lantern.metrics.partitions import ensure_partitions

    return ensure_partitions(engine, now=now, retention_days=settings.retention_days)


def clean_up(engine: Engine, settings: Settings, *, now: datetime) -> None:
    """Drop buckets and breakdown rows past the retention, then the expectations of buckets
    gone, old debug rows, expired states and sessions (message ids go hourly, on their own)."""
    from lantern.accounts.models import WebSession
    from lantern.breakdowns.service import expire_breakdowns
    from lantern.ingest.service import purge_debug
    from lantern.metrics.partitions import expire_buckets
    from lantern.notify.models import SlackOAuthState

    expired = expire_buckets(engine, now=now, retention_days=settings.retention_days)
    log.info(
        "buckets past the retention removed: days=%d partitions_dropped=%d rows_deleted=%d "
        "metrics_untrained=%d",
        settings.retention_days,
        len(expired.dropped),
        expired.deleted_rows,
        expired.untrained,
    )
    split = expire_breakdowns(engine, now=now, retention_days=settings.retention_days)
    log.info("breakdown rows past the retention removed: %d", split)
    purge_debug(
        engine,
        keep=settings.debug_recent_events,
        minutes_before=int(now.timestamp() // 60) - 24 * 60,
    )
    with session_scope(engine) as session:
        session.execute(delete(SlackOAuthState).where(SlackOAuthState.expires_at < now))
        session.execute(delete(WebSession).where(WebSession.expires_at < now))
        forget_unbucketed(session)
