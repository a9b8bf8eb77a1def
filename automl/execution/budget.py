"""A search inside a time budget: the probe that measures an epoch, and the pace that keeps to it.

- `measure_epoch`: one epoch of the plain training on the trial's data, model and device, timed
  before the search (a replay's epoch takes --replay-epoch-seconds).
- `fit_budget`: the flags the budget's plan (automl.searching.budget_plan) gives the search.
- `Pace`: while the search runs, the searcher asks it before each new trial; it projects the
  trials' own epoch times and refuses a trial that would end after the budget. Running trials,
  the plain training first of all, always finish.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from automl.errors import ConfigError
from automl.searching.budget_plan import MARGIN, BudgetPlan, plan_budget

# Seconds a search takes after its last trial: the summary (Ray has started before the plan, so
# its start is part of what the plan knows is spent).
STARTUP_S = 5.0
# Seconds a trial takes besides its epochs: a trainer's process and ultralytics' import (a
# replayed trial: Ray's scheduling alone).
TRIAL_OVERHEAD_S = {"train": 5.0, "replay": 1.0}
# The latest trials whose pace a new trial is projected from.
RECENT = 4


def measure_epoch(plan, *, threads: int, limit_s: float, seed: int = 0) -> float | None:
    """Seconds of one epoch of the plain training on the plan's mini split, model and device.

    The probe trains in this process and is thrown away; its time counts against the budget.

    Returns:
        the seconds (model build included), or None when it ran past `limit_s` (stopped there).
    """
    from automl.data.splits import make_mini_dataset
    from automl.execution.trainer import train_once
    from automl.ultralytics_env import quiet_ultralytics

    make_mini_dataset(plan.dataset, plan.config.fraction, plan.mini_dir, seed=seed)
    folder = Path(plan.run.project).parent / "probe"
    run = replace(plan.run.for_baseline(), epochs=1, project=str(folder), threads=threads,
                  keep_weights="none", measure=False)
    seconds: list[float] = []
    started = time.monotonic()
    try:
        # a trial's output goes nowhere either (its progress bars write to the streams)
        with quiet_ultralytics(), open(os.devnull, "w") as null, \
                contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
            outcome = train_once({}, run, name="epoch",
                                 report=lambda e: seconds.append(e.train_seconds),
                                 should_stop=lambda: time.monotonic() - started > limit_s)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if "error" in outcome:
        raise ConfigError(f"--budget: the plain training failed while its epoch was timed "
                          f"({outcome['error']}); run without --budget to see the trial fail")
    return None if outcome.get("stopped") or not seconds else seconds[-1]


def fit_budget(flags, resolve: Callable, *, started: float, cpu_count: int, gpu_count: int,
               say: Callable[[str], None], after: int = 0, after_s: float = 0.0):
    """The SearchPlan of a budgeted search: its trials, epochs, share and concurrency fitted.

    Args:
        flags: the checked SearchFlags (flags.budget set).
        resolve: SearchFlags -> SearchPlan (automl.searching.planning.resolve_search on the
            search's data and space); the plan of `flags` gives the most epochs and share.
        started: time.monotonic() when the command started (the budget's clock).
        after, after_s: full-data trainings and seconds to keep for after the search
            (automl.searching.budget_plan.plan_budget).

    Returns:
        The plan of the fitted flags, its `budget` set (a BudgetPlan).

    Raises:
        ConfigError: a budget too small for the plain training and one more trial.
    """
    from automl import defaults as D
    from automl.durations import duration_text, parse_duration
    from automl.execution.ray_runner import init_ray
    from automl.searching.budget_plan import MIN_EPOCHS, MIN_TRIALS
    from automl.searching.planning import auto_concurrency

    budget_s = parse_duration(flags.budget)
    replay = bool(flags.replay)
    plan = resolve(flags)
    stored, done = _resumed(plan.name, flags.storage)
    if stored is not None:  # a study goes on with the epochs and share it measured
        flags = replace(flags, epochs=stored.epochs, fraction=stored.fraction)
        plan = resolve(flags)
    init_ray(address=flags.address)  # its start is spent before the plan, not guessed

    def concurrency(n: int) -> int:
        if flags.concurrency is not None:
            return flags.concurrency
        return auto_concurrency(trials=n, cpu_count=cpu_count, gpu_count=gpu_count,
                                cpus_per_trial=flags.cpus_per_trial,
                                gpus_per_trial=flags.gpus_per_trial, device=flags.device,
                                one_at_a_time="--replay" if replay else
                                "--address" if flags.address else None)[0]

    overhead = TRIAL_OVERHEAD_S["replay" if replay else "train"]
    if replay:
        epoch_s = float(flags.replay_epoch_seconds)
    else:
        # timed on the threads a trial gets when the most trials run at once
        most = concurrency(10**6)
        threads = max(1, int(flags.cpus_per_trial or cpu_count // most))
        # an epoch longer than what is left of the budget: no plan can fit, stop timing there
        limit = max(1.0, budget_s * (1 - MARGIN) - (time.monotonic() - started) - STARTUP_S)
        say(f"budget: timing one epoch of your plain training on the mini split ({threads} "
            "thread(s)) to plan the search")
        epoch_s = measure_epoch(plan, threads=threads, limit_s=limit, seed=flags.seed or 0)
        if epoch_s is None:
            waves = math.ceil(MIN_TRIALS / concurrency(MIN_TRIALS))
            least = (time.monotonic() - started + STARTUP_S
                     + waves * min(MIN_EPOCHS, plan.run.epochs) * limit) / (1 - MARGIN)
            raise ConfigError(f"--budget {flags.budget}: too small: one epoch of the plain "
                              f"training took more than {limit:.0f} s here; the plain training "
                              "and one more trial need more than --budget "
                              f"{duration_text(least)} (or a smaller --imgsz or --fraction)")
    budget = plan_budget(
        budget_s=budget_s, spent_s=time.monotonic() - started, epoch_s=epoch_s,
        # a replayed epoch takes the same time on any share, and its record fixes the epochs;
        # a study that goes on keeps both
        fraction=plan.config.fraction,
        fraction_fixed=replay or stored is not None or str(flags.fraction) != D.AUTO,
        epochs=plan.run.epochs, epochs_fixed=replay or stored is not None,
        trials_cap=None if flags.trials is None else max(1, flags.trials - done),
        concurrency=concurrency, trial_overhead_s=overhead, startup_s=STARTUP_S,
        resumed=done > 0, after=after, after_s=after_s, asha=flags.pruner in (None, "asha"))
    # the share the plan timed, pinned: --fraction auto would pick anew for other epochs
    fitted = replace(flags, trials=done + budget.trials, epochs=budget.epochs,
                     fraction=budget.fraction)
    return replace(resolve(fitted), budget=budget, fraction_why=(
        plan.fraction_why if budget.fraction == plan.config.fraction else "--budget"))


def _resumed(name: str, storage: str | None):
    """(the config a study was made with, its finished trials); (None, 0) for a new study."""
    from automl.errors import StudyError
    from automl.study import finished_trials, open_study, study_config

    try:
        study = open_study(name, storage, create=False)
    except StudyError:
        return None, 0
    config = study_config(study)
    return (config if config.epochs else None), len(finished_trials(study))


@dataclass
class Pace:
    """Whether one more trial still ends inside the budget, at the pace the trials keep.

    A trial's pace is its seconds per epoch between its first report and its latest, and its
    start the time before its first epoch (a new worker process, ultralytics' import and model
    build: reused processes start faster). A new trial is projected at the latest trial's start
    and the median pace of the latest RECENT trials; before any trial reported, at the plan's.

    Attributes:
        end: time.monotonic() by which the last trial must end (the budget less its margin and
            the time kept for after the search).
        epochs: epochs of a whole trial.
        trial_s: the plan's seconds of a whole trial (before any trial reported).
        budget_s: the budget (for the closing line).
    """

    end: float
    epochs: int
    trial_s: float
    budget_s: float
    clock: Callable[[], float] = time.monotonic
    # trial number -> [its start, (epoch, time) of its first report, (epoch, time) of its latest]
    _trials: dict[int, list] = field(default_factory=dict)
    refused: int = 0  # trials the pace did not launch

    @classmethod
    def of(cls, plan: BudgetPlan, started: float) -> Pace:
        return cls(end=started + plan.budget_s * (1 - MARGIN) - plan.reserve_s, epochs=plan.epochs,
                   trial_s=plan.trial_s, budget_s=plan.budget_s)

    def started(self, number: int) -> None:
        self._trials[number] = [self.clock(), None, None]

    def epoch(self, number: int, epoch: int) -> None:
        trial = self._trials.setdefault(number, [self.clock(), None, None])
        trial[2] = (epoch, self.clock())
        if trial[1] is None:
            trial[1] = trial[2]

    def _measured(self, trial: list) -> tuple[float, float] | None:
        """(start seconds, seconds per epoch) of a trial that reported."""
        start, first, latest = trial
        if first is None:
            return None
        if latest[0] > first[0]:
            per_epoch = (latest[1] - first[1]) / (latest[0] - first[0])
            return max(0.0, first[1] - start - first[0] * per_epoch), per_epoch
        return 0.0, (first[1] - start) / max(1, first[0])  # one report: all of it epochs

    def trial_seconds(self) -> float:
        """Seconds a trial launched now is expected to take, to its last epoch."""
        measured = [m for m in map(self._measured, list(self._trials.values())) if m]
        if not measured:
            return self.trial_s
        recent = measured[-RECENT:]
        return recent[-1][0] + self.epochs * statistics.median(p for _, p in recent)

    def fits(self) -> bool:
        """Whether a trial launched now ends inside the budget (counts a refusal when not)."""
        if self.clock() + self.trial_seconds() <= self.end:
            return True
        self.refused += 1
        return False

    def ending(self, finished: int, planned: int, elapsed: float) -> str:
        """How the budget went, in one line (after the last trial)."""
        from automl.durations import duration_text

        stopped = ""
        if self.refused and finished < planned:
            stopped = (f"; the measured pace (~{duration_text(self.trial_seconds())} a trial) "
                       f"left no room for the other {planned - finished}")
        return (f"budget: {finished}/{planned} trials in {duration_text(elapsed)} of "
                f"{duration_text(self.budget_s)}{stopped}")
