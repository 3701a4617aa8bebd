"""The arrows between modules point down: no import cycles, the app core never imports the
trainer, only pages import Streamlit, and each reading stage imports only the stages below it.

Read from the source (every import, at the top or inside a function), so a new import that
breaks the design fails here, before it is run.
"""

from __future__ import annotations

import ast
from pathlib import Path

from digit_app.config import PROJECT_ROOT

# The reading path from the top down: a module may import only modules after it.
READING_ORDER = (
    "pipeline",
    "segment",
    "by_recognition",
    "cuts",
    "groups",
    "normalize",
    "ink",
    "clean",
    "measure",
    "types",
)


def _modules() -> dict[str, Path]:
    """Every first-party module of the product (app, core, trainer, benchmarks) by dotted name."""
    files = [PROJECT_ROOT / "app.py"]
    for package in ("digit_app", "training", "benchmarks"):
        files += sorted((PROJECT_ROOT / package).rglob("*.py"))
    out = {}
    for path in files:
        parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(path: Path) -> set[str]:
    """The dotted names a file imports (for `from a import b`, both `a` and `a.b`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {n for n in _imports(path) if n in modules and n != name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                return path[path.index(other) :] + [other]
            if other not in state and (found := visit(other)):
                return found
        path.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_there_is_no_import_cycle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_app_core_never_imports_the_trainer() -> None:
    modules = _modules()
    wrong = {
        name: sorted(n for n in _imports(path) if n.split(".")[0] == "training")
        for name, path in modules.items()
        if name.split(".")[0] == "digit_app"
    }
    assert not {k: v for k, v in wrong.items() if v}


def test_only_pages_import_streamlit() -> None:
    importers = {
        name
        for name, path in _modules().items()
        if any(n.split(".")[0] == "streamlit" for n in _imports(path))
    }
    assert importers and all(name == "app" or name.startswith("digit_app.pages.") for name in importers)


def test_each_reading_stage_imports_only_stages_below_it() -> None:
    graph = _graph()
    stages = {f"digit_app.reading.{name}" for name in READING_ORDER}
    assert stages | {"digit_app.reading"} == {n for n in graph if n.startswith("digit_app.reading")}
    for rank, name in enumerate(READING_ORDER):
        below = {f"digit_app.reading.{n}" for n in READING_ORDER[rank + 1 :]}
        used = {n for n in graph[f"digit_app.reading.{name}"] if n in stages}
        assert used <= below, f"{name} imports {sorted(used - below)}, which are not below it"
