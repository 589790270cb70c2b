"""The `lantern` command's defaults."""

from __future__ import annotations

import os

from lantern.cli import default_workers


def test_serve_runs_two_workers_on_two_cores_but_one_for_an_in_memory_database() -> None:
    two_if_possible = min(2, os.cpu_count() or 1)
    assert default_workers("sqlite:////srv/lantern/lantern.db") == two_if_possible
    assert default_workers("postgresql+psycopg://db/lantern") == two_if_possible
    assert default_workers("sqlite://") == 1
    assert default_workers("sqlite:///:memory:") == 1
