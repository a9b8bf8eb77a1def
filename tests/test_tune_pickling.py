"""What automl hands to Ray Tune pickles: Tune pickles it when the Tuner is made and again while it
runs (issue 26: on optuna 5.1 NSGAIISampler holds a lock and no longer pickles, and every
`--searcher nsga2` search ended in a traceback before its first trial).

Real Tuners over real SQLite studies, for every searcher in the registry, single- and
multi-objective, with every pruner's scheduler and both trainables (training and replay); no Ray
cluster is started (making a Tuner needs none).
"""

from __future__ import annotations

import threading

import optuna
import pytest
from ray import cloudpickle

from automl.execution.ray_runner import Resources, make_tuner, run_trial
from automl.execution.replay import replay_trial
from automl.execution.study_searcher import StudySearcher
from automl.objectives import Goals
from automl.searching.samplers import SEARCHERS, make_sampler
from automl.searching.schedulers import PRUNERS, make_scheduler
from automl.searching.spaces import parse_space
from automl.study import open_study
from tests.fakes import fake_run

# a grid needs steps: every searcher can take this space
SPACE = parse_space({"params": {"lr0": {"low": 0.001, "high": 0.1, "step": 0.033},
                                "momentum": {"choices": [0.9, 0.937]}}})
CASES = [(name, objectives) for name, entry in SEARCHERS.items()
         for objectives in (("fitness",), ("fitness", "size"))
         if entry.multi_objective or len(objectives) == 1]


def _searcher(name: str, objectives: tuple[str, ...], tmp_path, on_event=None) -> StudySearcher:
    goals = Goals(objectives)
    url = f"sqlite:///{tmp_path / 'pickle.db'}"
    study = open_study(f"pickle-{name}-{len(objectives)}", url,
                       make_sampler(name, SPACE, seed=0, n_trials=8),
                       directions=goals.directions)
    return StudySearcher(study, SPACE.distributions(), fake_run(9), 8, on_event, url, None, goals)


@pytest.mark.parametrize(("name", "objectives"), CASES, ids=[f"{n}-{len(o)}" for n, o in CASES])
def test_every_searcher_and_scheduler_makes_a_tuner(name, objectives, tmp_path):
    lock = threading.Lock()  # a progress display holds one: it must stay on the driver too
    searcher = _searcher(name, objectives, tmp_path, on_event=lambda event: lock.acquire)
    for pruner in PRUNERS:
        for trainable in (run_trial, replay_trial):
            make_tuner(searcher, make_scheduler(pruner, 9), trainable, Resources(2, 1, 0),
                       num_samples=8, storage_path=str(tmp_path / "ray"))


@pytest.mark.parametrize(("name", "objectives"), CASES, ids=[f"{n}-{len(o)}" for n, o in CASES])
def test_a_pickled_searcher_leaves_the_study_on_the_driver(name, objectives, tmp_path):
    searcher = _searcher(name, objectives, tmp_path)
    first = searcher.suggest("t1")  # a trial in flight: its optuna Trial holds the study
    assert first["number"] == 0
    copy = cloudpickle.loads(cloudpickle.dumps(searcher))
    assert copy._study is None and copy._on_event is None and copy._live == {}
    assert copy._run == searcher._run and copy._distributions == searcher._distributions
    with pytest.raises(RuntimeError, match="restored from Ray Tune's saved state"):
        copy.suggest("t2")
    # the driver's searcher is untouched and goes on
    assert searcher._study is not None and "t1" in searcher._live
    assert searcher.suggest("t2")["number"] == 1


class LockedSampler(optuna.samplers.RandomSampler):
    """A sampler that holds a lock, as optuna 5.1's NSGA-II does: on any optuna version."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self._lock = threading.Lock()


def test_a_sampler_that_cannot_pickle_still_makes_a_tuner(tmp_path):
    with pytest.raises(TypeError, match="lock"):
        cloudpickle.dumps(LockedSampler())
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    study = open_study("locked", url, LockedSampler())
    searcher = StudySearcher(study, SPACE.distributions(), fake_run(3), 4, None, url)
    make_tuner(searcher, make_scheduler("asha", 9), run_trial, Resources(1, 1, 0),
               num_samples=4, storage_path=str(tmp_path / "ray"))
