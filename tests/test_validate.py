"""`automl validate`: the study's top trials and plain training trained on the full data, the
mini ranking judged against the full one, the verdict stored, promoted and reported."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from automl.results.promotion import _pick_trial
from automl.results.reporting import write_report
from automl.results.validation import Row, candidates, judge, rank_correlations, validate
from automl.study import (
    BASELINE_ATTR,
    CONFIG_ATTR,
    REPEAT_OF_ATTR,
    SEED_ATTR,
    VALIDATES_ATTR,
    VALIDATION_ATTR,
    default_storage,
    get_storage,
)
from tests.conftest import run_cli

optuna.logging.set_verbosity(optuna.logging.WARNING)
DISTS = {"lr0": FloatDistribution(1e-5, 0.1, log=True), "momentum": FloatDistribution(0.6, 0.98)}


def make_study(name, data, trials, epochs=2):
    """A searched study as `automl search` leaves it (the mini fitness values are made up: the
    validation's own trainings are real)."""
    study = optuna.create_study(study_name=name, storage=get_storage(None, name),
                                direction="maximize")
    study.set_user_attr(CONFIG_ATTR, {
        "fixed": {"optimizer": "SGD", "batch": 4}, "baseline_fixed": {"batch": 4},
        "fitness": "v5", "data": str(data), "model": "yolo11n.yaml", "epochs": epochs,
        "imgsz": 64, "batch": 4, "fraction": 0.5, "space_keys": ["lr0", "momentum"]})
    for state, value, params, attrs in trials:
        study.add_trial(create_trial(state=state, value=value, params=params, distributions=DISTS,
                                     user_attrs=attrs))
    return study


SIX = [  # the plain training and five searched configurations, one failed trial
    (TrialState.COMPLETE, 0.05, {"lr0": 0.01, "momentum": 0.937}, {BASELINE_ATTR: True}),
    (TrialState.COMPLETE, 0.30, {"lr0": 0.02, "momentum": 0.8}, {}),
    (TrialState.COMPLETE, 0.20, {"lr0": 0.005, "momentum": 0.9}, {}),
    (TrialState.FAIL, None, {"lr0": 0.05, "momentum": 0.7}, {}),
    (TrialState.COMPLETE, 0.25, {"lr0": 0.04, "momentum": 0.85}, {}),
    (TrialState.COMPLETE, 0.10, {"lr0": 0.001, "momentum": 0.95}, {}),
    (TrialState.COMPLETE, 0.15, {"lr0": 0.08, "momentum": 0.7}, {}),
]


def rows(pairs, baseline=0):
    """Rows from (mini, [full per seed]) pairs; the `baseline`-th is the plain training."""
    return [Row(number=i, baseline=i == baseline, mini=m, full=dict(enumerate(f)))
            for i, (m, f) in enumerate(pairs)]


def test_a_ranking_that_holds_is_trusted_and_the_gain_counted_per_seed():
    v = judge(rows([(0.1, [0.10, 0.12]), (0.2, [0.20, 0.21]), (0.3, [0.31, 0.29]),
                    (0.4, [0.40, 0.43]), (0.5, [0.52, 0.49]), (0.6, [0.60, 0.38])]))
    # one swap (the last two) in six: rho 1 - 6*2/(6*35), tau (15 - 2)/15
    assert v.spearman == pytest.approx(1 - 12 / 210) and v.kendall == pytest.approx(13 / 15)
    assert v.spearman_ci[0] > 0.3 and v.spearman_ci[1] == pytest.approx(1.0)
    assert v.mini_winner == 5 and v.full_winner == 4 and not v.same_winner  # 0.505 > 0.49
    assert v.gain == pytest.approx(0.505 - 0.11) and (v.wins, v.compared) == (2, 2)
    assert v.advice == []
    assert "full winner #4 beats the plain training #0 by +0.3950" in "\n".join(v.lines())


def test_a_ranking_the_full_data_reverses_says_what_to_change():
    v = judge(rows([(0.6, [0.1, 0.1]), (0.5, [0.2, 0.2]), (0.4, [0.3, 0.3]), (0.3, [0.4, 0.4]),
                    (0.2, [0.5, 0.5])], baseline=4))
    assert v.spearman == pytest.approx(-1.0)
    assert v.full_winner == 4 == v.baseline  # the plain training wins on the full data
    assert any("--fraction" in a and "does not reliably predict" in a for a in v.advice)
    assert any("the plain training #4 wins on the full data" in a for a in v.advice)


def test_noise_wider_than_the_differences_widens_the_interval_below_the_threshold():
    # the means rank perfectly, but the seeds disagree more than the configurations differ
    v = judge(rows([(0.1, [0.0, 0.4]), (0.2, [0.05, 0.45]), (0.3, [0.1, 0.5]),
                    (0.4, [0.15, 0.55])]))
    assert v.spearman == pytest.approx(1.0)
    assert v.spearman_ci[0] < 0.3 and any("does not reliably predict" in a for a in v.advice)


def test_rank_correlations_are_scipys_ties_included():
    import numpy as np
    from scipy import stats

    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (50, 7)).astype(float)  # many ties
    y = x + rng.integers(-2, 3, (50, 7))
    rho, tau = rank_correlations(x, y)
    for i in range(50):
        want_rho, want_tau = stats.spearmanr(x[i], y[i])[0], stats.kendalltau(x[i], y[i])[0]
        assert rho[i] == pytest.approx(want_rho, nan_ok=True)
        assert tau[i] == pytest.approx(want_tau, nan_ok=True)
    assert np.isnan(rank_correlations([1, 1, 1], [1, 2, 3])[0][0])  # constant: undefined


def test_when_the_search_used_every_image_the_advice_is_about_noise():
    noisy = [(0.1, [0.0, 0.4]), (0.2, [0.05, 0.45]), (0.3, [0.1, 0.5]), (0.4, [0.15, 0.55])]
    v = judge(rows(noisy), fraction=1.0)
    assert len(v.advice) == 1 and "--repeats K" in v.advice[0] and "--fraction" not in v.advice[0]


def test_too_few_configurations_are_not_judged():
    v = judge(rows([(0.1, [0.1]), (0.2, [0.2])]))
    assert math.isnan(v.spearman) and "too few configurations (2)" in v.advice[0]


def test_candidates_are_the_top_trials_and_the_plain_training(in_tmp, tiny_data):
    study = make_study("c", tiny_data, SIX)
    picked = candidates(study, 2)
    assert [(c.number, c.baseline, c.mini) for c in picked] == [(1, False, 0.30), (4, False, 0.25),
                                                                (0, True, 0.05)]
    assert [c.number for c in candidates(study, 10)] == [1, 4, 2, 6, 5, 0]  # #0 once
    # a repeated trial ranks by its mean (noise-aware), before single lucky trainings
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.26, params=SIX[4][2],
                                 distributions=DISTS, user_attrs={REPEAT_OF_ATTR: 4, SEED_ATTR: 1}))
    assert [c.number for c in candidates(study, 2)][:2] == [4, 1]
    assert candidates(study, 1)[0].mini == pytest.approx(0.255)


@pytest.mark.parametrize(("args", "expected"), [
    (["--top", "0"], "--top 0: must be at least 1"),
    (["--seeds", "0"], "--seeds 0: must be at least 1"),
    (["--full-data", "all"], "argument --full-data: invalid choice: 'all'"),
    (["--data", "nowhere.yaml"], "nowhere.yaml: data.yaml not found"),
    (["--study", "missing"], "--study missing: no such study"),
    (["--study", "failed"], "study 'failed' has no COMPLETE trial to validate"),
])
def test_bad_validate_flags_fail_before_training(two_studies, args, expected):
    argv = ["validate", "--study", "v", *args] if args[0] != "--study" else ["validate", *args]
    result = run_cli(*argv, cwd=two_studies)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (two_studies / "runs").exists()
    study = optuna.load_study(study_name="v",
                              storage=default_storage("v", two_studies / "studies"))
    assert VALIDATION_ATTR not in study.user_attrs
    assert optuna.get_all_study_names(default_storage("v", two_studies / "studies")) == ["v"]


@pytest.fixture(scope="module")
def two_studies(tmp_path_factory, tiny_data):
    """A working folder with a searched study `v` and a study `failed` without a COMPLETE trial."""
    work = tmp_path_factory.mktemp("bad-validate")
    before = os.getcwd()
    os.chdir(work)
    try:
        make_study("v", tiny_data, SIX)
        make_study("failed", tiny_data, [SIX[3]])
    finally:
        os.chdir(before)
    return work


def test_promote_takes_the_validated_winner_and_says_so(in_tmp, tiny_data):
    study = make_study("p", tiny_data, SIX)
    said = []
    assert _pick_trial(study, None, said.append).number == 1  # not validated: the best trial
    verdict = judge(rows([(0.05, [0.1, 0.1]), (0.30, [0.2, 0.3]), (0.20, [0.5, 0.4])]))
    study.set_user_attr(VALIDATION_ATTR, verdict.as_dict())
    assert _pick_trial(study, None, said.append).number == 2
    assert said == ["promoting the validated full-data winner #2 (full-data fitness 0.4500 +- "
                    "0.0707 over 2 seeds; automl validate) instead of the best mini-data trial #1"]
    assert _pick_trial(study, 4, said.append).number == 4  # --trial still wins
    page = write_report(study, in_tmp / "r.html").read_text()
    assert "Mini against full data (automl validate)" in page
    assert "full winner #2" in page and "Spearman" in page


def _companion(name):
    return optuna.load_study(study_name=f"{name}-validate", storage=default_storage(name))


@pytest.mark.integration  # 12 real trainings through Ray, one interrupted validation process
def test_validate_trains_six_configurations_twice_resumes_and_judges(in_tmp, tiny_data,
                                                                      ray_session):
    make_study("v", tiny_data, SIX, epochs=1)
    cmd = [sys.executable, "-m", "automl", "validate", "--study", "v", "--top", "5", "--seeds",
           "2"]
    proc = subprocess.Popen(cmd, cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    before = []
    while time.monotonic() < deadline and not before:  # Ctrl-C once a run has finished
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.5)
        try:
            before = [t for t in _companion("v").trials if t.state == TrialState.COMPLETE]
        except KeyError:
            continue
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; finished runs are kept" in err and "Traceback" not in err

    lines = []
    result = validate(study="v", top=5, seeds=2, log=lines.append)
    assert any(f"{len(before)}/12 runs finished before" in line for line in lines), lines
    trials = result.companion.trials
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    keys = sorted((t.user_attrs[VALIDATES_ATTR], t.user_attrs[SEED_ATTR]) for t in done)
    assert keys == sorted((n, s) for n in (0, 1, 2, 4, 5, 6) for s in (0, 1))  # each once
    assert {t.number for t in before} <= {t.number for t in done}  # kept, not trained again
    for t in done:  # the link to the searched trial, its params, the plain training marked
        assert t.params == SIX[t.user_attrs[VALIDATES_ATTR]][2]
        assert t.user_attrs.get(BASELINE_ATTR, False) == (t.user_attrs[VALIDATES_ATTR] == 0)
        assert 0 <= t.value <= 1 and t.user_attrs["epochs"] == 1
    loss = {(t.user_attrs[VALIDATES_ATTR], t.user_attrs[SEED_ATTR]): t.user_attrs["val_loss"]
            for t in done}
    assert all(loss[(n, 0)] != loss[(n, 1)] for n in (0, 1, 2, 4, 5, 6))  # the seed trained

    stored = optuna.load_study(study_name="v", storage=default_storage("v")).user_attrs[
        VALIDATION_ATTR]
    assert [r["number"] for r in stored["rows"]] == [1, 4, 2, 6, 5, 0]
    assert all(len(r["full"]) == 2 for r in stored["rows"])
    assert stored["full_winner"] == max(stored["rows"], key=lambda r: (r["full_mean"],
                                                                       -r["number"]))["number"]
    assert stored["settings"]["companion"] == "v-validate" and stored["settings"]["epochs"] == 1
    assert any(line.startswith("mini vs full ranking over 6 configurations") for line in lines)

    status = run_cli("status", "--study", "v-validate", "--storage", default_storage("v"),
                     cwd=in_tmp)
    assert status.returncode == 0 and "12" in status.stdout, status.stdout + status.stderr

    lines.clear()  # the same command once more: nothing left to train
    again = validate(study="v", top=5, seeds=2, log=lines.append)
    assert any("12/12 runs finished before, 0 queued now" in line for line in lines), lines
    assert len(again.companion.trials) == len(trials)
    assert again.verdict.as_dict()["rows"] == stored["rows"]


def test_a_full_winner_within_printed_digits_of_the_plain_training_ties():
    v = judge(rows([(0.1, [0.30, 0.30]), (0.2, [0.20, 0.21]), (0.3, [0.300001, 0.300002])]))
    assert v.full_winner == 2 and 0 < v.gain < 5e-5
    text = "\n".join(v.lines())
    assert "full winner #2 ties the plain training #0" in text and "+0.0000" not in text
