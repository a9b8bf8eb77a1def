"""The Ray Tune runner: early stopping recorded as PRUNED, trials killed by the OS as FAIL.

Uses a fake trainer (a Ray function trainable whose per-epoch fitness is a closed-form function
of lr0) with real Ray and a real SQLite study: at test scale real trainings all sit at mAP 0 in
their first epochs, which gives a scheduler nothing to separate.
"""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from automl.execution.ray_runner import (
    RANK,
    Resources,
    asha_rungs,
    default_pruner,
    rank,
    run_search,
)
from automl.spaces import parse_space
from automl.study import finished_trials, open_study

SPACE = parse_space({"params": {"lr0": {"low": 0.001, "high": 0.1}}})
EPOCHS = 9


def fake_trainer(config):
    """Stands in for a training: fitness grows each epoch, faster for larger lr0."""
    from ray import tune

    lr0 = config["params"]["lr0"]
    for epoch in range(1, config["run"]["epochs"] + 1):
        value = lr0 * epoch
        tune.report({"fitness": value, RANK: value, "epoch": epoch, "map50": value,
                     "map50_95": value, "map75": value, "precision": value, "recall": value,
                     "f1": value})


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    import sys

    from ray import cloudpickle

    # Ray workers cannot import this test module: ship the fake trainer by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    import ray

    ray.shutdown()


def test_schedulers_rank_by_fitness_and_break_ties_at_zero_by_validation_loss():
    learning, stuck = {"fitness": 0.0, "val_loss": 4.1}, {"fitness": 0.0, "val_loss": 7.9}
    assert rank(learning) > rank(stuck)  # mAP 0 for both: the lower loss is ahead
    assert rank({"fitness": 0.0011, "val_loss": 9.0}) > rank({"fitness": 0.001, "val_loss": 1.0})
    assert rank({"fitness": 0.3}) == 0.3  # no loss reported: the fitness alone


def test_asha_rungs_and_default():
    assert asha_rungs(10) == (3, 9)  # never during ultralytics' 3 warmup epochs
    assert asha_rungs(30) == (3, 9, 27)
    assert default_pruner(2) == "none" and default_pruner(10) == "asha"
    assert default_pruner(5) == "none"  # one rung (3) is no ladder


@pytest.mark.parametrize("pruner", ["asha", "median"])
def test_stopped_trials_are_pruned_with_their_epoch_values(in_tmp, pruner):
    from automl.searchers import make_sampler

    study = open_study(f"prune-{pruner}", None, make_sampler("random", SPACE, seed=1))
    run = {"epochs": EPOCHS}
    run_search(study, SPACE.distributions(), run, n_trials=12, resources=Resources(1, 1, 0),
               pruner=pruner, trainable=fake_trainer)
    trials = study.trials
    assert len(finished_trials(study)) == 12
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and complete
    for t in complete:
        assert sorted(t.intermediate_values) == list(range(1, EPOCHS + 1))
    for t in pruned:
        steps = sorted(t.intermediate_values)
        assert steps and steps == list(range(1, len(steps) + 1)) and len(steps) < EPOCHS
        assert t.user_attrs["epochs"] == len(steps)
    # what was stopped was the weak: every pruned trial is below the best complete one
    best = max(t.value for t in complete)
    assert all(t.params["lr0"] * len(t.intermediate_values) < best for t in pruned)


def fake_slow_trainer(config):
    """Stands in for a training of 0.4 s an epoch."""
    import time

    from ray import tune

    for epoch in range(1, config["run"]["epochs"] + 1):
        time.sleep(0.4)
        tune.report({"fitness": 0.1 * epoch, RANK: 0.1 * epoch, "epoch": epoch})


def test_no_trial_starts_after_the_timeout_and_running_ones_finish(in_tmp):
    from automl.searchers import make_sampler

    study = open_study("timeout", None, make_sampler("random", SPACE, seed=1))
    run_search(study, SPACE.distributions(), {"epochs": 3}, n_trials=100,
               resources=Resources(2, 1, 0), trainable=fake_slow_trainer, timeout=4)
    trials = study.trials
    # ~1.2 s a trial, 2 at a time: a handful started within 4 s, far from the 100 allowed
    assert 2 <= len(trials) <= 20
    assert all(t.state == TrialState.COMPLETE for t in trials)  # none cut short
    assert all(sorted(t.intermediate_values) == [1, 2, 3] for t in trials)


def fake_trainer_killed_by_the_os(config):
    """Stands in for a training the OS kills (e.g. the OOM killer) in its second epoch."""
    import os
    import signal

    from ray import tune

    for epoch in range(1, config["run"]["epochs"] + 1):
        if config["number"] == 0 and epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        tune.report({"fitness": 0.1 * epoch, "epoch": epoch})


def test_a_trial_killed_by_the_os_is_fail_and_the_search_goes_on(in_tmp):
    from automl.searchers import make_sampler

    study = open_study("killed", None, make_sampler("random", SPACE, seed=1))
    events = []
    run_search(study, SPACE.distributions(), {"epochs": 3}, n_trials=2,
               resources=Resources(1, 1, 0), trainable=fake_trainer_killed_by_the_os,
               on_event=events.append)
    first, second = study.trials
    assert first.state == TrialState.FAIL
    assert "process died" in first.user_attrs["error"]
    assert first.intermediate_values == {1: pytest.approx(0.1)}
    assert second.state == TrialState.COMPLETE and second.value == pytest.approx(0.3)
    assert [e.state for e in events] == ["FAIL", "COMPLETE"]


def test_a_search_after_the_first_searchs_folder_was_deleted_still_runs(tmp_path, monkeypatch):
    """Ray stays up between searches in one process; its workers inherit the first one's cwd."""
    import shutil

    import ray

    from automl.searchers import make_sampler

    ray.shutdown()  # so that the next search starts Ray inside the folder deleted below
    first_dir = tmp_path / "first"
    first_dir.mkdir()
    for where, name in ((first_dir, "first"), (tmp_path, "second")):
        monkeypatch.chdir(where)
        study = open_study(name, f"sqlite:///{tmp_path}/{name}.db",
                           make_sampler("random", SPACE, seed=0))
        run_search(study, SPACE.distributions(), {"epochs": 2}, n_trials=2,
                   resources=Resources(1, 1, 0), trainable=fake_trainer)
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2, name
        shutil.rmtree(first_dir, ignore_errors=True)
