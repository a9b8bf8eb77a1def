"""Ray Tune runs the trials; the Optuna study keeps the record.

`StudySearcher` is a Ray Tune Searcher that asks the study for each trial's params, reports each
epoch's fitness as an intermediate value and tells the study the outcome. All study writes happen
here, in the driver, so trials never touch the storage themselves.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from automl.errors import ConfigError
from automl.study import (
    BASELINE_ATTR,
    ERROR_ATTR,
    OWNER_ATTR,
    finished_trials,
    owner_tag,
    trial_slot_lock,
)
from automl.trainer import METRIC_KEYS, offline_env

FITNESS = "fitness"
# A trial counts as having learned something at a rung once its fitness reaches this (mAP-scale
# metrics lie in [0, 1]; values like 0.0003 in the first epochs are noise).
SCORED = 0.01


PRUNERS = ("asha", "median", "none")


@dataclass(frozen=True)
class Resources:
    """What one trial gets and how many run at once."""

    concurrency: int = 1
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0


@dataclass
class TrialEvent:
    """What the progress line needs to know about a finished trial."""

    number: int
    state: str  # COMPLETE | FAIL | PRUNED
    value: float | None
    metrics: dict[str, float]
    error: str | None
    seconds: float
    epochs: int = 0
    baseline: bool = False  # the user's plain training (trial #0 of a new study)


def _stop_requested() -> bool:
    """True once Ray Tune has decided to stop this trial (e.g. an ASHA rung cut it)."""
    # Ray only acts on a stop at the trial's next report, a whole epoch later; ultralytics
    # polls this after every batch instead. Private API: a missing attribute means "no".
    try:
        from ray.train._internal.session import get_session

        session = get_session()
        return bool(session and session.stop_event.is_set())
    except Exception:
        return False


def run_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one ultralytics training, one report per epoch."""
    import ray
    from ray import tune

    from automl.trainer import train_once

    node = ray.get_runtime_context().get_node_id()

    def report(metrics: dict[str, Any]) -> None:
        tune.report({**metrics, "node": node})

    params, run = config["params"], config["run"]
    if config.get("baseline"):
        # the user's plain training: its own args (the space's fixed ones may differ from them)
        params, run = {}, {**run, "fixed": run["baseline_fixed"]}
    outcome = train_once(params, run, name=f"trial_{config['number']:04d}", report=report,
                         should_stop=_stop_requested)
    if "error" in outcome:
        # Reported, not raised: the searcher marks the trial FAIL with this message.
        tune.report({FITNESS: float("nan"), "error": outcome["error"]})


def _best_epoch(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    scored = [h for h in history if isinstance(h.get(FITNESS), float) and math.isfinite(h[FITNESS])]
    return max(scored, key=lambda h: (h[FITNESS], -h["epoch"])) if scored else None


class StudySearcher:
    """Factory for the Ray Searcher subclass (keeps `ray` out of import time)."""

    def __new__(cls, *args, **kwargs):
        return _make_searcher_class()(*args, **kwargs)


def _make_searcher_class():
    from optuna.trial import TrialState
    from ray.tune.search import Searcher

    class _StudySearcher(Searcher):
        def __init__(
            self,
            study,
            distributions: Mapping[str, Any],
            run: Mapping[str, Any],
            n_trials: int,
            on_event: Callable[[TrialEvent], None] | None = None,
            storage_url: str = "",
            deadline: float | None = None,
        ) -> None:
            super().__init__(metric=FITNESS, mode="max")
            self._deadline = deadline  # time.monotonic() after which no trial starts
            self._study = study
            self._storage_url = storage_url
            self._distributions = dict(distributions)
            self._run = dict(run)
            self._n_trials = n_trials
            self._on_event = on_event
            self._live: dict[str, Any] = {}
            self._history: dict[str, list[dict[str, Any]]] = {}
            self._started: dict[str, float] = {}

        def set_search_properties(self, metric, mode, config, **spec) -> bool:
            return True  # the space comes from the study, not from Tune's config

        def _budget_left(self) -> int:
            running = len(self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
            return self._n_trials - len(finished_trials(self._study)) - running

        def suggest(self, trial_id: str):
            if self._deadline is not None and time.monotonic() >= self._deadline:
                return Searcher.FINISHED  # the time budget: running trials still finish
            with trial_slot_lock(self._storage_url):
                if self._budget_left() <= 0:
                    return Searcher.FINISHED
                trial = self._study.ask(self._distributions)
                self._study._storage.set_trial_system_attr(
                    trial._trial_id, OWNER_ATTR, owner_tag())
            self._live[trial_id] = trial
            self._history[trial_id] = []
            self._started[trial_id] = time.perf_counter()
            return {"params": dict(trial.params), "number": trial.number, "run": self._run,
                    "baseline": bool(trial.user_attrs.get(BASELINE_ATTR))}

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            trial = self._live.get(trial_id)
            if trial is None or "error" in result or "epoch" not in result:
                return
            history = self._history[trial_id]
            if history and history[-1]["epoch"] >= result["epoch"]:
                return  # already recorded
            row = {k: result[k] for k in (*METRIC_KEYS, FITNESS, "epoch", "train_seconds", "val_loss")
                   if k in result}
            history.append(row)
            value = row.get(FITNESS)
            if isinstance(value, float) and math.isfinite(value):
                trial.report(value, step=int(row["epoch"]))

        def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
            if trial_id not in self._live:
                return
            if result and not error:
                # a result the scheduler stopped the trial on reaches only this method
                self.on_trial_result(trial_id, result)
            trial = self._live.pop(trial_id)
            history = self._history.pop(trial_id, [])
            seconds = time.perf_counter() - self._started.pop(trial_id)
            message = None
            if error or result is None:
                message = ("the trial's process died (killed by the OS, e.g. out of memory) "
                           "before it finished")
            elif "error" in result:
                message = str(result["error"])
            best = _best_epoch(history)
            if message is None and best is None:
                message = "training finished without a validation result"
            storage = self._study._storage
            metrics = {}
            if best is not None:
                metrics = {k: best[k] for k in METRIC_KEYS if k in best}
                for key, value in metrics.items():
                    storage.set_trial_user_attr(trial._trial_id, key, value)
                storage.set_trial_user_attr(trial._trial_id, "best_epoch", best["epoch"])
            if result and result.get("node"):  # which Ray node ran it (clusters: --address)
                storage.set_trial_user_attr(trial._trial_id, "ray_node", result["node"])
            if history:
                storage.set_trial_user_attr(trial._trial_id, "epochs", history[-1]["epoch"])
                storage.set_trial_user_attr(
                    trial._trial_id, "train_seconds", history[-1].get("train_seconds")
                )
                loss = history[-1].get("val_loss")  # the last epoch's: a fingerprint of the weights
                if isinstance(loss, float) and math.isfinite(loss):
                    storage.set_trial_user_attr(trial._trial_id, "val_loss", loss)
            last_epoch = history[-1]["epoch"] if history else 0
            if message is not None:
                storage.set_trial_user_attr(trial._trial_id, ERROR_ATTR, message)
                self._study.tell(trial, state=TrialState.FAIL)
                state, value = "FAIL", None
            elif last_epoch < int(self._run["epochs"]):
                # the scheduler stopped it at a rung: PRUNED, never mistaken for COMPLETE
                storage.set_trial_user_attr(trial._trial_id, FITNESS, best[FITNESS])
                self._study.tell(trial, state=TrialState.PRUNED)
                state, value = "PRUNED", best[FITNESS]
            else:
                storage.set_trial_user_attr(trial._trial_id, FITNESS, best[FITNESS])
                self._study.tell(trial, best[FITNESS])
                state, value = "COMPLETE", best[FITNESS]
            if self._on_event:
                self._on_event(TrialEvent(trial.number, state, value, metrics, message, seconds,
                                          last_epoch, bool(trial.user_attrs.get(BASELINE_ATTR))))

        def fail_live(self, message: str) -> list[int]:
            """Mark every trial still running as interrupted (FAIL, queued again once)."""
            from automl.study import mark_interrupted

            numbers = []
            for trial_id in list(self._live):
                trial = self._live.pop(trial_id)
                mark_interrupted(self._study, trial, message)
                numbers.append(trial.number)
            return numbers

    return _StudySearcher


_local_ray_cwd: str | None = None  # where the local Ray that init_ray started was started


def init_ray(num_cpus: int | None = None, num_gpus: int | None = None, address: str | None = None):
    """Start a private local Ray (or join `address`), quiet, with offline ultralytics in workers."""
    import logging

    import ray

    os.environ.update(offline_env())
    # Tune's own loggers write CSV/JSON/TensorBoard per trial; the study is our record.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    global _local_ray_cwd
    if ray.is_initialized():
        if _local_ray_cwd is None or os.path.isdir(_local_ray_cwd):
            return
        # The local Ray started by an earlier search in this process inherited that search's
        # working directory, since deleted (a temporary folder): its new worker processes would
        # start there and Ray Tune's trainables fail on os.getcwd(). Start a fresh one here.
        ray.shutdown()
    _local_ray_cwd = None
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        runtime_env={"env_vars": {**offline_env(), "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}},
    )
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
        _local_ray_cwd = os.getcwd()


# No rung before this epoch: ultralytics ramps the learning rate up over its first 3 epochs
# (warmup_epochs), and comparing trials during the ramp ranks mostly noise (measured: with a
# rung at epoch 1, GA children of the defaults were stopped there on validation-loss noise).
MIN_GRACE = 3


def _grace(epochs: int, reduction_factor: int) -> int:
    return max(min(MIN_GRACE, epochs), epochs // reduction_factor**2)


def asha_rungs(epochs: int, reduction_factor: int = 3) -> tuple[int, ...]:
    """The epochs at which ASHA compares trials: grace, grace*rf, ... below `epochs`."""
    grace = _grace(epochs, reduction_factor)
    rungs = []
    t = grace
    while t < epochs:
        rungs.append(t)
        t *= reduction_factor
    return tuple(rungs)


def default_pruner(epochs: int) -> str:
    """ASHA when the epochs leave room for at least two rungs, else none."""
    return "asha" if len(asha_rungs(epochs)) >= 2 else "none"


def informative(values: list[float]) -> bool:
    """Whether fitness values of trials at one epoch can tell the trials apart.

    At least half of them, and two at the least, must have scored (fitness >= SCORED): trained
    from scratch, every trial has mAP 0 for the first epochs (on small data for most of a short
    training), and a decision among zeros is a decision on noise.
    """
    scored = sum(1 for v in values if isinstance(v, float) and math.isfinite(v) and v >= SCORED)
    return scored >= max(2, math.ceil(len(values) / 2))


def _guarded(scheduler_class):
    """A subclass of a Ray Tune scheduler that never stops a trial at an uninformative epoch."""
    from ray.tune.schedulers import TrialScheduler

    class Guarded(scheduler_class):
        def __init__(self, *args, epochs: int, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._max_epoch = epochs
            self._seen: dict[int, dict[str, float]] = {}  # epoch -> trial id -> fitness
            self.kept: list[tuple[str, int]] = []  # (trial id, epoch) a stop was withheld at

        def on_trial_result(self, tune_controller, trial, result: dict) -> str:
            epoch = result.get("epoch")
            if isinstance(epoch, int):
                self._seen.setdefault(epoch, {})[trial.trial_id] = result.get(FITNESS)
            action = super().on_trial_result(tune_controller, trial, result)
            if (action == TrialScheduler.STOP and isinstance(epoch, int)
                    and epoch < self._max_epoch
                    and not informative(list(self._seen[epoch].values()))):
                self.kept.append((trial.trial_id, epoch))
                # the median rule remembers whom it stopped (and asserts on them later); the
                # tests of both pruners fail if this private set goes away
                if isinstance(getattr(self, "_stopped_trials", None), set):
                    self._stopped_trials.discard(trial)
                return TrialScheduler.CONTINUE
            return action

    Guarded.__name__ = f"Guarded{scheduler_class.__name__}"
    return Guarded


def make_scheduler(pruner: str, epochs: int, reduction_factor: int = 3):
    """The Ray Tune scheduler for `--pruner` (Ray decides when to stop; the study records it).

    Both pruners compare the fitness and act only where it tells trials apart (`informative`).

    Raises:
        ConfigError: an unknown pruner name.
    """
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    grace = _grace(epochs, reduction_factor)
    if pruner == "asha":
        return _guarded(ASHAScheduler)(time_attr="epoch", metric=FITNESS, mode="max",
                                       max_t=epochs, grace_period=grace,
                                       reduction_factor=reduction_factor, epochs=epochs)
    if pruner == "median":
        return _guarded(MedianStoppingRule)(time_attr="epoch", metric=FITNESS, mode="max",
                                            grace_period=max(grace, 2), min_samples_required=3,
                                            epochs=epochs)
    if pruner == "none":
        return FIFOScheduler()
    raise ConfigError(f"--pruner {pruner}: unknown; choose one of {', '.join(PRUNERS)}")


def run_search(
    study,
    distributions: Mapping[str, Any],
    run: Mapping[str, Any],
    *,
    n_trials: int,
    resources: Resources,
    on_event: Callable[[TrialEvent], None] | None = None,
    address: str | None = None,
    pruner: str = "none",
    trainable: Callable[[dict[str, Any]], None] = run_trial,
    storage_url: str = "",
    timeout: float | None = None,
) -> None:
    """Run trials through Ray Tune until the study holds `n_trials` finished trials.

    With `timeout` (seconds), no trial starts after that time; the running ones finish.

    KeyboardInterrupt propagates after the running trials are marked FAIL (interrupted).
    `trainable` is the Ray function run per trial (tests pass a fake trainer here);
    `storage_url` names the study's storage, so processes sharing it can lock trial creation.
    """
    from ray import tune

    deadline = None if timeout is None else time.monotonic() + timeout
    remaining = n_trials - len(finished_trials(study))
    if remaining <= 0:
        return
    init_ray(address=address)
    searcher = StudySearcher(study, distributions, run, n_trials, on_event, storage_url,
                             deadline)
    trainable = tune.with_resources(
        trainable, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial}
    )
    with tempfile.TemporaryDirectory(prefix="automl-ray-") as tmp:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=make_scheduler(pruner, int(run["epochs"])),
                num_samples=remaining,
                max_concurrent_trials=resources.concurrency,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                storage_path=tmp,
                name="automl",
                verbose=0,
                log_to_file=False,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
        message = "interrupted: the search was stopped (Ctrl-C) during this trial"
        try:
            tuner.fit()
        except KeyboardInterrupt:
            searcher.fail_live(message)
            raise
        # Tune traps SIGINT itself and returns from fit() normally; trials it never reported
        # complete were cut short and must not stay RUNNING (or pass for COMPLETE).
        if searcher.fail_live(message):
            raise KeyboardInterrupt
