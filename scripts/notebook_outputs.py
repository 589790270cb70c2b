"""Keep notebooks in git without outputs: ``python3 scripts/notebook_outputs.py strip|check``.

`strip` empties every code cell's outputs and execution count (and the run times Jupyter
records in cell metadata) and rewrites the file as Jupyter writes it; `check` lists the
notebooks that hold outputs and exits 1 if there are any. Each takes paths to notebooks or
folders of them (``[PATH...]``); the default is the repository's ``notebooks/``. Plain JSON:
no Jupyter package is needed. The analysts' API the notebooks use is ``lantern.analysis``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_FOLDER = Path(__file__).resolve().parents[1] / "notebooks"


def notebook_paths(paths: Iterable[Path]) -> list[Path]:
    """The notebooks named, and those in the folders named (checkpoints left out)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p for p in sorted(path.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts
            )
        else:
            found.append(path)
    return found


def has_outputs(notebook: dict[str, Any]) -> bool:
    """Whether any code cell of a notebook holds outputs or an execution count."""
    return any(
        cell.get("outputs") or cell.get("execution_count") is not None
        for cell in notebook.get("cells", [])
        if cell.get("cell_type") == "code"
    )


def stripped(notebook: dict[str, Any]) -> dict[str, Any]:
    """A copy of the notebook without outputs, execution counts or run times."""
    out = json.loads(json.dumps(notebook))
    for cell in out.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        cell["outputs"] = []
        cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
    return out


def _dump(notebook: dict[str, Any]) -> str:
    # As Jupyter writes it, so that stripping an unchanged notebook changes no byte.
    return json.dumps(notebook, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def strip(path: Path) -> bool:
    """Strip a notebook file in place; True if it changed."""
    text = path.read_text(encoding="utf-8")
    clean = _dump(stripped(json.loads(text)))
    if clean == text:
        return False
    path.write_text(clean, encoding="utf-8")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: strip or check notebooks."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("strip", "check"):
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    command, paths = args[0], [Path(a) for a in args[1:]] or [DEFAULT_FOLDER]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"no such file or folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    notebooks = notebook_paths(paths)
    if command == "strip":
        for path in notebooks:
            if strip(path):
                print(f"stripped {path}")
        return 0
    dirty = [p for p in notebooks if has_outputs(json.loads(p.read_text(encoding="utf-8")))]
    for path in dirty:
        print(f"{path} has outputs: run `python3 scripts/notebook_outputs.py strip {path}`")
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())
