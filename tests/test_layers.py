"""The package's layers: no import cycle among its modules, and only the top imports the API.

The graph comes from the source (`ast`): module-level imports and the imports inside functions
(which hide a cycle from Python but not from a reader) count alike.
"""

from __future__ import annotations

import ast
from pathlib import Path

import automl

PACKAGE = Path(automl.__file__).parent
# The only modules allowed to import automl.api: the package facade and the command line.
API_USERS = {"automl", "automl.cli", "automl.cli_data", "automl.cli_results"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, anywhere in its source."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                # `from automl import study` imports the module automl.study
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in files else module
                           for a in node.names]
            else:
                continue
            deps.update(t for t in targets if t in files and t != name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "automl.api" in graph["automl.cli"]  # imported inside _run()
    assert {"automl.study", "automl.execution.trainer"} <= graph["automl.execution.ray_runner"]
    assert len(graph) >= 25


def test_no_import_cycle_among_the_package_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_only_the_facade_and_the_cli_import_the_api():
    importers = {name for name, deps in import_graph().items() if "automl.api" in deps}
    assert importers <= API_USERS, sorted(importers - API_USERS)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_submodule_shadows_a_function_of_the_api():
    # importing automl.X sets the package's attribute X to the module: a module named like an
    # API function (promote, validate, report, ...) would replace automl.X() once imported
    import importlib

    for path in PACKAGE.rglob("*.py"):
        if path.name != "__main__.py":  # runs the command
            importlib.import_module(module_name(path))
    for name in automl.__all__:
        if name != "__version__":
            assert callable(getattr(automl, name)) and not isinstance(
                getattr(automl, name), type(automl)), name
