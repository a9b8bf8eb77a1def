"""Caps and objectives (automl.objectives): parsing, the study's record, ranking, the runner.

The runner tests use a fake trainer (named as such, tests/fakes.py) that reports a size and a
latency as a real trial's final epoch does; tests/test_integration.py measures real weights.
"""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from automl.config import SearchFlags, StudyConfig
from automl.errors import ConfigError
from automl.objectives import Goals, feasible, parse_objectives
from automl.study import best_trial, fitness_of, pareto_trials, ranked_trials, top_trials
from tests.test_planning import plan

LR = {"lr0": FloatDistribution(1e-4, 0.1, log=True)}


@pytest.mark.parametrize("text, expected", [
    (None, ("fitness",)), ("fitness", ("fitness",)), ("fitness,latency", ("fitness", "latency")),
    (" fitness , size ", ("fitness", "size")), ("fitness,latency,size",
                                                ("fitness", "latency", "size"))])
def test_objectives_parse(text, expected):
    assert parse_objectives(text) == expected


@pytest.mark.parametrize("text, says", [
    ("fitness,speed", "unknown objective speed"), ("latency,fitness", "start with fitness"),
    ("fitness,size,size", "name each objective once"), (",", "unknown objective (none)")])
def test_bad_objectives_name_the_fix(text, says):
    with pytest.raises(ConfigError, match="--objectives") as e:
        parse_objectives(text)
    assert says in str(e.value)


def test_goals_directions_measures_and_violations():
    goals = Goals(("fitness", "latency"), max_size_mb=100.0)
    assert goals.multi and goals.directions == ["maximize", "minimize"]
    assert goals.measures == ("latency_ms", "size_mb")  # the cap needs the size too
    assert goals.violations({"size_mb": 120.0, "latency_ms": 3.0}) == {"size_mb": 20.0}
    assert goals.values(0.4, {"latency_ms": 3.0, "size_mb": 5.0}) == [0.4, 3.0]
    assert Goals.from_dict(goals.to_dict()) == goals
    assert Goals().measures == () and not Goals().multi and Goals().directions == ["maximize"]
    assert Goals(max_latency_ms=5).caps == {"latency_ms": 5}


def test_a_study_resumed_with_other_goals_is_refused_and_older_studies_still_match():
    stored = StudyConfig.from_dict({"data": "/d.yaml", "epochs": 20, "imgsz": 96}).to_dict()
    assert "objectives" not in stored  # a single-objective study without caps writes no goals
    same = StudyConfig.from_dict({"data": "/d.yaml", "epochs": 20, "imgsz": 96})
    assert same.conflict(stored) is None
    capped = StudyConfig.from_dict({**stored, "max_latency_ms": 5.0})
    assert "max_latency_ms=None, not 5.0" in capped.conflict(stored)
    multi = StudyConfig.from_dict({**stored, "objectives": ["fitness", "size"]})
    assert "objectives=None" in multi.conflict(stored)
    assert multi.goals.objectives == ("fitness", "size")
    assert StudyConfig.from_dict(multi.to_dict()) == multi


def _trial(study, value, *, over=None, **attrs):
    """A COMPLETE trial; `over`: its latency_ms constraint (measured minus cap)."""
    values = value if isinstance(value, list) else [value]
    trial = create_trial(params={"lr0": 0.01}, distributions=LR, values=values, user_attrs=attrs)
    if over is not None:
        trial.set_constraint("latency_ms", over)
    study.add_trial(trial)


def test_a_trial_over_a_cap_is_never_the_best_never_a_top_trial_nor_a_ga_parent():
    from automl.searching.samplers.ga import GASampler
    from automl.searching.spaces import parse_space

    study = optuna.create_study(direction="maximize")
    _trial(study, 0.2, over=-1.0)
    _trial(study, 0.9, over=3.0, latency_ms=8.0)  # fittest, but over the cap
    _trial(study, 0.5, over=-0.5)
    assert best_trial(study).number == 2
    assert [t.number for t, _ in ranked_trials(study)] == [2, 0]
    assert [t.number for t in top_trials(study, 5)] == [2, 0]
    ga = GASampler(space=parse_space({"params": {"lr0": {"low": 1e-4, "high": 0.1,
                                                         "log": True}}}))
    assert [t.number for t in ga._parent_pool(study)] == [2, 0]
    assert not feasible(study.trials[1]) and feasible(study.trials[0])
    assert feasible(create_trial(params={"lr0": 0.01}, distributions=LR, value=0.1))  # no caps


def test_a_multi_objective_study_ranks_by_fitness_and_keeps_its_front():
    from automl.results.summary import front_table, top_table

    study = optuna.create_study(directions=["maximize", "minimize"])
    _trial(study, [0.3, 2.0], latency_ms=2.0, size_mb=5.4)
    _trial(study, [0.5, 9.0], latency_ms=9.0, size_mb=19.0)
    _trial(study, [0.25, 4.0], latency_ms=4.0, size_mb=5.4)  # beaten by #0 on both
    _trial(study, [0.6, 3.0], over=1.0, latency_ms=3.0)  # over a cap: not on the front
    assert fitness_of(study.trials[1]) == 0.5 and best_trial(study).number == 1
    assert [t.number for t in pareto_trials(study)] == [0, 1]
    table = front_table(study, Goals(("fitness", "latency"), max_latency_ms=9.5))
    assert "2 trials" in table and "#0" in table and "#2 " not in table and "#3" not in table
    assert "CPU ms" in top_table(study) and "MB" in top_table(study)


def test_no_feasible_trial_names_the_closest_one():
    from automl.results.verdicts import no_feasible_trial

    study = optuna.create_study(direction="maximize")
    goals = Goals(max_latency_ms=2.0)
    assert no_feasible_trial(study, goals) is None  # nothing completed: nothing to say
    _trial(study, 0.4, over=6.0, latency_ms=8.0)
    _trial(study, 0.3, over=1.5, latency_ms=3.5)
    line = no_feasible_trial(study, goals)
    assert line.startswith("no trial met --max-latency-ms 2: 2 completed, all over")
    assert "closest is #1 (3.5 ms, fitness 0.3000)" in line and "\n" not in line
    _trial(study, 0.1, over=-0.5, latency_ms=1.5)
    assert no_feasible_trial(study, goals) is None


@pytest.mark.parametrize("flags, says", [
    (dict(searcher="ga", objectives="fitness,latency"), "--searcher ga: cannot drive"),
    (dict(searcher="cmaes", objectives="fitness,size"), "--searcher cmaes: cannot drive"),
    (dict(objectives="fitness,latency", pruner="asha"), "--pruner asha: pruning judges fitness"),
    (dict(objectives="fitness,latency", repeats=2), "--repeats 2: repeats rank"),
    (dict(max_size_mb=0.0), "--max-size-mb 0.0: must be a positive number"),
    (dict(max_size_mb=float("nan")), "--max-size-mb nan: must be a positive number"),
    (dict(max_latency_ms=-1.0), "--max-latency-ms -1.0: must be a positive number"),
    (dict(max_size_mb=100.0, replay="r.npz"), "--replay: a record holds no sizes"),
])
def test_goals_a_search_cannot_serve_fail_before_anything_runs(flags, says):
    with pytest.raises(ConfigError) as e:
        plan(SearchFlags(data="/data/mydata.yaml", epochs=20, **flags))
    assert str(e.value).startswith(says)


def test_goals_reach_the_study_config_and_the_trainings():
    p = plan(SearchFlags(data="/data/mydata.yaml", epochs=20, objectives="fitness,latency",
                         max_size_mb=100.0))
    assert p.config.objectives == ("fitness", "latency") and p.config.max_size_mb == 100.0
    assert p.config.pruner == "none" and p.run.measure
    plain = plan(SearchFlags(data="/data/mydata.yaml", epochs=20))
    assert plain.config.goals == Goals() and not plain.run.measure
    assert "objectives" not in plain.config.to_dict()


# the runner: real Ray, a fake trainer (the StudySearcher records sizes and latencies, caps and
# objectives, through Ray Tune)

@pytest.mark.integration
def test_caps_mark_trials_infeasible_and_keep_them_from_the_best(in_tmp, ray_fakes):
    from automl.execution.ray_runner import Resources, run_search
    from automl.searching.samplers import make_sampler
    from automl.searching.spaces import parse_space
    from automl.study import open_study
    from tests.fakes import fake_measured_trainer, fake_run

    space = parse_space({"params": {"lr0": {"low": 0.001, "high": 0.1}}})
    study = open_study("capped", None, make_sampler("random", space, seed=3))
    run_search(study, space.distributions(), fake_run(3), n_trials=8,
               resources=Resources(1, 1, 0), trainable=fake_measured_trainer,
               goals=Goals(max_latency_ms=5.0))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 8
    for t in complete:  # the fake's latency is 100 * lr0 ms: over 5 ms above lr0 0.05
        assert t.user_attrs["latency_ms"] == pytest.approx(100 * t.params["lr0"])
        assert t.constraints == {"latency_ms": pytest.approx(t.user_attrs["latency_ms"] - 5)}
    over = [t for t in complete if t.params["lr0"] > 0.05]
    assert over, "the seed must draw some trials over the cap"
    best = best_trial(study)
    assert best.params["lr0"] <= 0.05
    assert best.value == max(t.value for t in complete if t.params["lr0"] <= 0.05)
    assert best.value < max(t.value for t in complete)  # the fittest was over the cap

@pytest.mark.integration
@pytest.mark.parametrize("searcher", ["tpe", "nsga2"])
def test_a_multi_objective_search_tells_both_values_and_reports_no_epochs(in_tmp, ray_fakes,
                                                                          searcher):
    from automl.execution.ray_runner import Resources, run_search
    from automl.searching.samplers import make_sampler
    from automl.searching.spaces import parse_space
    from automl.study import open_study
    from tests.fakes import fake_measured_trainer, fake_run

    space = parse_space({"params": {"lr0": {"low": 0.001, "high": 0.1}}})
    goals = Goals(("fitness", "latency"))
    study = open_study(f"mo-{searcher}", None, make_sampler(searcher, space, seed=4),
                       directions=goals.directions)
    run_search(study, space.distributions(), fake_run(3), n_trials=6,
               resources=Resources(1, 1, 0), trainable=fake_measured_trainer, goals=goals)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 6
    for t in complete:
        assert t.values == [pytest.approx(3 * t.params["lr0"]),
                            pytest.approx(100 * t.params["lr0"])]
        assert t.intermediate_values == {}  # Optuna refuses report() on several objectives
    # fitness and latency both grow with lr0: every trial is on the front
    assert len(pareto_trials(study)) == 6
    assert math.isclose(fitness_of(best_trial(study)), max(t.values[0] for t in complete))


def test_a_multi_objective_best_is_on_the_front_when_fitness_ties():
    study = optuna.create_study(directions=["maximize", "minimize"])
    _trial(study, [0.5, 9.0])
    _trial(study, [0.5, 4.0])  # as fit, faster: #0 is dominated
    assert [t.number for t in pareto_trials(study)] == [1] and best_trial(study).number == 1


def test_status_shows_a_multi_objective_trials_latest_fitness():
    from automl.results.progress import status_text
    from automl.study import LATEST_FITNESS_ATTR

    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask(LR)
    trial.set_user_attr("epochs", 3)
    trial.set_user_attr(LATEST_FITNESS_ATTR, 0.1234)
    assert "0.1234" in status_text(study)
