"""Real searches: Ray Tune runs real ultralytics trainings on tiny generated data."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import automl
from automl.config import RunSpec
from automl.execution.ray_runner import Resources, run_search
from automl.fitness import parse_fitness
from automl.searching.spaces import load_space
from automl.study import ERROR_ATTR, finished_trials, open_study

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]
METRICS = ("precision", "recall", "map50", "map75", "map50_95", "f1")


def tiny_search(data, **kw):
    args = dict(data=str(data), space="lr_momentum", searcher="ga", trials=2, seed=0,
                fraction=0.5, epochs=2, imgsz=64, batch=4, log=lambda line: None)
    args.update(kw)
    return automl.search(**args)


def test_two_trial_search_records_complete_trials_with_metrics(in_tmp, tiny_data):
    result = tiny_search(tiny_data)
    study = optuna.load_study(study_name="data-lr_momentum",
                              storage="sqlite:///studies/data-lr_momentum.db")
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    fit = parse_fitness("v5")
    for t in trials:
        assert set(t.params) == {"lr0", "lrf", "momentum"}
        for key in METRICS:
            assert 0.0 <= t.user_attrs[key] <= 1.0
        # the value is the v5 fitness of the stored metrics, and every epoch left a value
        assert t.value == pytest.approx(fit(t.user_attrs))
        assert t.user_attrs["fitness"] == t.value
        assert t.user_attrs["device"] == "cpu"  # the torch device that trained it
        assert sorted(t.intermediate_values) == [1, 2]
        assert t.value == pytest.approx(max(t.intermediate_values.values()))
    # the first trial is the plain training: ultralytics' optimizer=auto for 8 images of 3
    # classes (AdamW, lr0 0.01 / (4 + 3), momentum 0.9), ultralytics' default lrf
    assert trials[0].params == {"lr0": 0.001429, "lrf": 0.01, "momentum": 0.9}
    assert trials[0].user_attrs["automl:baseline"] is True
    assert study.user_attrs["automl:config"]["fixed"] == {
        "optimizer": "AdamW", "batch": 4}
    best_yaml = in_tmp / "studies" / "data-lr_momentum" / "best_hyperparameters.yaml"
    assert result.best_hyperparameters_path == best_yaml.relative_to(in_tmp)
    assert best_yaml.read_text().count("lr0:") == 1
    # the mini split lists half of train and of val; images were not copied
    mini = in_tmp / "studies" / "data-lr_momentum" / "mini"
    assert len((mini / "train.txt").read_text().split()) == 8
    assert len((mini / "val.txt").read_text().split()) == 4

    # the same command again with a larger budget continues the study to 3 trials in total
    tiny_search(tiny_data, trials=3)
    again = optuna.load_study(study_name="data-lr_momentum",
                              storage="sqlite:///studies/data-lr_momentum.db")
    assert len(again.trials) == 3 and len(finished_trials(again)) == 3
    assert [t.params for t in again.trials[:2]] == [t.params for t in trials]
    assert result.to_dataframe().shape[0] == 3


def test_a_trial_that_raises_is_fail_with_its_error_and_the_search_goes_on(in_tmp, tiny_data):
    space = load_space("lr_momentum")
    study = open_study("broken", None)
    # a model file no trial can build (a .pt would be refused before the search: pin_weights)
    run = RunSpec(data=str(tiny_data), model="missing-model.yaml", epochs=1, imgsz=64, batch=4,
                  fitness="v5", fixed={"optimizer": "SGD"}, project=str(in_tmp / "trials"),
                  threads=1)
    events = []
    run_search(study, space.distributions(), run, n_trials=2, resources=Resources(1, 1, 0),
               on_event=events.append)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    for t in study.trials:
        assert "missing-model.yaml" in t.user_attrs[ERROR_ATTR]
    assert [e.state for e in events] == ["FAIL", "FAIL"]


@pytest.mark.parametrize("keep", ["best", "none"])
def test_finished_trials_keep_their_weights_only_as_asked(in_tmp, tiny_data, keep):
    tiny_search(tiny_data, trials=3, keep_weights=keep, pruner="none", study=f"k-{keep}")
    study = optuna.load_study(study_name=f"k-{keep}", storage=f"sqlite:///studies/k-{keep}.db")
    folders = sorted(p.parent.name for p in (in_tmp / "studies" / f"k-{keep}" / "trials")
                     .glob("trial_*/weights"))
    best = max((t for t in study.trials if t.state == TrialState.COMPLETE),
               key=lambda t: (t.value, -t.number))
    if keep == "none":
        assert folders == []
    else:  # only the best trial's, and the study says where
        assert folders == [f"trial_{best.number:04d}"]
        kept = Path(best.user_attrs["weights"])
        # one file (best.pt, or last.pt where the final epoch was not ultralytics' best), stripped
        assert kept.parent.name == "weights" and kept.name in ("best.pt", "last.pt")
        assert sorted(kept.parent.iterdir()) == [kept] and kept.stat().st_size < 10e6


def test_a_space_searching_model_and_imgsz_trains_and_promotes_each_trials_own(in_tmp,
                                                                                tiny_data):
    import yaml

    from tests.conftest import write

    space = write(in_tmp / "sizes.yaml", "params:\n"
                  "  model: {choices: [yolo11n.yaml, yolov8n.yaml]}\n"
                  "  imgsz: {choices: [32, 64]}\n"
                  "  lr0: {choices: [0.01]}\n")
    tiny_search(tiny_data, space=str(space), searcher="grid", trials=5, epochs=1,
                keep_weights="all", study="sizes")
    study = optuna.load_study(study_name="sizes", storage="sqlite:///studies/sizes.db")
    assert study.user_attrs["automl:config"]["space_keys"] == ["model", "imgsz", "lr0"]
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert {(t.params["model"], t.params["imgsz"]) for t in done[1:]} == {
        ("yolo11n.yaml", 32), ("yolo11n.yaml", 64), ("yolov8n.yaml", 32), ("yolov8n.yaml", 64)}
    for t in done:  # ultralytics trained each trial's own model at its own size
        args = yaml.safe_load((in_tmp / "studies" / "sizes" / "trials" / f"trial_{t.number:04d}"
                               / "args.yaml").read_text())
        assert (args["model"], args["imgsz"]) == (t.params["model"], t.params["imgsz"])
    pick = next(t for t in done[1:] if t.params == {"model": "yolov8n.yaml", "imgsz": 32,
                                                    "lr0": 0.01})
    promoted = automl.promote(study="sizes", trial=pick.number, epochs=1, log=lambda line: None)
    assert (promoted.record["model"], promoted.record["imgsz"]) == ("yolov8n.yaml", 32)
    args = yaml.safe_load((promoted.run_dir / "args.yaml").read_text())
    assert (args["model"], args["imgsz"]) == ("yolov8n.yaml", 32)


def test_a_multi_objective_search_measures_each_trials_own_weights(in_tmp, tiny_data):
    # model x imgsz x lr0 against latency, under the edge device's 100 MB cap: every trial's own
    # trained weights measured, both values told to the study, the front shown and reported
    from automl.results.reporting import write_report
    from automl.study import pareto_trials
    from tests.conftest import write

    space = write(in_tmp / "edge.yaml", "params:\n"
                  "  model: {choices: [yolo11n.yaml, yolov8n.yaml]}\n"
                  "  imgsz: {choices: [32, 64]}\n"
                  "  lr0: {low: 0.001, high: 0.02, log: true}\n")
    lines = []
    tiny_search(tiny_data, space=str(space), searcher="tpe", trials=3, epochs=1, study="edge",
                objectives="fitness,latency", max_size_mb=100.0, log=lines.append)
    study = optuna.load_study(study_name="edge", storage="sqlite:///studies/edge.db")
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 3 and [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    for t in done:
        assert 1.0 < t.user_attrs["size_mb"] < 10.0  # a stripped nano model: ~3-6 MB
        assert 0.0 < t.user_attrs["latency_ms"] < 60_000.0  # ms; a starved CPU is slow
        assert t.values[1] == t.user_attrs["latency_ms"]
        assert t.constraints == {"size_mb": t.user_attrs["size_mb"] - 100.0}
    text = "\n".join(lines)
    assert "objectives fitness (maximize), latency (minimize); weights <= 100 MB" in text
    assert "Pareto front of study 'edge'" in text and " MB " in text
    front = pareto_trials(study)
    assert front and all(f"#{t.number}" in text.split("Pareto front")[1] for t in front)
    html = write_report(study, in_tmp / "edge.html").read_text()
    assert "Pareto front (fitness against latency" in html


def test_an_nsga2_search_of_fitness_and_size_completes(in_tmp, tiny_data):
    # issue 26: on optuna 5.1 this ended in "cannot pickle '_thread.lock'" before any trial
    from tests.conftest import run_cli

    result = run_cli("search", "--space", "lr_momentum", "--data", tiny_data, "--searcher",
                     "nsga2", "--objectives", "fitness,size", "--trials", "2", "--epochs", "2",
                     "--imgsz", "64", "--batch", "4", "--study", "nsga", cwd=in_tmp)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    study = optuna.load_study(study_name="nsga", storage="sqlite:///studies/nsga.db")
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 2 and "searcher nsga2" in result.stdout
    for t in done:
        assert len(t.values) == 2 and t.values[1] == t.user_attrs["size_mb"] > 1.0
    assert "Pareto front of study 'nsga'" in result.stdout


def test_a_latency_cap_no_trial_meets_exits_2_naming_the_closest_trial(in_tmp, tiny_data):
    from tests.conftest import run_cli

    result = run_cli("search", "--data", tiny_data, "--trials", "1", "--epochs", "1",
                     "--imgsz", "32", "--batch", "4", "--fraction", "0.5", "--study", "tight",
                     "--max-latency-ms", "0.001", cwd=in_tmp)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert line.startswith("automl search: error: no trial met --max-latency-ms 0.001: 1 "
                           "completed, all over; the closest is #0 (") and "\n" not in line
    assert not (in_tmp / "studies" / "tight" / "best_hyperparameters.yaml").exists()
