"""automl promote: real full-data trainings of a study's trial, recorded back on the study."""

from __future__ import annotations

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from automl.api import studies_table
from automl.cli import main
from automl.fitness import parse_fitness
from automl.results.promotion import full_data_yaml, promote
from automl.study import CONFIG_ATTR, default_storage, get_storage, promotions
from tests.conftest import run_cli

DISTS = {"lr0": FloatDistribution(1e-5, 0.1, log=True), "momentum": FloatDistribution(0.6, 0.98)}


def make_study(name, data, trials):
    """A study as `automl search` leaves it: the config attr and finished trials."""
    study = optuna.create_study(study_name=name, storage=get_storage(None, name), direction="maximize")
    study.set_user_attr(CONFIG_ATTR, {
        "fixed": {"optimizer": "SGD"}, "fitness": "v5", "data": str(data), "model": "yolo11n.yaml",
        "epochs": 2, "imgsz": 64, "batch": 4, "fraction": 0.5, "space_keys": ["lr0", "momentum"],
    })
    for state, value, params in trials:
        study.add_trial(create_trial(state=state, value=value, params=params, distributions=DISTS))
    return study


@pytest.mark.integration
def test_promote_trains_best_trial_on_full_data_resumes_and_records(in_tmp, tiny_data):
    make_study("s", tiny_data, [
        (TrialState.COMPLETE, 0.10, {"lr0": 0.01, "momentum": 0.9}),
        (TrialState.COMPLETE, 0.30, {"lr0": 0.02, "momentum": 0.8}),  # the best
        (TrialState.FAIL, None, {"lr0": 0.05, "momentum": 0.7}),
    ])
    lines: list[str] = []

    def stop_after_first_epoch(line):
        lines.append(line)
        if line.startswith("epoch 1/2"):
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C after epoch 1

    with pytest.raises(KeyboardInterrupt):
        promote(study="s", log=stop_after_first_epoch)
    run_dir = in_tmp / "runs" / "promote" / "s-trial1"
    assert (run_dir / "weights" / "last.pt").is_file()
    assert promotions(optuna.load_study(study_name="s", storage=default_storage("s"))) == {}

    # the same call again continues from last.pt: epoch 2 only, not a new training
    lines.clear()
    result = promote(study="s", log=lines.append)
    assert result.resumed and any(line.startswith("resuming s-trial1") for line in lines)
    assert not any(line.startswith("epoch 1/2") for line in lines)
    assert result.trial == 1 and result.weights == run_dir / "weights" / "best.pt"
    assert result.weights.is_file() and result.last.is_file()
    epochs = (run_dir / "results.csv").read_text().strip().splitlines()[1:]
    assert [int(float(r.split(",")[0])) for r in epochs] == [1, 2]

    # it trained the trial's hyperparameters on the FULL data (the user's data.yaml, 16 images)
    args = yaml.safe_load((run_dir / "args.yaml").read_text())
    assert (args["lr0"], args["momentum"], args["optimizer"]) == (0.02, 0.8, "SGD")
    assert args["data"] == str(tiny_data) and (args["epochs"], args["imgsz"]) == (2, 64)

    # the promotion is on the study: trial, metrics, fitness of those metrics, weights
    study = optuna.load_study(study_name="s", storage=default_storage("s"))
    record = promotions(study)[1]
    assert record["weights"] == str(result.weights.resolve())
    assert set(record["metrics"]) == {"precision", "recall", "map50", "map75", "map50_95", "f1"}
    assert record["fitness"] == pytest.approx(parse_fitness("v5")(record["metrics"]))
    assert record["params"] == {"optimizer": "SGD", "lr0": 0.02, "momentum": 0.8}
    assert record["resumed"] is True
    assert record["train_seconds"] > 0  # was always None: train_once returns no seconds
    assert record["trained_on"] == "cpu"  # what device auto resolved to (test_gpu: cuda)
    row = next(line for line in studies_table().splitlines() if line.startswith("s "))
    assert f"#1 {record['fitness']:.4f}" in row

    # a finished promotion is not trained again
    lines.clear()
    again = promote(study="s", log=lines.append)
    assert any("already promoted" in line for line in lines)
    assert again.record["weights"] == record["weights"]
    assert len((run_dir / "results.csv").read_text().strip().splitlines()) == 3


def test_full_data_train_plus_val_lists_both_without_copying(tmp_path, tiny_data):
    assert full_data_yaml(tiny_data, "train", tmp_path / "d") == tiny_data
    derived = full_data_yaml(tiny_data, "train+val", tmp_path / "d")
    data = yaml.safe_load(derived.read_text())
    train = (tmp_path / "d" / "train.txt").read_text().split()
    val = (tmp_path / "d" / "val.txt").read_text().split()
    assert len(train) == 24 and len(val) == 8 and set(val) <= set(train)
    assert data["train"].endswith("train.txt") and data["names"] == {0: "ellipse", 1: "rectangle",
                                                                      2: "triangle"}
    assert not list((tmp_path / "d").rglob("*.png"))


def test_no_complete_trial_is_one_line_exit_2(in_tmp, tiny_data):
    make_study("failed", tiny_data, [(TrialState.FAIL, None, {"lr0": 0.01, "momentum": 0.9})])
    result = run_cli("promote", "--study", "failed", cwd=in_tmp)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "automl promote: error: study 'failed' has no COMPLETE trial to promote; run "
        "`automl search --study failed` until one completes")
    assert not (in_tmp / "runs").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["--trial", "0"], "--trial 0: trial is FAIL, not COMPLETE"),
    (["--trial", "7"], "--trial 7: study 'one' has no trial 7"),
    (["--full-data", "all"], "argument --full-data: invalid choice: 'all'"),
    (["--epochs", "0"], "--epochs 0: must be at least 1"),
    (["--data", "nowhere.yaml"], "nowhere.yaml: data.yaml not found"),
    (["--tune-thresholds", "--iou-grid", "0.5", "1.2"], "--iou-grid 1.2: every value must be in (0, 1)"),
    (["--tune-thresholds", "--metric", "precision@recall=1.5"],
     "--metric precision@recall=1.5: write precision@recall=R or recall@precision=P"),
    (["--tune-thresholds", "--metric", "map75", "--per-class"],
     "--per-class with --metric map75: a ranking metric is best at the lowest conf"),
    (["--tune-thresholds", "--folds", "1"], "--folds 1: must be at least 2"),
])
def test_bad_promote_flags_fail_before_training(in_tmp, tiny_data, capsys, args, expected):
    make_study("one", tiny_data, [(TrialState.FAIL, None, {"lr0": 0.01, "momentum": 0.9}),
                                  (TrialState.COMPLETE, 0.2, {"lr0": 0.01, "momentum": 0.9})])
    capsys.readouterr()
    try:  # in-process (argparse errors exit through SystemExit); the subprocess path is tested above
        code = main(["promote", "--study", "one", *args])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (in_tmp / "runs").exists()
