"""An in-process stand-in for Ray Tune: a replayed search's trials run one after another, as Ray
Tune runs them at concurrency 1, with the same StudySearcher and scheduler."""

from __future__ import annotations

from dataclasses import dataclass, field

from automl.execution.replay import replayed_epochs


class _Controller:
    """What Ray Tune's schedulers ask of the controller: nothing waits at concurrency 1."""

    def get_live_trials(self) -> list:
        return []


@dataclass(eq=False)
class _Trial:
    """What Ray Tune's schedulers read of a trial."""

    trial_id: str
    config: dict = field(default_factory=dict)


def simulate(study, plan, *, n_trials: int | None = None, on_event=None) -> None:
    """Run a replayed search in this process, as Ray Tune runs it at concurrency 1.

    The same StudySearcher asks the study and records every epoch and outcome, the same
    scheduler (`plan.pruner`) decides on every epoch's result, in the order Ray Tune
    calls them; only Ray's processes are left out. `plan.run.replay` names the record.
    """
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import Searcher

    from automl.execution.study_searcher import StudySearcher
    from automl.searching.schedulers import make_scheduler

    n_trials = n_trials or plan.trials
    searcher = StudySearcher(study, plan.space.distributions(), plan.run, n_trials, on_event)
    scheduler = make_scheduler(plan.pruner, int(plan.run.epochs))
    controller = _Controller()
    for i in range(10 * n_trials + 10):  # far more than a budget can take
        trial_id = f"sim_{i:05d}_{len(study.trials)}"
        config = searcher.suggest(trial_id)
        if config is None or config == Searcher.FINISHED:
            return
        trial = _Trial(trial_id, config)
        scheduler.on_trial_add(controller, trial)
        last = None
        for epoch in replayed_epochs(config):
            result = {**epoch.as_dict(), "node": "", "trial_id": trial_id}
            if scheduler.on_trial_result(controller, trial, result) == TrialScheduler.STOP:
                last = result
                break
            searcher.on_trial_result(trial_id, result)
            last = result
        searcher.on_trial_complete(trial_id, last)
        scheduler.on_trial_complete(controller, trial, last)
