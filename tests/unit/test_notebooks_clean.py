"""Notebooks are kept in git without outputs, and one command strips them."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.notebook_outputs import has_outputs, main

FOLDER = Path(__file__).resolve().parents[2] / "notebooks"


def test_every_notebook_in_the_folder_is_kept_without_outputs() -> None:
    notebooks = sorted(FOLDER.glob("*.ipynb"))
    assert len(notebooks) >= 3
    for path in notebooks:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert code, path.name
        assert [c["outputs"] for c in code] == [[]] * len(code), path.name
        assert {c["execution_count"] for c in code} == {None}, path.name


def run_notebook_json() -> dict[str, object]:
    return {
        "cells": [
            {"cell_type": "markdown", "id": "a", "metadata": {}, "source": "# Title"},
            {
                "cell_type": "code",
                "execution_count": 7,
                "id": "b",
                "metadata": {"execution": {"iopub.status.idle": "2026-01-01T00:00:00Z"}},
                "outputs": [
                    {
                        "output_type": "execute_result",
                        "execution_count": 7,
                        "metadata": {},
                        "data": {"text/plain": "42"},
                    }
                ],
                "source": "6 * 7",
            },
        ],
        "metadata": {"kernelspec": {"name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_stripping_a_run_notebook_empties_outputs_and_counts_and_keeps_the_code(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.ipynb"
    path.write_text(json.dumps(run_notebook_json()), encoding="utf-8")
    assert main(["check", str(tmp_path)]) == 1

    assert main(["strip", str(tmp_path)]) == 0

    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert not has_outputs(notebook)
    code = notebook["cells"][1]
    assert (code["source"], code["outputs"], code["execution_count"]) == ("6 * 7", [], None)
    assert code["metadata"] == {}
    assert notebook["cells"][0]["source"] == "# Title"
    assert main(["check", str(path)]) == 0
    before = path.read_bytes()
    main(["strip", str(path)])
    assert path.read_bytes() == before  # a clean notebook is left as it is


def test_the_strip_command_refuses_a_path_that_does_not_exist(tmp_path: Path) -> None:
    assert main(["strip", str(tmp_path / "missing.ipynb")]) == 2
    assert main(["polish"]) == 2
