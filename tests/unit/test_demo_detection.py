"""The demo's first impression: its planted anomalies found, and few false alarms.

`lantern demo` plans five weeks of eleven metrics ending at the hour it is run, so what
detection sees depends on the time of day and week: the demo is replayed here for several
ends, directly through detection (what `lantern demo` sends through ingest and the hourly
pass is tested in tests/integration/test_demo.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lantern.demo import STREAMS, Plan, counts, plan
from lantern.detect import replay_series

ENDS = [pd.Timestamp("2026-11-02 05:00", tz="UTC") + pd.Timedelta(hours=13 * k) for k in range(6)]


def planted(timeline: Plan) -> dict[str, tuple[pd.Timestamp, pd.Timestamp, str]]:
    """Each planted anomaly's metric: (from, to, direction) of the hours it may be told in."""
    late = pd.Timedelta(hours=6)
    return {
        "Checkout Completed": (*timeline.checkout_drop, "down"),
        "Search": (*timeline.search_spike, "up"),
        "Signed Up": (timeline.signup_shift, timeline.signup_shift + pd.Timedelta(days=1), "up"),
        "Docs": (timeline.docs_outage[0], timeline.docs_outage[1] + late, "down"),
    }


@pytest.mark.slow
def test_the_demo_finds_what_it_planted_and_few_false_alarms() -> None:
    missed, false = [], []
    for end in ENDS:
        timeline = plan(end, 5)
        rng = np.random.default_rng(7)  # as `lantern.demo.events` draws them
        marks = planted(timeline)
        for stream in STREAMS:
            series = pd.Series(counts(stream, timeline, rng).astype(float), index=timeline.index)
            told = [e for e in replay_series(series) if e.status == "opened"]
            mark = marks.get(stream.name)
            hit = [
                e
                for e in told
                if mark
                and mark[0] <= e.at <= mark[1] + pd.Timedelta(hours=6)
                and e.detection.direction == mark[2]
            ]
            if mark and not hit:
                missed.append((end, stream.name))
            false += [(end, stream.name, e.at, e.detection.kind) for e in told if e not in hit]
    assert missed == []
    # six demos, no false alarm (there were ten before bursts were left out of the model's
    # fit, five before a one-week cycle was pulled towards its days' levels)
    assert false == []
