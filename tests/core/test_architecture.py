"""The layout of core/ is the pipeline: imports run one way between its stages, with no circle, and no module is long.

Reads every import in core/ (inside functions too) with ast, as written in the files.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "core"
#: Rank of each stage: a module may import its own stage, a lower rank, or the shared modules (rank 0).
STAGES = {"scan": 1, "models": 2, "audit": 3, "train": 4, "export": 5}
SHARED = {"core", "core.files", "core.imaging", "core.csvsafe", "core.executors", "core.progress"}
MAX_LINES = 500


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(CORE.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The core modules `path` imports (a `from package import module` counts as the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "core"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "core":
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(CORE.rglob("*.py"))
    known = {module_name(path) for path in paths}
    return {module_name(path): imported_modules(path, known) - {module_name(path)} for path in paths}


def rank(module: str) -> int | None:
    """The stage rank of a core module: 0 for the shared ones, None for the demo generator."""
    if module in SHARED:
        return 0
    stage = module.split(".")[1]
    return None if stage == "demo" else STAGES[stage]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.get(module, ()):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == module:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_every_module_of_core_belongs_to_a_stage():
    assert all(rank(module) is not None or module.startswith("core.demo") for module in import_graph())


def test_core_has_no_import_circle():
    assert circles(import_graph()) == []


def test_stages_import_only_the_stages_before_them():
    backwards = [(module, other) for module, imports in import_graph().items() for other in imports
                 if rank(module) is not None and (rank(other) is None or rank(other) > rank(module))]
    assert backwards == []


def test_the_demo_generator_uses_only_the_shared_modules_and_nothing_in_the_pipeline_uses_it():
    graph = import_graph()
    demo_imports = {other for module, imports in graph.items() if module.startswith("core.demo") for other in imports}
    assert {other for other in demo_imports if not other.startswith("core.demo")} <= SHARED
    assert not [module for module, imports in graph.items() if not module.startswith("core.demo")
                and any(other.startswith("core.demo") for other in imports)]


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda path: str(path.relative_to(CORE)))
def test_no_module_is_longer_than_500_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES
