"""Imports flow one way: down the layers drawn in docs/architecture.md, never back up.

The import graph is read from the source (every `import`, including those inside functions
and under `TYPE_CHECKING`), so an import hidden from the interpreter still counts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "lantern"

# Bottom to top; a module may import its own layer's package, and anything below. Packages
# that share a layer are siblings and must not import each other. A module is placed by the
# longest prefix that names it.
LAYERS: list[tuple[str, ...]] = [
    ("lantern", "lantern.config", "lantern.errors"),
    ("lantern.db",),
    ("lantern.detect",),
    ("lantern.metrics",),
    ("lantern.workspaces",),
    ("lantern.accounts",),
    # a source's dimensions and the hourly counts per value, beside its buckets
    ("lantern.breakdowns",),
    # The outbox table: an insight and the notifications it owes are written in one
    # transaction, while notify's code, above insights, delivers them.
    ("lantern.notify.models",),
    ("lantern.ingest", "lantern.insights"),
    ("lantern.notify",),
    # partitions of metrics scored where the configuration says (inline, processes, Dask)
    ("lantern.scoring",),
    ("lantern.pipeline",),
    ("lantern.dashboard", "lantern.analysis"),
]
# The edges: entry points and the schema registry, which may import any layer.
EDGES = (
    "lantern.__main__",
    "lantern.api",
    "lantern.web",
    "lantern.scheduler",
    "lantern.cli",
    "lantern.cli_accounts",
    "lantern.demo",
    "lantern.replay",
    "lantern.db.models",
    # Alembic's environment and scripts, shipped in the package: they migrate every table
    "lantern.migrations",
)
# What detection must never import: it runs on bare pandas Series, in notebooks and replay.
NOT_IN_DETECT = ("sqlalchemy", "fastapi", "starlette", "alembic", "psycopg", "slack_sdk", "httpx")


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    path: Path
    line: int

    def __str__(self) -> str:
        where = self.path.relative_to(PACKAGE.parent)
        return f"{where}:{self.line}: {self.source} imports {self.target}"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> Iterator[Import]:
    """Every module `path` imports, with `from x import y` read as x.y when y is a module."""
    source = module_name(path)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(source, alias.name, path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                named = f"{target}.{alias.name}"
                is_module = named in MODULES
                yield Import(source, named if is_module else target, path, node.lineno)


MODULES = {module_name(path) for path in PACKAGE.rglob("*.py")}


def all_imports() -> list[Import]:
    """Every import in lantern/, each (module, target, line) once."""
    found = (i for path in sorted(PACKAGE.rglob("*.py")) for i in imports_of(path))
    return list(dict.fromkeys(found))


def owner(module: str, prefixes: tuple[str, ...]) -> str | None:
    """The longest of `prefixes` that names `module` or a package holding it."""
    found = [p for p in prefixes if module == p or module.startswith(p + ".")]
    return max(found, key=len) if found else None


def place(module: str) -> tuple[int, str]:
    """The layer (its index, the top is len(LAYERS)) and the package that holds `module`."""
    every = tuple(p for layer in LAYERS for p in layer if p != "lantern") + EDGES
    prefix = "lantern" if module == "lantern" else owner(module, every)
    if prefix is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS or EDGES")
    if prefix in EDGES:
        return len(LAYERS), prefix
    return next(i for i, layer in enumerate(LAYERS) if prefix in layer), prefix


def internal(imports: list[Import]) -> list[Import]:
    return [i for i in imports if i.target == "lantern" or i.target.startswith("lantern.")]


def test_every_module_of_lantern_belongs_to_a_layer() -> None:
    for module in sorted(MODULES):
        place(module)


def upward(imports: list[Import]) -> list[str]:
    """The imports of `imports` that reach a layer above their module's, or a sibling."""
    wrong = []
    for found in internal(imports):
        (low, low_owner), (high, high_owner) = place(found.source), place(found.target)
        if low == len(LAYERS) or low_owner == high_owner:
            continue
        if high > low or (high == low and owner(found.target, (low_owner,)) is None):
            wrong.append(str(found))
    return wrong


def test_no_module_imports_from_a_layer_above_it_or_from_a_sibling() -> None:
    wrong = upward(all_imports())
    assert wrong == [], "imports that run up the layers:\n" + "\n".join(wrong)


def test_the_layer_check_refuses_an_upward_or_sideways_import_and_allows_a_downward_one() -> None:
    path = PACKAGE / "metrics" / "service.py"
    up = Import("lantern.metrics.service", "lantern.insights.models", path, 1)
    sideways = Import("lantern.ingest.service", "lantern.insights.service", path, 1)
    down = Import("lantern.insights.service", "lantern.metrics.models", path, 1)
    outbox = Import("lantern.insights.service", "lantern.notify.models", path, 1)
    assert upward([up, sideways, down, outbox]) == [str(up), str(sideways)]


def test_no_modules_of_lantern_import_each_other_in_a_cycle() -> None:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for found in internal(all_imports()):
        target = found.target
        while target not in MODULES:  # `from lantern.x import name` of a package: the package
            target = target.rpartition(".")[0]
        if target != found.source and not found.source.startswith(target + "."):
            graph[found.source].add(target)
    cycles = [sorted(group) for group in strongly_connected(graph) if len(group) > 1]
    assert cycles == [], f"modules that import each other: {cycles}"


def test_detection_imports_no_database_web_or_slack_library_and_nothing_else_of_lantern() -> None:
    wrong = [
        str(found)
        for found in all_imports()
        if found.source.startswith("lantern.detect")
        and (
            found.target.split(".")[0] in NOT_IN_DETECT
            or (
                found.target.startswith("lantern.")
                and not found.target.startswith("lantern.detect")
            )
        )
    ]
    assert wrong == [], "detection must run on bare pandas Series:\n" + "\n".join(wrong)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of a directed graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for after in sorted(graph[node]):
            if after not in index:
                visit(after)
                low[node] = min(low[node], low[after])
            elif after in on_stack:
                low[node] = min(low[node], index[after])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups
