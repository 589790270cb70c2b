"""`lantern demo` fills a workspace through /v1/import and finds the anomalies it planted."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from lantern.accounts.service import authenticate
from lantern.breakdowns.read import root_cause_of
from lantern.config import Settings
from lantern.db import session_scope
from lantern.demo import existing, make_demo
from lantern.insights.models import Insight, InsightCause
from lantern.metrics.models import FlagChange, Metric
from lantern.notify.models import Notification


@pytest.mark.slow
def test_the_demo_history_holds_the_planted_outage_and_the_flag_change_as_its_cause(
    fresh_engine: Engine, settings: Settings
) -> None:
    made = make_demo(fresh_engine, settings, weeks=2)
    assert existing(fresh_engine) == made.workspace_id
    with session_scope(fresh_engine) as session:
        found = session.execute(
            select(Metric.name, Insight.kind, Insight.direction, Insight.id)
            .join(Metric, Metric.id == Insight.metric_id)
            .where(Insight.parent_id.is_(None))
        ).all()
        changes = session.execute(
            select(FlagChange.flag_key, FlagChange.old_version, FlagChange.new_version)
        ).all()
        checkout = [
            i
            for name, _, direction, i in found
            if name == "Checkout Completed" and direction == "down"
        ]
        causes = session.scalars(
            select(FlagChange.flag_key)
            .join(InsightCause, InsightCause.flag_change_id == FlagChange.id)
            .where(InsightCause.insight_id.in_(checkout))
        ).all()
        # the flag change broke the iOS app's checkout (version 5.2): over the six hours of
        # the drop the breakdowns say so, whichever hour of it the drop was found in
        changed_at = session.scalar(select(FlagChange.changed_at))
        assert changed_at is not None
        checkout_id = session.scalar(
            select(Metric.id).where(Metric.name == "Checkout Completed", Metric.kind == "track")
        )
        assert checkout_id is not None
        explained = root_cause_of(
            session.connection(),
            metric_id=checkout_id,
            start=changed_at + timedelta(hours=1),
            end=changed_at + timedelta(hours=6),
            direction="down",
        )
        queued = session.scalars(
            select(Notification.id).where(Notification.status != "skipped")
        ).all()
    assert made.events > 100_000
    # six silent hours on two weeks of history: an outage, or (the model still young) a
    # level shift down; either way one insight going down. The rest of the site went on,
    # so an outage is told as a tracking break.
    docs = {(k, d) for n, k, d, _ in found if n == "Docs"}
    assert docs & {("tracking_break", "down"), ("level_shift", "down")}
    assert [tuple(c) for c in changes] == [("new-checkout", 3, 4)]
    assert "new-checkout" in causes
    assert explained is not None
    assert explained["text"].startswith("app version 5.2: \u2212"), explained
    assert queued == []  # history is shown, not sent to Slack
    with session_scope(fresh_engine) as session:
        user = authenticate(session, email=made.email, password=made.password)
        assert user.workspace_id == made.workspace_id


@pytest.mark.slow
def test_lantern_demo_prints_its_progress_and_summary_without_library_warnings(
    tmp_path: Path,
) -> None:
    # the README's first command ends in `lantern serve --demo`: its output is the user's
    # first impression, and a library's deprecation warning there reads as a fault
    env = {"LANTERN_DATA_DIR": str(tmp_path), "PATH": ""}
    run = subprocess.run(
        [sys.executable, "-m", "lantern", "demo", "--weeks", "2"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "events imported" in run.stdout + run.stderr
    # no progress bar that measures nothing ("scoring history 1/1"): a plain line instead
    assert "scoring 336 hours of history" in run.stderr
    assert "1/1" not in run.stderr
    assert "Warning" not in run.stderr, run.stderr
