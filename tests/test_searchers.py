"""Every searcher on a fake trainer (closed-form objective) through a real SQLite Optuna study."""

from __future__ import annotations

import optuna
import pytest

from automl.errors import ConfigError, SearchSpaceError
from automl.searching.samplers import SEARCHERS, grid_size, grid_values, make_sampler, queue_first_trials
from automl.searching.spaces import parse_space
from tests.fakes import fake_score

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = parse_space({"params": {
    "lr0": {"low": 1e-4, "high": 1e-1, "step": 1e-4},
    "momentum": {"low": 0.6, "high": 0.98, "step": 0.02, "gain": 0.3},
    "optimizer": {"choices": ["SGD", "AdamW"]},
}})


def run(name, tmp_path, seed, n=6, tag="", in_memory=False):
    url = None if in_memory else f"sqlite:///{tmp_path / f'{name}{tag}.db'}"
    sampler = make_sampler(name, SPACE, seed=seed, n_trials=n,
                           baseline={"lr0": 0.01, "momentum": 0.937, "optimizer": "SGD"})
    study = optuna.create_study(study_name=name, storage=url, sampler=sampler, direction="maximize")
    dists = SPACE.distributions()
    for _ in range(n):
        trial = study.ask(dists)
        study.tell(trial, fake_score(trial.params))
    return study


@pytest.mark.parametrize("name", SEARCHERS)
def test_every_searcher_runs_in_bounds_and_is_reproducible(name, tmp_path):
    a = run(name, tmp_path, seed=3, tag="a")
    b = run(name, tmp_path, seed=3, tag="b", in_memory=True)  # the storage plays no part
    assert len(a.trials) == 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in a.trials)
    for t in a.trials:
        assert 1e-4 <= t.params["lr0"] <= 1e-1
        assert 0.6 <= t.params["momentum"] <= 0.98
        assert t.params["optimizer"] in ("SGD", "AdamW")
    assert [t.params for t in a.trials] == [t.params for t in b.trials]


def test_grid_walks_the_steps_and_choices_without_repeats(tmp_path):
    space = parse_space({"params": {
        "lrf": {"low": 0.1, "high": 0.3, "step": 0.1},
        "cos_lr": {"choices": [False, True]},
    }})
    assert grid_values(space["lrf"]) == [0.1, 0.2, 0.3]
    assert grid_size(space) == 6
    sampler = make_sampler("grid", space, seed=0)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    for _ in range(6):
        t = study.ask(space.distributions())
        study.tell(t, t.params["lrf"])
    seen = {(round(t.params["lrf"], 6), t.params["cos_lr"]) for t in study.trials}
    assert len(seen) == 6


def test_grid_needs_a_step_for_continuous_keys():
    space = parse_space({"params": {"lrf": {"low": 0.01, "high": 1.0}}}, source="s.yaml")
    with pytest.raises(SearchSpaceError, match=r"s.yaml: lrf: the grid searcher needs .*step"):
        make_sampler("grid", space)


def test_unknown_searcher():
    with pytest.raises(ConfigError, match="unknown searcher"):
        make_sampler("hyperband", SPACE)


@pytest.mark.parametrize("name", SEARCHERS)
def test_a_new_study_starts_from_the_plain_training_then_the_defaults_clipped_into_the_space(
        name, tmp_path):
    from automl.study import BASELINE_ATTR, OUTSIDE_ATTR

    url = f"sqlite:///{tmp_path / 'seeded.db'}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize",
                                sampler=make_sampler(name, SPACE, seed=0, n_trials=4))
    plain = {"lr0": 0.001667, "momentum": 0.9, "optimizer": "AdamW"}
    # momentum 0.937 is off the 0.02 grid, lr0 0.5 above the space: both come in clipped
    defaults = {"lr0": 0.5, "momentum": 0.937, "optimizer": "SGD", "lrf": 0.01}
    queued = queue_first_trials(study, name, SPACE, plain, defaults, outside="lr0 off the grid")
    assert queued[0] == {"lr0": pytest.approx(0.0017), "momentum": 0.9, "optimizer": "AdamW"}
    if name in ("ga", "grid"):  # the GA mutates its best trials; a grid visits its own points
        assert len(queued) == 1
    else:
        assert queued[1] == {"lr0": 0.1, "momentum": pytest.approx(0.94), "optimizer": "SGD"}
    assert queue_first_trials(study, name, SPACE, plain, defaults) == []  # queued once only
    first = study.ask(SPACE.distributions())
    assert first.params == queued[0]
    assert first.user_attrs == {BASELINE_ATTR: True, OUTSIDE_ATTR: "lr0 off the grid"}
    study.tell(first, 0.0)
    for expected in queued[1:]:
        trial = study.ask(SPACE.distributions())
        assert trial.params == expected and not trial.user_attrs
        study.tell(trial, 0.0)
    assert study.ask(SPACE.distributions()).params not in queued  # then the searcher takes over


def test_nothing_is_queued_beyond_the_budget(tmp_path):
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", SPACE, seed=0))
    queued = queue_first_trials(study, "tpe", SPACE, {"lr0": 0.002}, {"lr0": 0.01}, budget=1)
    assert queued == [{"lr0": 0.002}] and len(study.trials) == 1


def _pruned_look_good_study(sampler, tmp_path, tag):
    """1 COMPLETE trial at x=0.05; PRUNED: 2 near x=0.95 that got far (0.9 at epoch 9), 27
    between 0.3 and 0.6 stopped at epoch 1 with 0.01."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    dist = {"x": FloatDistribution(0.0, 1.0)}
    storage = f"sqlite:///{tmp_path / f'{tag}.db'}" if tmp_path else None  # None: in memory
    study = optuna.create_study(storage=storage, sampler=sampler, direction="maximize")
    study.add_trial(create_trial(params={"x": 0.05}, distributions=dist, value=0.1))
    for x in (0.95, 0.96):
        study.add_trial(create_trial(params={"x": x}, distributions=dist, state=TrialState.PRUNED,
                                     intermediate_values={1: 0.5, 9: 0.9}))
    for i in range(27):
        study.add_trial(create_trial(params={"x": 0.3 + 0.3 * i / 26}, distributions=dist,
                                     state=TrialState.PRUNED, intermediate_values={1: 0.01}))
    return study, dist


def test_tpe_never_takes_pruned_trials_into_its_good_set(tmp_path):
    """Fake objective, real study. Stock Optuna TPE tops its good set (3 of 30 trials) up with
    the 2 PRUNED trials that got furthest, beside the one COMPLETE trial, and then proposes
    around x=0.95; ours keeps only the COMPLETE trial there and proposes around x=0.05."""
    def proposals(sampler, tag, storage_dir=tmp_path):
        study, dist = _pruned_look_good_study(sampler, storage_dir, tag)
        xs = []
        for _ in range(12):
            trial = study.ask(dist)
            xs.append(trial.params["x"])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)  # FAIL: not seen by TPE
        return xs

    stock = proposals(optuna.samplers.TPESampler(seed=0, n_startup_trials=2, multivariate=True,
                                                 constant_liar=True), "stock", None)
    ours = proposals(make_sampler("tpe", SPACE, seed=0, n_trials=30), "ours")
    assert sum(x > 0.7 for x in stock) >= 9  # the scenario does tell the two apart
    assert sum(x < 0.3 for x in ours) == 12
