"""Where the hourly pass scores its partitions: inline, in a process pool, or on Dask.

A `Partition` is a few hundred metrics with their saved detector states and one frame of
their hourly values; `score_partition` turns it into `Outcome`s (new states and episode
events). Both pickle and neither touches the database, so a partition can be scored in
another process or on another machine; only the process that claimed the hour records
the outcomes. On Dask, each process keeps one client for its whole life
(`dask_client`), and a partition whose worker dies is run again on another.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from lantern.config import Settings
from lantern.metrics.keys import series_kind

if TYPE_CHECKING:
    from distributed import Client

    from lantern.detect.stream import JudgedHours

log = logging.getLogger(__name__)

Mapper = Callable[[Callable[["Partition"], list["Outcome"]], Iterable["Partition"]], Iterator[Any]]

# Partitions sent to Dask ahead of the one being recorded, per worker thread: enough to
# keep every worker busy, few enough that the claiming process never holds the series
# of the whole fleet at once.
AHEAD_PER_THREAD = 2


class DaskUnavailable(RuntimeError):
    """Dask is not installed, or its scheduler cannot be reached."""


@dataclass(frozen=True, slots=True)
class Scored:
    """A metric of a partition: how it is judged, since when, and its saved state."""

    metric_id: int
    kind: str
    sensitivity: str
    first_hour: int
    state: bytes | None
    # the team's feedback: (kind, settings) its bar is raised by (`detect.feedback_bar`)
    raised: tuple[tuple[str, int], ...] = ()
    # its episode belongs to a source-wide incident still going on: no new normal this pass
    holding: bool = False


@dataclass(frozen=True, slots=True)
class Partition:
    """A partition's work for one pass: its metrics and their values up to `hour`.

    `frame` has one column per metric (named by its id) and one row per hour, from the
    oldest hour any of them needs to `hour`; `counts` and `within`, on the same hours, one
    column per average metric: the events behind each hour's average and their values'
    variance within it (`metrics.service.Hourly`), by which detection weighs its hours.
    """

    hour: int
    metrics: tuple[Scored, ...]
    frame: pd.DataFrame
    counts: pd.DataFrame | None = None
    within: pd.DataFrame | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A metric's new state, the episode events of the pass and what the detector expected
    of the hours it judged (`detect.JudgedHours`), or the error it hit."""

    metric_id: int
    state: bytes | None
    events: list[Any]
    error: str | None = None
    judged: JudgedHours | None = None


def refit_hour(metric_id: int) -> int:
    """The UTC hour of a metric's daily refit: spreads a fleet's refits over the day."""
    return metric_id % 24


def score_partition(partition: Partition) -> list[Outcome]:
    """Advance each metric's detector through its new hours; a failing metric is skipped."""
    from lantern.detect.state import MetricState, hour_stamp
    from lantern.detect.stream import score_batch_judged

    states: dict[int, MetricState] = {}
    errors: dict[int, str] = {}
    for metric in partition.metrics:
        try:
            states[metric.metric_id] = _state_of(metric)
        except Exception as exc:  # one bad metric never stops the pass
            errors[metric.metric_id] = repr(exc)
    now = hour_stamp(partition.hour)
    support = {"counts": partition.counts, "within": partition.within}
    try:
        scored = score_batch_judged(states, partition.frame, now, **support)
    except Exception:
        # find the metric that failed: score them one by one
        scored = {}
        for metric_id, state in states.items():
            try:
                scored.update(
                    score_batch_judged(
                        {metric_id: state}, partition.frame[[metric_id]], now, **support
                    )
                )
            except Exception as exc:
                errors[metric_id] = repr(exc)
    outcomes = []
    for metric in partition.metrics:
        if metric.metric_id in errors:
            outcomes.append(Outcome(metric.metric_id, metric.state, [], errors[metric.metric_id]))
            continue
        state, events, judged = scored[metric.metric_id]
        outcomes.append(Outcome(metric.metric_id, state.to_bytes(), list(events), judged=judged))
    return outcomes


def _state_of(metric: Scored) -> Any:
    """The metric's saved state, or a new one; its workspace's sensitivity, the team's
    feedback and whether a source-wide incident holds its new normal, in force."""
    from lantern.detect.state import MetricState, hour_stamp, new_state

    if metric.state is None:
        state = new_state(
            hour_stamp(metric.first_hour),
            kind=series_kind(metric.kind),
            sensitivity=metric.sensitivity,  # type: ignore[arg-type]
            stagger=refit_hour(metric.metric_id),
        )
    else:
        state = MetricState.from_bytes(metric.state)
    if state.sensitivity != metric.sensitivity:
        state = replace(state, sensitivity=metric.sensitivity)  # type: ignore[arg-type]
    if state.raised != metric.raised:
        state = replace(state, raised=metric.raised)
    if state.holding != metric.holding:
        state = replace(state, holding=metric.holding)
    return state


def partition_mapper(settings: Settings) -> Mapper:
    """`map` for partitions on the configured executor; results come back in order."""
    if settings.detect_executor == "dask":
        if not settings.dask_scheduler_address:
            raise DaskUnavailable(
                "LANTERN_DETECT_EXECUTOR=dask needs LANTERN_DASK_SCHEDULER_ADDRESS "
                "(the scheduler's tcp://host:8786)"
            )
        client = dask_client(settings.dask_scheduler_address)
        return lambda function, items: _dask_map(client, function, items)
    if settings.detect_executor == "process":
        return _process_pool().map
    return map


def _dask_map(
    client: Client, function: Callable[[Partition], list[Outcome]], items: Iterable[Partition]
) -> Iterator[list[Outcome]]:
    """Score partitions on the cluster, a bounded number ahead, yielding them in order.

    Each partition travels inside its task (never scattered to one worker's memory), so
    when a worker dies the scheduler runs its partitions again on another worker; when it
    cannot (`distributed.scheduler.allowed-failures`), the error ends the pass.
    """
    ahead = max(2, AHEAD_PER_THREAD * sum(client.nthreads().values()))
    pending: deque[Any] = deque()
    try:
        for item in items:
            pending.append(client.submit(function, item, pure=False))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        if pending:
            client.cancel(list(pending))


_clients: dict[str, Client] = {}
_clients_lock = threading.Lock()


def dask_client(address: str) -> Client:
    """The process's client of the scheduler at `address`, connected on first use.

    One client serves every pass of the process: connecting costs a round of handshakes
    and each client is a session the scheduler keeps. It is closed when the process exits.
    """
    try:
        from distributed import Client
    except ImportError as exc:
        raise DaskUnavailable(
            "Dask is not installed: pip install 'lantern[dask]' (here and on the workers)"
        ) from exc
    with _clients_lock:
        client = _clients.get(address)
        if client is not None and client.status in ("running", "connecting"):
            return client
        try:
            client = Client(address, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise DaskUnavailable(
                f"cannot reach the Dask scheduler at {address}: {exc}; "
                "start it with `dask scheduler` or fix LANTERN_DASK_SCHEDULER_ADDRESS"
            ) from exc
        _clients[address] = client
        if len(_clients) == 1:
            atexit.register(close_dask_clients)
        log.info("dask client connected: scheduler=%s", address)
        return client


def close_dask_clients() -> None:
    """Close the process's Dask clients (at exit, or when a worker stops)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


_pool: Executor | None = None


def _process_pool() -> Executor:
    global _pool
    if _pool is None:
        from concurrent.futures import ProcessPoolExecutor

        _pool = ProcessPoolExecutor()
        atexit.register(_pool.shutdown)
    return _pool
