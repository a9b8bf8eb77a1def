"""Every command ends with the next step: one line whose command the `automl` parser (or
ultralytics' `yolo train` settings) accepts as printed (automl.next_steps)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from automl.cli import build_parser, main
from automl.next_steps import (
    after_data,
    after_deploy,
    after_fit,
    after_promote,
    after_report,
    after_search,
    after_status,
    after_thresholds,
    after_validate,
)
from automl.results.promotion import PromoteResult


def parsed(line: str):
    """The command of a `next: ...` line, parsed by the automl parser as a shell would pass it."""
    assert line.startswith("next: automl ")
    argv = shlex.split(line.removeprefix("next: ").split("  (")[0])
    return build_parser().parse_args(argv[1:])


def yolo_settings(line: str) -> dict[str, str]:
    """The key=value settings of the `or: yolo train ...` part of a line."""
    argv = shlex.split(line.split("; or: ")[1])
    assert argv[:2] == ["yolo", "train"]
    return dict(a.split("=", 1) for a in argv[2:])


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A replayed search (in this process) with its best_hyperparameters.yaml."""
    from automl.api import simulate_search
    from automl.study import write_best_hyperparameters
    from tests.fakes import fake_record

    folder = tmp_path_factory.mktemp("next")
    study = simulate_search(fake_record(folder / "fake.npz"), trials=4, seed=0)
    return study, write_best_hyperparameters(study, folder / "best hyper.yaml")


def test_a_search_goes_on_to_validate_with_the_yolo_train_of_its_epochs_and_imgsz(searched):
    from automl.searching.spaces import ultralytics_defaults

    study, best = searched
    line = after_search(study, "sqlite:///my studies/x.db", best).line
    args = parsed(line)
    assert (args.command, args.study, args.storage) == ("validate", study.study_name,
                                                        "sqlite:///my studies/x.db")
    yolo = yolo_settings(line)
    assert yolo["cfg"] == str(best)  # a path with a space survives the shell
    assert (yolo["epochs"], yolo["imgsz"]) == ("20", "96")  # what the search's trials used
    assert set(yolo) - {"cfg"} <= set(ultralytics_defaults())
    assert after_search(study, None, None) is None  # nothing completed: nothing to go on with


def test_the_steps_after_a_search_chain_to_deployment(tmp_path):
    args = parsed(after_validate("s", None).line)
    assert (args.command, args.study, args.storage) == ("promote", "s", None)
    weights = tmp_path / "runs dir" / "best.pt"
    promoted = PromoteResult(study="s", trial=3, run_dir=tmp_path, weights=weights,
                             last=weights, metrics={}, fitness=0.5,
                             record={"data": str(tmp_path / "data.yaml")})
    args = parsed(after_promote(promoted).line)
    assert (args.command, args.weights, args.data) == ("thresholds", str(weights),
                                                       str(tmp_path / "data.yaml"))
    promoted.thresholds = object()  # --tune-thresholds ran: deploy comes next
    args = parsed(after_promote(promoted).line)
    assert (args.command, args.weights) == ("deploy", str(weights))
    assert parsed(after_thresholds(weights).line).command == "deploy"
    assert parsed(after_deploy("s", "sqlite:///x.db").line).command == "report"
    assert after_deploy(None, None) is None
    assert parsed(after_status("s", None).line).command == "report"
    assert parsed(after_report("s", None).line).command == "validate"


def test_a_fit_goes_on_to_predict_at_its_thresholds(tmp_path):
    from automl.api import FitResult
    from automl.searching.spaces import ultralytics_defaults

    weights = tmp_path / "my fit" / "best.pt"
    tuned = FitResult(folder=tmp_path / "my fit", weights=weights,
                      summary={"thresholds": {"conf": 0.25, "iou": 0.6}})
    argv = shlex.split(after_fit(tuned).line.removeprefix("next: ").split("  (")[0])
    assert argv[:2] == ["yolo", "predict"]
    settings = dict(a.split("=", 1) for a in argv[2:])
    assert settings == {"model": str(weights), "source": "path/to/images", "conf": "0.25",
                        "iou": "0.6"}
    assert set(settings) <= set(ultralytics_defaults()) | {"model", "source"}
    tuned.summary["thresholds"] = None  # not a detection model: no thresholds to pass
    assert "conf=" not in after_fit(tuned).line and "threshold" not in after_fit(tuned).line


def test_data_commands_go_on_to_check_then_search(tmp_path):
    data = tmp_path / "my data" / "data.yaml"
    args = parsed(after_data(data).line)
    assert (args.command, args.data) == ("search", str(data))
    args = parsed(after_data(data, clean=False).line)
    assert (args.command, args.data) == ("check", str(data))


def test_the_command_prints_its_next_step_last(tiny_data, capsys):
    assert main(["check", "--data", str(tiny_data)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    args = parsed(last)
    assert (args.command, Path(args.data)) == ("search", tiny_data)
