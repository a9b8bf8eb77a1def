"""Replayed trainings (automl.execution.replay): a record stands in for real trainings, through the same
search, study records and pruners; the in-process simulation equals the Ray Tune path."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

import automl
from automl.api import simulate_search
from automl.errors import ConfigError
from automl.execution.record import load_record
from automl.study import (
    BASELINE_ATTR,
    REPEAT_OF_ATTR,
    SEED_ATTR,
    best_trial,
    repeat_means,
    top_trials,
)
from tests.fakes import fake_record


@pytest.fixture(scope="module")
def record_path(tmp_path_factory):
    return fake_record(tmp_path_factory.mktemp("rec") / "fake.npz")


def test_a_record_round_trips_and_finds_the_nearest_configuration(record_path):
    record = load_record(record_path)
    assert record.params.shape == (40, 3) and record.curves.shape[:3] == (40, 2, 20)
    assert record.nearest({"lr0": 0.0017, "lrf": 0.011, "momentum": 0.9}) == 0
    assert record.nearest({"lr0": 0.0101, "lrf": 0.02, "momentum": 0.93}) == 1
    first, other = record.curve(1, 0), record.curve(1, 1)
    assert [e.epoch for e in first] == list(range(1, 21)) and first[0].fitness == 0.0
    assert first[-1].fitness != other[-1].fitness  # another training seed, another curve
    assert record.curve(1, 2) == first  # seeds beyond the recorded ones wrap around
    assert record.final().shape == (40, 2)


def test_a_blended_replay_is_continuous_between_recorded_configurations(record_path):
    import numpy as np

    record = load_record(record_path)
    at = {k: float(v) for k, v in zip(record.keys, record.params[1], strict=True)}
    # on a recorded configuration the blend is that configuration's own curve and worth
    assert record.blended_curve(at, 0, 4) == record.curve(1, 0)
    assert record.worth(at, 4) == pytest.approx(np.nanmean(record.final()[1]))
    index, weights = record.neighbours({**at, "lr0": at["lr0"] * 1.05}, 4)
    assert len(index) == 4 and weights.sum() == pytest.approx(1.0) and index[0] == 1
    assert weights[0] == weights.max()  # the closest weighs most
    # two nearby points between recorded ones: the nearest-neighbour replay gives the same
    # curve, the blend two different ones (small steps change the outcome)
    a, b = {**at, "lr0": at["lr0"] * 1.05}, {**at, "lr0": at["lr0"] * 1.10}
    assert record.curve(record.nearest(a), 0) == record.curve(record.nearest(b), 0)
    assert record.blended_curve(a, 0, 4)[-1].fitness != record.blended_curve(b, 0, 4)[-1].fitness
    assert record.worth(a, 1) == record.worth(b, 1) != record.worth(a, 4)
    blended = simulate_search(record_path, searcher="ga", trials=4, seed=0, neighbours=4,
                              pruner="none")
    assert len([t for t in blended.trials if t.state == TrialState.COMPLETE]) == 4


def test_a_kernel_replay_weighs_every_configuration_and_smooths_a_recorded_one(record_path):
    import numpy as np

    record = load_record(record_path)
    at = {k: float(v) for k, v in zip(record.keys, record.params[1], strict=True)}
    index, weights = record.neighbours(at, bandwidth=0.1)
    assert len(index) == len(record.params) and weights.sum() == pytest.approx(1.0)
    assert weights[1] == weights.max() < 1.0  # itself weighs most, its neighbours count too
    finals = np.nanmean(record.final(), axis=1)
    assert record.worth(at, bandwidth=0.1) == pytest.approx(float(weights @ finals))
    # a narrow kernel is the recorded configuration itself; a wide one the record's mean
    assert record.worth(at, bandwidth=1e-4) == pytest.approx(finals[1])
    assert record.worth(at, bandwidth=100.0) == pytest.approx(finals.mean(), rel=1e-3)
    # every small step moves the outcome
    a, b = {**at, "lr0": at["lr0"] * 1.05}, {**at, "lr0": at["lr0"] * 1.10}
    assert record.worth(a, bandwidth=0.1) != record.worth(b, bandwidth=0.1)
    kernel = simulate_search(record_path, searcher="tpe", trials=4, seed=0, bandwidth=0.1,
                             pruner="none")
    last = kernel.trials[1]  # trial #1: ultralytics' default values, replayed through the kernel
    assert last.intermediate_values[20] == pytest.approx(
        record.blended_curve(last.params, 0, bandwidth=0.1)[-1].fitness)


def test_the_bandwidth_fit_predicts_each_configuration_from_the_others_only(record_path):
    import sys
    from pathlib import Path

    import numpy as np

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from replay_searchers import fit_bandwidth

    record = load_record(record_path)
    finals = np.nanmean(record.final(), axis=1)
    h = 0.2
    (width, error), = fit_bandwidth(record, [h])
    by_hand = []
    for i, u in enumerate(record.units):
        w = np.exp(-0.5 * (np.sqrt(((record.units - u) ** 2).sum(axis=1)) / h) ** 2)
        w[i] = 0.0
        by_hand.append(abs(w @ finals / w.sum() - finals[i]))
    assert width == h and error == pytest.approx(float(np.mean(by_hand)))


def test_a_blend_ignores_a_neighbour_that_stopped_early():
    import numpy as np

    from automl.execution.record import _blend

    values = np.array([[0.2, 0.4, np.nan], [0.4, np.nan, np.nan]])  # epochs in columns
    blended = _blend(np.array([0.75, 0.25]), values)
    assert blended[0] == pytest.approx(0.25) and blended[1] == pytest.approx(0.4)
    assert np.isnan(blended[2])  # only where every neighbour is missing


def test_a_bad_record_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such record"):
        load_record(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(ConfigError, match="not a record of learning curves"):
        load_record(tmp_path / "junk.npz")


@pytest.mark.parametrize("pruner", ["none", "asha"])
def test_simulated_searches_record_what_a_real_search_records(record_path, pruner):
    study = simulate_search(record_path, searcher="tpe", trials=12, seed=1, pruner=pruner)
    trials = study.trials
    assert len(trials) == 12 and trials[0].user_attrs[BASELINE_ATTR] is True
    assert trials[1].params == {"lr0": 0.01, "lrf": 0.01, "momentum": 0.937}
    assert all(sorted(t.intermediate_values) == list(range(1, len(t.intermediate_values) + 1))
               for t in trials)
    states = {t.state for t in trials}
    assert states <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert (TrialState.PRUNED in states) == (pruner == "asha")
    # nobody is stopped before fitness tells trials apart (epoch 8 in this record)
    assert all(len(t.intermediate_values) >= 8 for t in trials)
    again = simulate_search(record_path, searcher="tpe", trials=12, seed=1, pruner=pruner)
    assert [t.params for t in again.trials] == [t.params for t in trials]


@pytest.mark.integration
def test_the_ray_path_and_the_simulation_agree(record_path, in_tmp):
    """automl.search(replay=...) runs the trials through Ray Tune; simulate_search in this
    process. Same searcher, seed and record: the same trials, values and states."""
    automl.search(data="data.yaml", replay=str(record_path), trials=10, seed=4, pruner="asha",
                  repeats=2, study="r", log=lambda line: None)
    ray_study = optuna.load_study(study_name="r", storage="sqlite:///studies/r.db")
    simulated = simulate_search(record_path, trials=10, seed=4, pruner="asha", repeats=2)
    assert [t.params for t in ray_study.trials] == [t.params for t in simulated.trials]
    assert [t.state for t in ray_study.trials] == [t.state for t in simulated.trials]
    assert [t.value for t in ray_study.trials] == [t.value for t in simulated.trials]
    assert [t.user_attrs.get(REPEAT_OF_ATTR) for t in ray_study.trials][-2:] == \
        [t.user_attrs.get(REPEAT_OF_ATTR) for t in simulated.trials][-2:]
    assert best_trial(ray_study).number == best_trial(simulated).number


@pytest.mark.integration
def test_a_seeded_search_with_trials_at_once_says_what_its_seed_repeats(record_path, in_tmp):
    lines = []
    automl.search(data="data.yaml", replay=str(record_path), trials=4, seed=2, concurrency=2,
                  study="s2", log=lines.append)
    note = [line for line in lines if line.startswith("--seed 2:")]
    assert len(note) == 1 and "with 2 trials at once" in note[0]
    assert "--concurrency 1 repeats a search exactly" in note[0]
    lines.clear()
    automl.search(data="data.yaml", replay=str(record_path), trials=4, seed=2, concurrency=1,
                  study="s1", log=lines.append)
    assert not [line for line in lines if line.startswith("--seed")]


def test_repeats_train_the_best_again_with_another_seed_and_the_best_mean_wins(record_path):
    study = simulate_search(record_path, searcher="random", trials=10, seed=0, pruner="none",
                            repeats=3)
    originals = [t for t in study.trials if REPEAT_OF_ATTR not in t.user_attrs]
    repeats = [t for t in study.trials if REPEAT_OF_ATTR in t.user_attrs]
    # the budget's last 4 trials: the 3 best searched ones and the plain training (#0), so that
    # the pick's mean meets the plain training's mean, like with like
    assert len(originals) == 6 and len(repeats) == 4
    searched = [t for t in originals if not t.user_attrs.get(BASELINE_ATTR)]
    top = sorted(searched, key=lambda t: -t.value)[:3]
    assert [t.user_attrs[REPEAT_OF_ATTR] for t in repeats] == [t.number for t in top] + [0]
    assert repeats[-1].user_attrs[BASELINE_ATTR] is True
    assert all(t.user_attrs[SEED_ATTR] == 1 for t in repeats)
    for r in repeats:  # the same configuration, another recorded training: another value
        original = study.trials[r.user_attrs[REPEAT_OF_ATTR]]
        # (the fake record's configuration 0, the plain training's, has no seed noise)
        assert r.params == original.params and (r.value != original.value or original.number == 0)
    means = repeat_means(study)
    assert set(means) == {t.number for t in top} | {0}
    assert best_trial(study).number == max(means, key=lambda n: means[n][0])
    from automl.results.verdicts import baseline_verdict

    verdict = baseline_verdict(study)
    assert f"#0 {means[0][0]:.4f}" in verdict or f"mean fitness {means[0][0]:.4f}" in verdict
    assert top_trials(study, 10) == sorted(originals, key=lambda t: (-t.value, t.number))


def _variant(record_path, tmp_path, name, *, meta=None, scale_map50=None):
    """The fake record with other meta (what it was trained with) or other map50 values."""
    import dataclasses

    from automl.execution.record import FIELDS, Record

    record = load_record(record_path)
    curves = record.curves.copy()
    if scale_map50 is not None:
        curves[..., FIELDS.index("map50")] *= scale_map50
    return Record(keys=record.keys, params=record.params, seeds=record.seeds, curves=curves,
                  bounds=record.bounds, meta={**record.meta, **(meta or {})}).save(
        tmp_path / name) if dataclasses.is_dataclass(record) else None


def test_a_replay_refuses_a_record_trained_otherwise_in_one_line(record_path, tmp_path):
    from automl.execution.record import record_space

    # recorded with auto's warmup_bias_lr 0; today's searched trials train 0.1
    old = _variant(record_path, tmp_path, "old.npz", meta={
        "fixed": {"optimizer": "AdamW", "warmup_bias_lr": 0.0, "batch": 16},
        "baseline_fixed": {"optimizer": "AdamW", "lr0": 0.001667, "momentum": 0.9,
                           "warmup_bias_lr": 0.0, "batch": 16}})
    from automl.searching.spaces import resolve_space_path

    lr_momentum = str(resolve_space_path("lr_momentum"))  # a space that does not fix it
    with pytest.raises(ConfigError) as info:
        simulate_search(old, searcher="tpe", trials=4, seed=0, space=lr_momentum)
    line = str(info.value)
    assert "\n" not in line and line.startswith(f"--replay {old}: its searched trials trained "
                                                "warmup_bias_lr=0.0, this search's would train "
                                                "warmup_bias_lr=0.1")
    with pytest.raises(ConfigError, match="recorded trainings of 20 epochs cannot stand in for "
                                          "10-epoch trials; use --epochs 20"):
        simulate_search(old, searcher="tpe", trials=4, seed=0, epochs=10)
    # a space fixed as the record was trained replays it
    from automl.searching.spaces import load_space

    path = record_space(load_record(old), tmp_path / "recorded.yaml")
    # auto's pick, written as auto: the searched trials train AdamW, the plain training auto's
    # lr0 as the record's did (a space's fixed optimizer would be the plain training's too)
    assert load_space(str(path)).fixed == {"optimizer": "auto", "warmup_bias_lr": 0.0}
    study = simulate_search(old, searcher="tpe", trials=4, seed=0, space=str(path))
    assert len(study.trials) == 4
    config = study.user_attrs["automl:config"]
    assert config["fixed"]["optimizer"] == config["baseline_fixed"]["optimizer"] == "AdamW"
    assert config["baseline_fixed"]["lr0"] != 0.01
    # without --data too: a replay is the record's data, not the demo's (whose profile trains
    # nbs = batch, which the record did not)
    from automl.api import replay_plan

    plan = replay_plan(old, data=None, space=str(path))
    assert "nbs" not in plan.run.fixed and plan.name == "data-recorded"
    # and through the API, before any trial
    with pytest.raises(ConfigError, match="its searched trials trained warmup_bias_lr=0.0"):
        automl.search(data="data.yaml", replay=str(old), space=lr_momentum, trials=2,
                      log=lambda line: None)


def test_a_replay_without_space_searches_the_records_own(record_path, tmp_path):
    from automl.api import _plan
    from automl.config import SearchFlags

    old = _variant(record_path, tmp_path, "old.npz", meta={
        "fixed": {"optimizer": "AdamW", "warmup_bias_lr": 0.0, "batch": 16},
        "baseline_fixed": {"optimizer": "AdamW", "lr0": 0.001667, "momentum": 0.9,
                           "warmup_bias_lr": 0.0, "batch": 16}})
    record = load_record(old)
    plan = _plan(SearchFlags(replay=str(old), trials=4), say=lambda line: None)
    assert plan.space.name == "recorded" and plan.space.keys == tuple(record.keys)
    # the optimizer auto picked is written as auto: the plain training resolves it again, as the
    # record's did, and the searched trials train what it resolves to
    assert plan.space.fixed == {"optimizer": "auto", "warmup_bias_lr": 0.0}
    assert plan.run.fixed["warmup_bias_lr"] == 0.0
    # the in-process simulation searches the same space
    assert len(simulate_search(old, searcher="tpe", trials=4, seed=0).trials) == 4


def test_a_replay_scores_recorded_metrics_under_the_searchs_fitness(record_path, tmp_path):
    doubled = _variant(record_path, tmp_path, "map50x2.npz", scale_map50=2.0)
    v5 = simulate_search(doubled, searcher="random", trials=6, seed=0, pruner="none")
    map50 = simulate_search(doubled, searcher="random", trials=6, seed=0, pruner="none",
                            fitness="map50")
    for a, b in zip(v5.trials, map50.trials, strict=True):
        assert a.params == b.params
        # fake curves: every metric equals the recorded fitness f, map50 now 2f; v5 unchanged
        assert b.value == pytest.approx(2 * a.value)


def test_running_a_finished_study_again_says_it_is_finished_and_what_to_do(record_path, in_tmp):
    from automl.execution.record import record_space

    space = str(record_space(load_record(record_path), in_tmp / "recorded.yaml"))
    url = f"sqlite:///{in_tmp / 's.db'}"
    study = simulate_search(record_path, storage=url, trials=3, seed=0, space=space)
    lines: list[str] = []
    automl.search(replay=str(record_path), trials=3, storage=url, study=study.study_name,
                  space=space, log=lines.append)
    finished = next(i for i, line in enumerate(lines) if "the study is finished" in line)
    assert "--trials 6 runs 3 more" in lines[finished]
    assert f"automl report --study {study.study_name}" in lines[finished]
    assert any("beats the plain training" in line for line in lines[finished:])  # the summary
    assert len(optuna.load_study(study_name=study.study_name, storage=url).trials) == 3


def test_an_existing_study_opens_as_a_search_result(record_path, in_tmp):
    from automl.errors import StudyError
    from automl.execution.record import record_space

    space = str(record_space(load_record(record_path), in_tmp / "recorded.yaml"))
    url = f"sqlite:///{in_tmp / 'studies' / 'mine.db'}"
    (in_tmp / "studies").mkdir()
    simulate_search(record_path, storage=url, trials=4, seed=0, space=space, study="mine")
    result = automl.SearchResult.load("mine")  # the default storage: studies/mine.db
    assert len(result.to_dataframe()) == 4 and result.best.number == best_trial(result.study).number
    assert result.best_hyperparameters_path is None  # nothing exported yet
    automl.export_study("mine")
    assert automl.SearchResult.load("mine").best_hyperparameters_path.is_file()
    with pytest.raises(StudyError, match="nope"):
        automl.SearchResult.load("nope")


def test_every_shipped_record_loads_and_a_metric_added_since_reads_nan():
    from pathlib import Path

    import numpy as np

    from automl.execution.record import FIELDS

    shipped = sorted(Path("benchmarks/records").glob("*.npz"))
    assert shipped
    for path in shipped:
        record = load_record(path)
        assert record.curves.shape[-1] == len(FIELDS)
        # detection records predate the mask and pose metrics: NaN there, the rest as recorded
        assert np.isnan(record.curves[..., FIELDS.index("mask_map50_95")]).all()
        assert not np.isnan(record.curves[..., FIELDS.index("map50_95")]).all()
