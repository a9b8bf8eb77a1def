"""One declaration per option (issue 29): the parsers, the API's signatures and the checks all
come from automl.options, and every command answers a value that means nothing, or an --out it
cannot use, with one line and exit 2: no traceback, nothing written or overwritten."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import automl
from automl import api
from automl.config import SearchFlags
from automl.options import COMMANDS, number
from tests.conftest import run_cli

# what each command needs to get as far as checking its options (none of it must exist)
REQUIRED = {
    "promote": ["--study", "s"], "validate": ["--study", "s"], "status": ["--study", "s"],
    "export": ["--study", "s"], "report": ["--study", "s"],
    "deploy": ["--weights", "w.pt"], "thresholds": ["--weights", "w.pt", "--data", "d.yaml"],
    "check": ["--data", "d.yaml"], "split": ["--data", "d.yaml", "--out", "o", "--folds", "2"],
    "eda": ["--data", "d.yaml"], "import coco": ["--json", "j.json", "--images", "i", "--out", "o"],
    "demo-data": ["--out", "o"], "fit": ["--budget", "1h"],
}
# keyword arguments of the API functions that have no command-line flag
API_ONLY = {"log", "live", "warmup", "write", "project"}
API = {"promote": api.promote, "validate": api.validate, "deploy": api.deploy,
       "thresholds": api.tune_thresholds, "fit": api.fit}


def test_search_is_declared_once_for_the_parser_the_api_and_its_flags():
    declared = {o.name: o.default for o in COMMANDS["search"].options}
    params = {n: p.default for n, p in inspect.signature(api.search).parameters.items()
              if n not in API_ONLY}
    assert params == declared
    fields = {f.name: f.default for f in dataclasses.fields(SearchFlags)}
    assert fields == declared
    assert automl.search is api.search


@pytest.mark.parametrize("command", sorted(API))
def test_each_api_function_takes_its_commands_options_with_their_defaults(command):
    declared = {o.name: o.default for o in COMMANDS[command].options}
    params = {n: p.default for n, p in inspect.signature(API[command]).parameters.items()}
    assert {n: params[n] for n in declared} == {
        n: (d if d is not None else params[n]) for n, d in declared.items()}
    assert set(params) - set(declared) <= API_ONLY
    assert getattr(automl, {"thresholds": "tune_thresholds"}.get(command, command)) is API[command]


def test_help_texts_list_the_registries():
    from automl.fitness import METRICS, PRESETS
    from automl.searching.samplers import SEARCHERS
    from automl.searching.schedulers import PRUNERS

    search_help = run_cli("search", "--help", cwd=".").stdout
    for name in [*SEARCHERS, *PRUNERS, *PRESETS]:
        assert f"{name}" in search_help, name
    promote_help = run_cli("promote", "--help", cwd=".").stdout
    assert all(m in promote_help for m in METRICS)


def _bad_values(option) -> list[str]:
    """Values the option's own type or check rejects."""
    if option.switch:
        return []
    if option.choices:
        return ["bogus"]
    candidates = {int: ["abc", "", "-5", "0"], number: ["abc", "nan", "", "-1", "0"]}.get(
        option.type, ["", "   "])
    bad = []
    for text in candidates:
        try:
            value = option.type(text) if option.type else text
        except ValueError:
            bad.append(text)  # the parser refuses it
            continue
        if option.check and option.check(value):
            bad.append(text)
    return bad


CASES = [(name, option.cli_flag, value) for name, command in COMMANDS.items()
         for option in command.options for value in _bad_values(option)]


@pytest.mark.parametrize(("command", "flag", "value"), CASES,
                         ids=[f"{c}{f}={v!r}" for c, f, v in CASES])
def test_a_value_that_means_nothing_is_one_line_exit_2(tmp_path, command, flag, value):
    required = [a for a in REQUIRED.get(command, []) if True]
    if flag in required:  # the bad value replaces the required one
        i = required.index(flag)
        required = required[:i] + required[i + 2:]
    result = run_cli(*command.split(), *required, flag, value, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert flag in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing may be written"


def test_an_option_for_a_replay_is_refused_without_one(tmp_path):
    result = run_cli("search", "--replay-epoch-seconds", "0.5", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("automl search: error: --replay-epoch-seconds 0.5: "
                                            "applies to --replay only")


def test_an_option_for_another_searcher_is_refused(tmp_path):
    result = run_cli("search", "--searcher", "tpe", "--ga-parent", "weighted", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("automl search: error: --ga-parent weighted: applies to "
                                     "--searcher ga only (this search uses tpe); leave it out")


FOLDER_OUTS = ["demo-data", "split", "import coco", "export"]
FILE_OUTS = ["eda", "report"]


def _args_with_out(command: str, out) -> list[str]:
    required = [a for a in REQUIRED.get(command, [])]
    if "--out" in required:
        i = required.index("--out")
        required = required[:i] + required[i + 2:]
    return [*command.split(), *required, "--out", str(out)]


@pytest.mark.parametrize("command", FOLDER_OUTS)
def test_a_folder_output_that_is_a_file_or_cannot_be_written_is_refused(tmp_path, command):
    existing = tmp_path / "mine.txt"
    existing.write_text("keep me\n")
    for out, says in ((existing, "is a file; give a folder"),
                      (existing / "sub", "cannot write there")):
        result = run_cli(*_args_with_out(command, out), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        line = result.stderr.strip()
        assert "\n" not in line and f"--out {out}: {says}" in line, line
        assert existing.read_text() == "keep me\n"


@pytest.mark.parametrize("command", ["demo-data", "import coco", "split"])
def test_a_folder_holding_someone_elses_files_is_never_written_into(tmp_path, command):
    folder = tmp_path / "mydata"
    folder.mkdir()
    (folder / "data.yaml").write_text("mine\n")
    if command == "split":  # split needs a dataset to get that far
        from automl.data.demo import make_demo_dataset

        data = make_demo_dataset(tmp_path / "d", n_train=8, n_val=4, seed=0)
        args = ["split", "--data", str(data), "--folds", "2", "--out", str(folder)]
    else:
        args = _args_with_out(command, folder)
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "already holds files and nothing in it may be overwritten" in result.stderr
    assert [p.name for p in folder.iterdir()] == ["data.yaml"]
    assert (folder / "data.yaml").read_text() == "mine\n"


@pytest.mark.parametrize("command", FILE_OUTS)
def test_a_file_output_that_is_a_folder_or_cannot_be_written_is_refused(tmp_path, command):
    # a folder is written into, under the command's own file name: unless that is a folder
    folder = tmp_path / "a-folder"
    (folder / f"{command}.html").mkdir(parents=True)
    blocker = tmp_path / "mine.txt"
    blocker.write_text("keep me\n")
    for out, says in ((folder, f"{folder / command}.html is a folder; give a file name"),
                      (blocker / "r.html", "cannot write there")):
        result = run_cli(*_args_with_out(command, out), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        line = result.stderr.strip()
        assert "\n" not in line and f"--out {out}: {says}" in line, line
    assert list(folder.iterdir()) == [folder / f"{command}.html"]
    assert blocker.read_text() == "keep me\n"


def test_a_split_writes_again_where_it_wrote_before(tmp_path):
    from automl.data.demo import make_demo_dataset

    data = make_demo_dataset(tmp_path / "d", n_train=8, n_val=4, seed=0)
    args = ["split", "--data", str(data), "--folds", "2", "--out", str(tmp_path / "folds")]
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
