"""A partition of metrics is scored as one batch, and one metric that fails spoils no other."""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, replace

import numpy as np
import pandas as pd

from lantern.detect.state import MetricState, hour_number, new_state
from lantern.detect.stream import score_batch_judged
from lantern.scoring import Partition, Scored, score_partition

DAYS = 30  # a month of history, of which the partition holds the last ten days


def frame(columns: list[int]) -> pd.DataFrame:
    index = pd.date_range("2026-03-01", periods=DAYS * 24, freq="h", tz="UTC")
    rng = np.random.default_rng(7)
    daily = 60 + 40 * np.sin(np.arange(len(index)) / 24 * 2 * np.pi)
    values = {c: rng.poisson(daily).astype(float) for c in columns}
    values[columns[0]][-2:] *= 6  # the first metric spikes in the last two hours
    return pd.DataFrame(values, index=index)


def test_a_partition_pickles_and_a_metric_whose_state_cannot_be_used_is_skipped_alone() -> None:
    values = frame([1, 2, 3]).iloc[-10 * 24 :]
    first, last = hour_number(values.index[0]), hour_number(values.index[-1])
    # metric 2 claims to have judged up to the last hour but one, which needs 28 days of
    # history before it that the frame does not hold; metric 3's state is not a state
    judged = MetricState(first_hour=first - 30 * 24, last_hour=last - 1)
    partition = Partition(
        hour=last,
        metrics=(
            Scored(1, "track", "medium", first, None),
            Scored(2, "track", "medium", first - 30 * 24, judged.to_bytes()),
            Scored(3, "track", "medium", first, b"{not json"),
        ),
        frame=values,
    )
    outcomes = score_partition(pickle.loads(pickle.dumps(partition)))
    assert [o.metric_id for o in outcomes] == [1, 2, 3]
    assert outcomes[0].error is None and outcomes[0].state is not None
    assert outcomes[1].error is not None and "28 days" in outcomes[1].error
    assert outcomes[1].state == judged.to_bytes()  # kept as it was, for the next pass
    assert outcomes[2].error is not None and outcomes[2].state == b"{not json"
    # the metric that failed changed nothing for the one that did not
    alone = score_partition(replace(partition, metrics=partition.metrics[:1], frame=values[[1]]))
    assert outcomes[0].state == alone[0].state
    assert [e.status for e in outcomes[0].events] == [e.status for e in alone[0].events] != []


def full_walk(state: MetricState) -> bytes:
    """A state's bytes as `dataclasses.asdict` of the whole state gives them, the model
    then replaced by its own dict: what states were always stored as (the former normal,
    last, only when there is one)."""
    data = asdict(state)
    data["model"] = state.model.to_dict() if state.model else None
    if data["former"] is None:
        del data["former"]
    return json.dumps(data, separators=(",", ":")).encode()


def test_a_scored_state_is_stored_exactly_as_the_detector_writes_it() -> None:
    values = frame([1, 2])
    first, last = hour_number(values.index[0]), hour_number(values.index[-1])
    states = {
        1: new_state(values.index[0], stagger=1),
        2: new_state(values.index[0], kind="value", sensitivity="high", stagger=2),
    }
    scored = score_batch_judged(states, values, values.index[-1])
    assert scored[1][0].episode is not None and scored[1][0].model is not None  # a spike
    for state, _, _ in scored.values():
        assert full_walk(state) == state.to_bytes()
    # and what a partition stores is that encoding
    partition = Partition(last, (Scored(1, "track", "medium", first, None),), values[[1]])
    (outcome,) = score_partition(partition)
    assert outcome.state == scored[1][0].to_bytes()
