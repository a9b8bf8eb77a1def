"""Bad values, generated: every option of every command (automl.options) is given numbers,
strings and paths drawn from its declaration, in a working world (a dataset, weights, a study,
a COCO export), and the command is run in this process with whatever would train, export,
serve or start Ray replaced by a sentinel that raises.

The property: a value that means nothing (it does not parse, fails the option's declared check,
is empty, or holds control characters or bytes that are not UTF-8) is refused in one line
naming the option, exit 2, no traceback, before the sentinel and with nothing created in the
working directory; any other value is either refused the same way (one line, exit 2, nothing
created) or gets as far as the sentinel or a normal exit, and never ends in a traceback."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import shutil
import socket
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automl.options import COMMANDS, number, plain_text
from tests.test_storage import tree


class Sentinel(Exception):
    """Raised where a command would train, export, serve or start Ray."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """What the commands need to get past their other arguments: files outside the working
    directory (absolute paths), and a study storage copied into each run's working directory."""
    import json

    import optuna
    from PIL import Image
    from ultralytics import YOLO

    from automl.data.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("world")
    data = make_demo_dataset(root / "demo", n_train=8, n_val=4, seed=0)
    YOLO("yolo11n.yaml").save(root / "w.pt")
    (root / "imgs").mkdir()
    Image.new("RGB", (64, 48)).save(root / "imgs" / "a.png")
    (root / "ann.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]}],
        "categories": [{"id": 1, "name": "cow"}]}))
    busy = socket.create_server(("127.0.0.1", 0))  # a port in use, for --port
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{root / 's.db'}",
                                direction="maximize")
    study.add_trial(optuna.trial.create_trial(
        params={"lr0": 0.01}, distributions={"lr0": optuna.distributions.FloatDistribution(
            1e-4, 0.1, log=True)}, value=0.5))
    yield root, data, busy.getsockname()[1]
    busy.close()


def arguments(world) -> dict[str, dict[str, str]]:
    """Each command's working arguments (the storage is the working directory's copy)."""
    root, data, _ = world
    store = {"--study": "s", "--storage": "sqlite:///s.db"}
    return {
        "search": {"--data": str(data), "--study": "g", "--trials": "2", "--epochs": "1",
                   "--imgsz": "32"},
        "promote": store, "validate": store, "status": store, "export": store, "report": store,
        "studies": {"--storage": "sqlite:///s.db"}, "dashboard": {"--storage": "sqlite:///s.db"},
        "deploy": {"--weights": str(root / "w.pt"), "--data": str(data)},
        "thresholds": {"--weights": str(root / "w.pt"), "--data": str(data)},
        "check": {"--data": str(data)}, "eda": {"--data": str(data)},
        "split": {"--data": str(data), "--out": "o", "--folds": "2"},
        "import coco": {"--json": str(root / "ann.json"), "--images": str(root / "imgs"),
                        "--out": "o"},
        "demo-data": {"--out": "o"},
        "fit": {"--data": str(data), "--budget": "1m", "--study": "g", "--epochs": "1",
                "--imgsz": "32"},
    }


@pytest.fixture
def sentinels(monkeypatch):
    """Whatever would train, export, serve or start Ray raises Sentinel instead."""
    import optuna_dashboard

    from automl.execution import ray_runner, trainer
    from automl.results import deployment, thresholds

    def reached(*args, **kwargs):
        raise Sentinel

    for module, name in ((ray_runner, "run_search"), (trainer, "train_once"),
                         (thresholds, "compute_raw_cache"), (deployment, "export_model"),
                         (deployment, "_measure"), (optuna_dashboard, "run_server")):
        monkeypatch.setattr(module, name, reached)


# --- values, drawn from what an option declares ------------------------------------------------

def meaningless_text(text: str) -> bool:
    """Empty, or holding a control character or a byte that is not UTF-8 (a surrogate, as
    Python decodes such bytes in argv)."""
    return not text.strip() or any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


def refused_by_declaration(option, text: str) -> bool:
    """Whether `text` means nothing for the option: its declared type or check refuses it, or
    it is text no option takes (empty, control characters, not UTF-8, longer than a path)."""
    if option.choices:
        return text not in option.choices
    if option.type is str and (meaningless_text(text) or plain_text(text)):
        return True
    try:
        value = option.type(text)
    except (ValueError, OverflowError):
        return True
    return bool(option.check and option.check(value))


SURROGATES = st.sampled_from([os.fsdecode(b) for b in (b"\xff", b"caf\xe9", b"\x80abc")])
TEXT = st.one_of(
    st.sampled_from(["", " ", "\t", "\n"]),
    st.text(st.characters(codec=None, categories=["Cc", "Cs", "Lu", "Ll", "Nd", "P", "Zs"]),
            min_size=1, max_size=12),
    st.builds(lambda a, s: a + s, st.text(max_size=4), SURROGATES),
    st.integers(255, 20_000).map(lambda n: "x" * n),  # very long
)
INTS = st.one_of(st.integers(-2**70, 2**70).map(str),
                 st.sampled_from(["", "1.5", "nan", "1e3", "0x1f", "--1", "9" * 40, " 3"]))
NUMBERS = st.one_of(st.floats().map(repr),
                    st.sampled_from(["", "nan", "inf", "-inf", "1e999", "-0", "1e-320", "abc"]))


def paths(world) -> st.SearchStrategy[str]:
    """Paths: missing (relative and absolute), a file where a folder is wanted and the reverse,
    under a file (cannot be made), somewhere not writable, and the study file in use."""
    root, data, _ = world
    return st.sampled_from([
        "missing.yaml", "no/such/dir/x", "/nonexistent/x.yaml", str(data), str(data.parent),
        str(data / "x"), str(root / "w.pt"), str(root / "imgs"), "/proc/automl/x", ".", "..",
        "s.db", "sqlite:///s.db", "sqlite:///no/such/x.db", f"sqlite:///{data}",
    ])


def values(option, world) -> st.SearchStrategy[str]:
    if option.choices:
        return st.one_of(st.sampled_from(option.choices), TEXT)
    if option.type is int:
        return st.one_of(st.just(str(world[2])), INTS)  # a port (or any number) in use
    if option.type is number:
        return NUMBERS
    return st.one_of(TEXT, paths(world))


CASES = [(c.name, o) for c in COMMANDS.values() for o in c.options if not o.switch]


def run(argv: list[str], cwd: Path) -> tuple[int | None, str, bool]:
    """automl.cli.main(argv) in `cwd`: (exit status, stderr, whether a sentinel was reached)."""
    from automl.cli import main

    err, before, environ = io.StringIO(), os.getcwd(), dict(os.environ)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                return main(argv), err.getvalue(), False
            except SystemExit as e:
                return (e.code if isinstance(e.code, int) else 1), err.getvalue(), False
            except Sentinel:
                return None, err.getvalue(), True
    finally:
        os.chdir(before)
        os.environ.clear()
        os.environ.update(environ)


def check_outcome(world, command: str, option, value: str) -> None:
    """Run the command with the option's value in a new working directory (holding a copy of
    the study) and hold the property (see the module's docstring)."""
    args = {**arguments(world).get(command, {}), option.cli_flag: value}
    argv = [*command.split(), *(x for pair in args.items() for x in pair)]
    with tempfile.TemporaryDirectory() as cwd:
        shutil.copy(world[0] / "s.db", cwd)
        before = tree(cwd)
        code, err, reached = run(argv, Path(cwd))
        after = tree(cwd)
        if after != before:
            # what a process leaves when it ends: its SQLite connections closed (their -wal and
            # -shm files gone with them); collected only here, a full collection is slow
            gc.collect()
            after = tree(cwd)
    assert "Traceback" not in err, err
    means_nothing = refused_by_declaration(option, value) or (
        option.cli_flag == "--port" and value == str(world[2]))
    if means_nothing:
        assert not reached, f"{option.cli_flag} {value!r} got as far as training"
        assert code == 2, err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert after == before, f"a refusal left files behind: {set(after) - set(before)}"
        if means_nothing:
            assert option.cli_flag in lines[0], lines[0]
    else:
        # exit 1 is `automl check` finding problems in the data, nothing else
        assert reached or code == 0 or (code, command) == (1, "check"), (code, err)


# derandomized: CI draws the same values on every run, so a failure it finds is reproduced by
# running the test again
SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])
IDS = [f"{c}{o.cli_flag}" for c, o in CASES]


@pytest.mark.parametrize(("command", "option"), CASES, ids=IDS)
def test_a_value_that_means_nothing_is_refused_in_one_line_before_anything(
        world, sentinels, command, option):
    @settings(max_examples=10, **SETTINGS)
    @given(value=values(option, world).filter(lambda v: refused_by_declaration(option, v)))
    def property_(value):
        check_outcome(world, command, option, value)

    property_()


@pytest.mark.integration  # values a command takes run it up to the sentinel: a second each
@pytest.mark.parametrize(("command", "option"), CASES, ids=IDS)
def test_any_generated_value_is_refused_in_one_line_or_gets_as_far_as_training(
        world, sentinels, command, option):
    @settings(max_examples=4, **SETTINGS)
    @given(value=values(option, world))
    def property_(value):
        check_outcome(world, command, option, value)

    property_()
