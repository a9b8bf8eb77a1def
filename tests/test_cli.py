"""The command line: user mistakes are one line on stderr, exit code 2, no traceback.

The cases run automl.cli.main in this process (run_cli); the installed command itself, in a new
process, is checked on a few of them (run_automl)."""

from __future__ import annotations

import pytest

from tests.conftest import run_automl, run_cli, write


@pytest.mark.parametrize(("args", "expected"), [
    (["search", "--trials", "0"], "--trials 0: must be at least 1"),
    (["search", "--searcher", "hyperband"], "--searcher hyperband: unknown"),
    (["search", "--fitness", "0.5*map90"], "unknown metric 'map90'"),
    (["search", "--space", "lr_momentun"], "did you mean 'lr_momentum'"),
    (["search", "--space", "missing.yaml"], "missing.yaml: search space file not found"),
    (["search", "--data", "nowhere/data.yaml"], "error: nowhere/data.yaml: data.yaml not found"),
    (["search", "--fraction", "0"], "--fraction 0: must be in (0, 1]"),
    (["search", "--fraction", "half"], "--fraction half: use a share in (0, 1] or 'auto'"),
    (["search", "--model", "yolo11n.pt"], "--model yolo11n.pt: weights file not found"),
    (["search", "--model", "nosuchmodel.yaml"], "--model nosuchmodel.yaml: no such model YAML"),
    (["search", "--epochs", "many"], "argument --epochs: invalid int value"),
    (["search", "--bogus"], "unrecognized arguments: --bogus"),
    (["search", "--timeout", "0"], "--timeout 0.0: must be > 0 seconds"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, args, expected):
    _exits_2_with_one_line(run_cli(*args, cwd=tmp_path), expected, tmp_path)


@pytest.mark.parametrize(("args", "expected"), [
    (["search", "--bogus"], "unrecognized arguments: --bogus"),  # argparse's own exit
    # ultralytics imported: nothing it logs or warns may reach the user's stderr as a second line
    (["search", "--model", "nosuchmodel.yaml"], "--model nosuchmodel.yaml: no such model YAML"),
])
def test_the_installed_command_exits_2_with_one_line(tmp_path, args, expected):
    _exits_2_with_one_line(run_automl(*args, cwd=tmp_path), expected, tmp_path)


def _exits_2_with_one_line(result, expected, cwd):
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (cwd / "studies").exists() or not list((cwd / "studies").glob("*.db"))


def test_bad_space_file_names_file_and_key(tmp_path):
    write(tmp_path / "space.yaml", "params:\n  lr0: {low: 0.1, high: 0.01}\n")
    result = run_cli("search", "--space", "space.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("automl search: error: space.yaml: lr0: low > high "
                                     "(low=0.1, high=0.01); swap them")


def test_demo_data_and_studies(tmp_path):
    result = run_cli("demo-data", "--out", "d", cwd=tmp_path)
    assert result.returncode == 0 and (tmp_path / "d" / "data.yaml").is_file()
    result = run_cli("studies", cwd=tmp_path)
    assert result.returncode == 0 and "no studies found" in result.stdout


def test_help_is_fast_and_lists_commands(tmp_path):
    result = run_automl("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("search", "demo-data", "studies"):
        assert command in result.stdout


def test_version_is_the_packages(tmp_path):
    from importlib.metadata import version

    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"automl {version('automl')}"
