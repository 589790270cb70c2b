"""The analyst notebooks run top to bottom on a demo database and show what they promise.

The demo (two weeks, the shortest `lantern demo` makes) is built once per engine; each
notebook then runs once in a fresh kernel with nbclient, reading the database from
LANTERN_DATABASE_URL as an analyst's would, with matplotlib on the Agg backend.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from sqlalchemy import text

from lantern.analysis import connect
from lantern.config import Settings
from lantern.db.migrate import upgrade
from lantern.db.session import make_engine
from lantern.demo import make_demo
from tests.conftest import _postgres_or_skip, drop_database_later

FOLDER = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(p.name for p in FOLDER.glob("*.ipynb"))


@dataclass
class Run:
    """A notebook after its run, and the folder it could write to."""

    notebook: Any
    export_dir: Path

    def outputs(self) -> list[dict[str, Any]]:
        return [o for cell in self.notebook.cells for o in cell.get("outputs", [])]

    def images(self) -> int:
        return sum("image/png" in o.get("data", {}) for o in self.outputs())

    def tables(self) -> list[list[str]]:
        """The column headers of every HTML table the notebook shows."""
        found = []
        for output in self.outputs():
            html = output.get("data", {}).get("text/html", "")
            for head in re.findall(r"<thead>(.*?)</thead>", html, flags=re.S):
                found.append(re.findall(r"<th[^>]*>(.*?)</th>", head, flags=re.S))
        return found

    def texts(self) -> str:
        return "\n".join(o.get("data", {}).get("text/plain", "") for o in self.outputs())


@pytest.fixture(scope="module")
def demo_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of its own holding a two-week demo, on the engine of `database_url`."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'lantern.db'}"
        admin = None
    else:
        admin = _postgres_or_skip()
        name = f"lantern_demo_{uuid.uuid4().hex[:10]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin.url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"), database_url=url, scheduler_enabled=False
    )
    make_demo(engine, settings, weeks=2)
    engine.dispose()
    yield url
    if admin is not None:
        drop_database_later(admin, name)


@pytest.fixture(scope="module")
def run(demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Run]:
    """Runs a notebook of the folder against the demo, once, and keeps what it showed."""
    done: dict[str, Run] = {}

    def execute(name: str) -> Run:
        if name not in done:
            notebook = nbformat.read(FOLDER / name, as_version=4)
            export_dir = tmp_path_factory.mktemp("export")
            env = dict(
                os.environ,
                LANTERN_DATABASE_URL=demo_url,
                LANTERN_EXPORT_DIR=str(export_dir),
                MPLBACKEND="Agg",
            )
            client = NotebookClient(
                notebook,
                timeout=120,
                kernel_name="python3",
                resources={"metadata": {"path": str(FOLDER)}},
            )
            client.execute(env=env)
            done[name] = Run(notebook, export_dir)
        return done[name]

    return execute


def test_the_folder_holds_the_three_analyst_notebooks() -> None:
    assert NOTEBOOKS[:3] == [
        "01-explore-metrics.ipynb",
        "02-replay-sensitivity.ipynb",
        "03-export-insights.ipynb",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_runs_without_error_and_shows_a_figure(
    run: Callable[[str], Run], name: str
) -> None:
    executed = run(name)
    assert [o for o in executed.outputs() if o["output_type"] == "error"] == []
    assert executed.images() >= 1


@pytest.mark.slow
def test_exploring_shows_the_metrics_the_series_and_a_decomposition_with_its_alerts(
    run: Callable[[str], Run],
) -> None:
    executed = run("01-explore-metrics.ipynb")
    tables = executed.tables()
    assert ["kind", "name", "label", "events", "first_hour", "last_hour"] in [
        t[1:7] for t in tables
    ]
    assert any(
        set(t) >= {"observed", "expected", "lower", "upper", "seasonal", "trend"} for t in tables
    )
    assert any(set(t) >= {"at", "status", "kind", "direction"} for t in tables)
    assert any(set(t) >= {"causes", "severity", "detected_at"} for t in tables)
    assert executed.images() == 2  # daily totals, and the decomposition
    assert "new-checkout v3→v4" in "".join(
        o.get("data", {}).get("text/html", "") for o in executed.outputs()
    )


@pytest.mark.slow
def test_replaying_tables_and_plots_the_alerts_of_each_sensitivity_and_matches_the_service(
    run: Callable[[str], Run],
) -> None:
    executed = run("02-replay-sensitivity.ipynb")
    tables = executed.tables()
    per_sensitivity = [t for t in tables if t[1:4] == ["low", "medium", "high"]]
    assert len(per_sensitivity) == 3  # per kind, per severity, per metric
    assert any("kind" in t for t in per_sensitivity)
    replayed, recorded = re.search(r"insights at medium\s+(\d+)\s+(\d+)", executed.texts()).groups()  # type: ignore[union-attr]
    assert int(replayed) == int(recorded) > 0
    assert "Slack messages" in executed.texts()
    assert executed.images() == 2  # alerts per sensitivity, and the noisiest metric


@pytest.mark.slow
def test_exporting_writes_the_insights_and_their_summaries_as_csv(
    run: Callable[[str], Run], demo_url: str
) -> None:
    executed = run("03-export-insights.ipynb")
    files = sorted(p.name for p in executed.export_dir.iterdir())
    assert files == [
        "insights.csv",
        "insights_per_kind_severity.csv",
        "insights_per_week_kind.csv",
        "insights_per_week_severity.csv",
    ]
    exported = pd.read_csv(executed.export_dir / "insights.csv")
    stored = connect(demo_url).insights()
    assert sorted(exported["id"]) == sorted(stored.index)
    assert {"kind", "severity", "detected_at", "causes", "useful", "feedback_at"} <= set(
        exported.columns
    )
    assert exported["detected_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00Z").all()
    assert "new-checkout v3→v4" in set(exported["causes"].dropna())
    weeks = pd.read_csv(executed.export_dir / "insights_per_week_severity.csv")
    assert weeks.columns[0] == "week"
    assert weeks[[c for c in ("low", "medium", "high") if c in weeks]].sum().sum() == len(stored)
    assert executed.images() == 1


def test_the_root_cause_notebook_drills_into_the_demo_s_checkout_drop_by_app_version(
    run: Callable[[str], Run],
) -> None:
    executed = run("04-root-cause.ipynb")
    shown = executed.texts()
    # the insight it picks is the demo's checkout drop after the flag change, whose
    # drill-down by app version shows the iOS app's 5.2 stopping
    assert "Checkout Completed" in shown
    assert "new-checkout" in shown
    assert re.search(r"\napp_version\s*\n5\.2\s", shown), shown
    headers = executed.tables()
    drills = [h for h in headers if "share_of_move" in h]
    assert any("app_version" in h for h in drills), headers
    assert any("os" in h for h in drills), headers
    assert executed.images() == 1
