"""Live progress and `automl status` (issue 18): what a user watching a long search sees."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution

from automl.config import StudyConfig
from automl.execution.events import EpochEvent, TrialEvent
from automl.results.progress import LiveProgress, status_text
from automl.study import BUDGET_ATTR, CONFIG_ATTR

DIST = {"lr0": FloatDistribution(1e-4, 0.1)}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def study_with(done: int, epochs: int = 10):
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(CONFIG_ATTR, StudyConfig.from_dict({"epochs": epochs}).to_dict())
    for i in range(done):
        study.add_trial(optuna.trial.create_trial(
            params={"lr0": 0.01}, distributions=DIST, value=0.1 * (i + 1),
            user_attrs={"epochs": epochs, "train_seconds": 2.0 * epochs}))
    return study


def test_plain_lines_at_most_every_interval_with_running_trials_and_an_eta():
    clock, lines = Clock(), []
    progress = LiveProgress(study_with(0), 4, lines.append, live=False, interval=30, clock=clock)
    for epoch in range(1, 6):  # one trial, 2 s an epoch
        clock.now = 2.0 * epoch
        progress(EpochEvent(0, epoch, 10, 0.01 * epoch, 2.0 * epoch))
    assert lines == []  # 10 s in: nothing yet
    clock.now = 31.0
    progress(EpochEvent(0, 6, 10, 0.06, 12.0))
    (line,) = lines
    assert line.startswith("progress: 0/4 trials done, best -, ETA ")
    assert "#0 epoch 6/10 fitness 0.0600 2.0s/epoch" in line
    # 6 epochs in 31 s; left: 4 of this trial + 3 trials x 10 epochs = 34 epochs -> ~176 s
    assert 170 <= progress.eta_seconds() <= 180
    clock.now = 40.0
    progress(EpochEvent(0, 7, 10, 0.07, 14.0))
    assert len(lines) == 1  # not again within 30 s


def test_the_eta_keeps_the_trials_pace_not_the_searchs_start_up():
    # Ray's start and the search's setup (20 s here) come before any epoch: counting them as
    # the pace made a GPU search of 84 s say "ETA 46 min" at its first progress line
    clock, lines = Clock(), []
    progress = LiveProgress(study_with(0), 8, lines.append, live=False, interval=1e9, clock=clock)
    for epoch in range(1, 6):  # four trials at once, 2 s an epoch, from t=20
        clock.now = 20.0 + 2.0 * epoch
        for trial in range(4):
            progress(EpochEvent(trial, epoch, 10, 0.01 * epoch, 2.0 * epoch))
    # 20 epochs in the 10 s since the trainings began; left: 4 x 5 + 4 waiting x 10 = 60 -> 30 s
    assert 29 <= progress.eta_seconds() <= 31


def test_a_finished_trial_prints_its_line_and_leaves_the_running_view():
    study, lines = study_with(1), []
    progress = LiveProgress(study, 3, lines.append, live=False, clock=Clock())
    progress(EpochEvent(1, 1, 10, 0.0, 2.0))
    progress(TrialEvent(1, "PRUNED", 0.05, {}, None, 8.0, 4))
    assert lines == ["trial 1/3  #1  PRUNED after 4 epochs (fitness 0.0500)  (8.0s)  |  "
                     "best 0.1000 (#0)"]
    assert "running" not in progress.status_line()


def test_status_reads_a_search_from_its_storage_alone():
    study = study_with(2)
    study.set_user_attr(BUDGET_ATTR, {"trials": 6, "concurrency": 2})
    running = study.ask(DIST)
    running.report(0.12, step=3)
    running.set_user_attr("epochs", 3)
    running.set_user_attr("train_seconds", 7.5)
    text = status_text(study)
    first, *table = text.splitlines()
    # 2 s an epoch, 7 epochs left of #2 + 3 trials x 10 epochs, 2 at a time: 37 s
    assert first == f"study '{study.study_name}': 2/6 trials done, 1 running, best 0.2000 (#1), ETA 37 s"
    assert table[1].split() == ["#2", "3/10", "0.1200", "2.5"]


def test_a_best_trial_within_printed_digits_of_the_plain_training_ties():
    from automl.results.verdicts import baseline_verdict
    from automl.study import BASELINE_ATTR

    study = optuna.create_study(direction="maximize")
    dist = {"lr0": FloatDistribution(1e-4, 1e-1, log=True)}
    for value, attrs in ((0.41230, {BASELINE_ATTR: True}), (0.41231, {})):
        study.add_trial(optuna.trial.create_trial(params={"lr0": 0.01}, distributions=dist,
                                                  value=value, user_attrs=attrs))
    verdict = baseline_verdict(study)
    assert verdict.startswith("best #1 ties the plain training #0 at fitness 0.4123")
    assert "+0.0000" not in verdict
    study.add_trial(optuna.trial.create_trial(params={"lr0": 0.02}, distributions=dist,
                                              value=0.4500))
    assert "best #2 0.4500 beats the plain training #0 0.4123 by +0.0377" in baseline_verdict(study)
