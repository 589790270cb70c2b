"""Job locks: one holder at a time across processes, on each engine."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from sqlalchemy import Engine

from lantern.db.locks import job_lock


def holds_in_other_process(url: str, name: str) -> bool:
    code = textwrap.dedent(
        f"""
        from lantern.db.session import make_engine
        from lantern.db.locks import job_lock
        with job_lock(make_engine({url!r}), {name!r}) as held:
            print(held)
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return run.stdout.strip() == "True"


def test_a_held_job_lock_is_refused_to_another_process_and_freed_after(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    with job_lock(engine, "detection") as held:
        assert held
        assert not holds_in_other_process(url, "detection")
        assert holds_in_other_process(url, "notifications")
    assert holds_in_other_process(url, "detection")
