"""GA sampler logic, against a fake trainer (a cheap closed-form objective), on real Optuna studies."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from automl.searching.samplers import GASampler
from automl.searching.spaces import load_space, parse_space
from tests.fakes import fake_score

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = parse_space({"params": {
    "lr0": {"low": 1e-5, "high": 1e-1, "log": True, "gain": 1.0},
    "lrf": {"low": 0.01, "high": 1.0, "gain": 1.0},
    "momentum": {"low": 0.6, "high": 0.98, "gain": 0.3},
    "mixup": {"low": 0.0, "high": 1.0, "gain": 1.0},
    "close_mosaic": {"low": 0, "high": 10, "gain": 1.0},
    "optimizer": {"choices": ["SGD", "Adam", "AdamW"], "gain": 1.0},
}})
DEFAULTS = {"lr0": 0.01, "lrf": 0.01, "momentum": 0.937, "mixup": 0.0, "close_mosaic": 10,
            "optimizer": "SGD"}


def run_ga(n, *, seed=0, parent="single", space=SPACE, storage=None):
    sampler = GASampler(space=space, defaults=DEFAULTS, seed=seed, parent=parent)
    study = optuna.create_study(direction="maximize", sampler=sampler, storage=storage)
    dists = space.distributions()
    for _ in range(n):
        trial = study.ask(dists)
        study.tell(trial, fake_score(trial.params, sgd_bonus=0.0))
    return study


def test_first_trial_is_the_defaults():
    study = run_ga(1)
    assert study.trials[0].params == DEFAULTS


def test_only_space_keys_are_sampled_and_within_bounds():
    study = run_ga(40)
    for t in study.trials:
        assert set(t.params) == set(SPACE.keys)
        for p in SPACE.params:
            v = t.params[p.name]
            if p.kind == "categorical":
                assert v in p.choices
            else:
                assert p.low <= v <= p.high
                if p.kind == "int":
                    assert isinstance(v, int)


def test_mutation_factor_is_bounded_and_scaled_by_gain():
    sampler = GASampler(space=SPACE, defaults=DEFAULTS, seed=1)
    rng = np.random.default_rng(0)
    parent = {"lr0": 1e-3, "lrf": 0.1, "momentum": 0.8, "mixup": 0.5, "close_mosaic": 5,
              "optimizer": "SGD"}
    ratios = {"lrf": [], "momentum": []}
    for _ in range(3000):
        child = sampler.mutate(parent, rng)
        for key in ratios:
            r = child[key] / parent[key]
            assert 0.3 - 1e-9 <= r <= 3.0 + 1e-9  # factor clipped to [0.3, 3.0]
            ratios[key].append(r)
    # momentum (gain 0.3) moves far less than lrf (gain 1.0)
    spread = {k: np.std(np.log(v)) for k, v in ratios.items()}
    assert spread["momentum"] < 0.5 * spread["lrf"]
    # each key moves with probability ~0.8
    moved = np.mean(np.array(ratios["lrf"]) != 1.0)
    assert 0.75 < moved < 0.85


def test_gain_zero_freezes_a_key_and_something_always_moves():
    space = parse_space({"params": {
        "lr0": {"low": 1e-4, "high": 1e-1, "gain": 0.0},
        "lrf": {"low": 0.01, "high": 1.0, "gain": 1.0},
    }})
    sampler = GASampler(space=space, defaults={"lr0": 0.01, "lrf": 0.5}, seed=0)
    rng = np.random.default_rng(3)
    for _ in range(500):
        child = sampler.mutate({"lr0": 0.01, "lrf": 0.5}, rng)
        assert child["lr0"] == 0.01
        assert child["lrf"] != 0.5  # never a duplicate of the parent


def test_a_parent_at_a_bound_is_never_repeated():
    # lrf's default 0.01 is its lower bound: a mutation that only moves lrf down clips back to
    # the parent; the old check (some factor != 1) let ~1% of children repeat the parent exactly
    space = parse_space({"params": {
        "lr0": {"low": 1e-5, "high": 1e-1, "log": True},
        "lrf": {"low": 0.01, "high": 1.0},
        "momentum": {"low": 0.6, "high": 0.98, "gain": 0.3},
    }})
    parent = {"lr0": 0.01, "lrf": 0.01, "momentum": 0.937}
    sampler = GASampler(space=space, defaults=parent, seed=0)
    children = [sampler.mutate(parent, np.random.default_rng([0, i])) for i in range(2000)]
    assert all(child != parent for child in children)


def test_a_parameter_at_zero_can_move():
    sampler = GASampler(space=SPACE, defaults=DEFAULTS, seed=0)
    rng = np.random.default_rng(0)
    parent = dict(DEFAULTS, mixup=0.0)
    values = [sampler.mutate(parent, rng)["mixup"] for _ in range(50)]
    assert any(v > 0 for v in values)
    assert all(0.0 <= v <= 1.0 for v in values)


def test_same_seed_same_sequence_and_different_seed_differs():
    a = [t.params for t in run_ga(15, seed=7).trials]
    b = [t.params for t in run_ga(15, seed=7).trials]
    c = [t.params for t in run_ga(15, seed=8).trials]
    assert a == b
    assert a != c


def test_fail_and_pruned_trials_are_never_parents():
    space = load_space("lr_momentum")
    sampler = GASampler(space=space, defaults={"lr0": 0.01, "lrf": 0.01, "momentum": 0.937}, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    dists = space.distributions()
    good = {"lr0": 2e-3, "lrf": 0.5, "momentum": 0.8}
    study.add_trial(optuna.trial.create_trial(params=good, distributions=dists, value=0.1))
    far = {"lr0": 0.09, "lrf": 0.02, "momentum": 0.61}
    study.add_trial(optuna.trial.create_trial(params=far, distributions=dists, state=TrialState.FAIL))
    study.add_trial(optuna.trial.create_trial(
        params=far, distributions=dists, state=TrialState.PRUNED, intermediate_values={3: 0.99}))
    for _ in range(60):
        trial = study.ask(dists)
        # every child is one mutation (factor in [0.3, 3]) of the only COMPLETE trial, clipped
        # to the space (lr0 >= 1e-3)
        assert 1e-3 - 1e-12 <= trial.params["lr0"] <= 6e-3 + 1e-12
        study.tell(trial, state=TrialState.FAIL)


def test_weighted_parent_is_the_fitness_weighted_mean():
    space = parse_space({"params": {"lrf": {"low": 0.0, "high": 1.0}}})
    sampler = GASampler(space=space, defaults={"lrf": 0.5}, parent="weighted", seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    dists = space.distributions()
    for lrf, value in ((0.2, 0.1), (0.4, 0.3), (0.8, 0.5)):
        study.add_trial(optuna.trial.create_trial(params={"lrf": lrf}, distributions=dists, value=value))
    parents = sampler._parent_pool(study)
    mixed = sampler.select_parent(parents, study.direction, np.random.default_rng(0))
    w = np.array([0.5, 0.3, 0.1]) - 0.1 + 1e-6
    assert mixed["lrf"] == pytest.approx((np.array([0.8, 0.4, 0.2]) * w).sum() / w.sum())


def test_top_k_limits_the_parent_pool():
    study = run_ga(20)
    sampler = GASampler(space=SPACE, defaults=DEFAULTS, top_k=5)
    pool = sampler._parent_pool(study)
    best5 = sorted((t.value for t in study.trials), reverse=True)[:5]
    assert [t.value for t in pool] == best5


def test_ga_resumes_from_storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'ga.db'}"
    study = run_ga(6, storage=url)
    name = study.study_name
    # a new process: a fresh sampler over the same storage continues from the stored parents
    sampler = GASampler(space=SPACE, defaults=DEFAULTS, seed=0)
    resumed = optuna.load_study(study_name=name, storage=url, sampler=sampler)
    trial = resumed.ask(SPACE.distributions())
    assert trial.params != DEFAULTS and trial.number == 6


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="parent must be one of"):
        GASampler(space=SPACE, parent="elite")
    with pytest.raises(ValueError, match="top_k"):
        GASampler(space=SPACE, top_k=0)
