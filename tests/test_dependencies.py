"""The bounds say what was tested (issue 26): pyproject.toml's requirements, constraints.txt's pins
and the private APIs automl relies on agree with one another."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
CONSTRAINTS = ROOT / "constraints.txt"


def pins() -> dict[str, Version]:
    """constraints.txt as name -> pinned version."""
    out = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not a pin (name==version)"
            out[canonicalize_name(name)] = Version(version)
    return out


def requirements() -> list[tuple[Requirement, str]]:
    """Every requirement of pyproject.toml (extras included) with its line's comment."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs.extend(extra)
    comments = {}
    for line in PYPROJECT.read_text().splitlines():
        for quoted in re.findall(r'"([^"]+)"', line.split("#", 1)[0]):
            comments.setdefault(quoted, line.partition("#")[2].strip())
    return [(Requirement(s), comments.get(s, "")) for s in specs]


def test_constraints_pin_every_requirement_within_its_bounds():
    pinned = pins()
    for req, _ in requirements():
        name = canonicalize_name(req.name)
        assert name in pinned, f"constraints.txt does not pin {req.name}"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {req.name} {pinned[name]}, outside pyproject's {req}")


def test_each_upper_bound_names_the_pinned_release_it_was_checked_with():
    pinned = pins()
    bounded = [(r, c) for r, c in requirements() if any(s.operator in ("<", "<=", "~=", "==")
                                                        for s in r.specifier)]
    assert {canonicalize_name(r.name) for r, _ in bounded} >= {"optuna", "ray", "ultralytics"}
    for req, comment in bounded:
        checked = re.search(r"checked with (\S+)", comment)
        assert checked, f"pyproject.toml: {req} has an upper bound but no 'checked with X'"
        assert Version(checked.group(1)) == pinned[canonicalize_name(req.name)], (
            f"pyproject.toml: {req} says checked with {checked.group(1)}, constraints.txt pins "
            f"{pinned[canonicalize_name(req.name)]}")


def private_apis() -> list[dict[str, str]]:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["automl"]["private-apis"]


@pytest.mark.parametrize("entry", private_apis(), ids=lambda e: e["api"][:40])
def test_each_private_api_names_where_it_is_used_its_guard_and_the_pinned_release(entry):
    assert Version(entry["checked"]) == pins()[canonicalize_name(entry["package"])], entry
    used_in = ROOT / entry["used-in"]
    # the API's first private name (else its first attribute) appears where it is used
    name = (re.search(r"\b_[A-Za-z]\w*", entry["api"])
            or re.search(r"(?<=\.)[A-Za-z_]\w*", entry["api"])).group(0)
    assert name in used_in.read_text(), f"{entry['used-in']} does not use {name}"
    test_file, _, test_name = entry["guarded-by"].partition("::")
    assert re.search(rf"^def {test_name}\(", (ROOT / test_file).read_text(), re.M), (
        f"{entry['guarded-by']}: no such test")


def test_the_readmes_install_commands_take_the_constraints_and_ci_runs_the_test_one_verbatim():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(python3 -m venv .*)\n```", readme)[:2]
    assert len(commands) == 2 and all("pip install -c constraints.txt -e " in c for c in commands)
    assert commands[1] in (ROOT / ".ci" / "run").read_text().splitlines()
