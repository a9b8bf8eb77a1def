"""Benchmarks cannot rot (issue 29): nothing runs the scripts under benchmarks/ in the suite, so
a function moved in the package broke one unnoticed (asha_vs_none.py imported asha_rungs from
where it no longer was). Every script's `--help` runs, and every name a script imports from the
package, at its top or inside a function, exists."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))
# scripts, not the modules they share (peer_sampler.py)
MAINS = [s for s in SCRIPTS if 'if __name__ == "__main__":' in s.read_text()]


def test_there_are_scripts_to_check():
    assert len(MAINS) >= 15 and len(SCRIPTS) > len(MAINS)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_name_a_script_imports_from_automl_exists(script):
    for node in ast.walk(ast.parse(script.read_text(), str(script))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "automl":
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(
                    f"{node.module}.{alias.name}"), (
                    f"{script.name}:{node.lineno}: {node.module} has no {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "automl":
                    importlib.import_module(alias.name)


@pytest.mark.parametrize("script", MAINS, ids=lambda p: p.name)
def test_every_script_answers_help(script):
    done = subprocess.run([sys.executable, str(script), "--help"], cwd=BENCHMARKS,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
