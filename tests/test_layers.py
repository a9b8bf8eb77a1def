"""The package's layers: each module imports only its own layer and those below it, no import
cycle among the modules, and `automl --help` loads none of the heavy libraries.

The graph comes from the source (`ast`): module-level imports and the imports inside functions
(which hide a cycle from Python but not from a reader) count alike. The order is written down in
docs/development.md#layers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import automl

PACKAGE = Path(automl.__file__).parent
# The only modules allowed to import automl.api: the package facade and the command line.
API_USERS = {"automl", "automl.cli", "automl.cli_data", "automl.cli_results"}
# The layers, lowest first: a module imports only from its own layer and those below. A name
# stands for the module and, for a package, every module in it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("automl.errors", "automl.defaults", "automl.durations", "automl.machine",
              "automl.checkpoint_globals", "automl.weights", "automl.ultralytics_env",
              "automl.fitness", "automl.epochs", "automl.objectives", "automl.registry",
              "automl.config", "automl.outputs", "automl.options", "automl.console")),
    ("data", ("automl.data",)),
    ("study", ("automl.study",)),
    ("searching", ("automl.searching",)),
    ("execution", ("automl.execution",)),
    ("results", ("automl.results",)),
    ("api", ("automl.api",)),
    ("cli", ("automl", "automl.__main__", "automl.cli", "automl.cli_data", "automl.cli_results",
             "automl.next_steps")),
)
HEAVY = ("torch", "ray", "ultralytics", "optuna")


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


def layer_of(module: str) -> int:
    """The index in LAYERS of the layer that holds `module` (its longest matching name)."""
    matches = [(len(name), i) for i, (_, names) in enumerate(LAYERS) for name in names
               if module == name or (name != "automl" and module.startswith(name + "."))]
    assert matches, f"{module} is in no layer: add it to LAYERS and to docs/development.md"
    return max(matches)[1]


def against_the_order(graph: dict[str, set[str]]) -> list[str]:
    """`a (layer) -> b (layer)` for every import of a module from a layer above a's own."""
    return sorted(f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
                  for a, deps in graph.items() for b in deps if layer_of(b) > layer_of(a))


def test_every_module_imports_only_its_layer_and_those_below():
    leaks = against_the_order(import_graph())
    assert not leaks, "imports against the layer order:\n" + "\n".join(leaks)


def test_the_order_check_sees_an_import_from_above():
    graph = {"automl.data.dataset": {"automl.execution.trainer", "automl.errors"},
             "automl.execution.trainer": {"automl.data.dataset"}, "automl.errors": set()}
    assert against_the_order(graph) == [
        "automl.data.dataset (data) -> automl.execution.trainer (execution)"]
    assert layer_of("automl.searching.samplers.ga") == layer_of("automl.searching")
    assert layer_of("automl") == len(LAYERS) - 1


def test_automl_help_imports_no_heavy_library():
    # a fresh interpreter, as the command starts: what the parser's construction imported
    code = ("import sys\nfrom automl.cli import main\n"
            "for argv in (['--help'], ['search', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            f"print('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=PACKAGE.parent).stdout
    assert "usage: automl" in out and "automl search" in out
    assert out.splitlines()[-1] == "loaded:", out.splitlines()[-1]


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
