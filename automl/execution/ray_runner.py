"""Ray Tune runs the trials; the Optuna study keeps the record.

`StudySearcher` is a Ray Tune Searcher that asks the study for each trial's params, reports each
epoch's fitness as an intermediate value and tells the study the outcome. All study writes happen
here, in the driver, so trials never touch the storage themselves.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl.config import RunSpec
from automl.epochs import FITNESS, EpochReport, error_report
from automl.errors import ConfigError
from automl.execution.pruners import make_scheduler
from automl.objectives import Goals
from automl.study import (
    BASELINE_ATTR,
    ERROR_ATTR,
    LATEST_FITNESS_ATTR,
    OWNER_ATTR,
    SEED_ATTR,
    best_trial,
    finished_trials,
    fitness_of,
    heartbeat_settings,
    owner_tag,
    record_heartbeat,
    recover_interrupted,
    trial_slot_lock,
)
from automl.trainer import offline_env, quiet_ultralytics


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
    measured: dict[str, float] = field(default_factory=dict)  # size_mb, latency_ms (if measured)
    over_cap: str | None = None  # which cap a COMPLETE trial exceeded (it is infeasible)


@dataclass
class EpochEvent:
    """What the live progress needs to know about a trial's epoch."""

    number: int
    epoch: int
    epochs: int  # the trial's full length
    fitness: float
    train_seconds: float  # since the trial's training started


def stop_event():
    """The threading.Event Ray Tune sets when it stops this trial (None outside a Tune trial).

    Private API (`ray.train._internal.session`): Ray acts on a stop only at the trial's next
    report, a whole epoch later, and offers no public way to see it sooner; ultralytics polls
    this after every batch instead. tests/test_ray_runner.py fails if it goes away.
    """
    from ray.train._internal.session import get_session

    session = get_session()
    return getattr(session, "stop_event", None) if session else None


def _stop_requested() -> bool:
    """True once Ray Tune has decided to stop this trial (e.g. an ASHA rung cut it)."""
    try:
        event = stop_event()
    except ImportError:  # a Ray without the module: stops then land at the next report
        return False
    return bool(event and event.is_set())


def run_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one ultralytics training, one EpochReport per epoch.

    `config`: {"params": the trial's params, "number": its number, "run": the RunSpec,
    "baseline": whether it is the user's plain training, "seed": its training seed when it
    is not ultralytics' default (a repeat)}.
    """
    import ray
    from ray import tune

    from automl.trainer import train_once

    node = ray.get_runtime_context().get_node_id()

    def report(epoch: EpochReport) -> None:
        tune.report({**epoch.as_dict(), "node": node})

    params, run = config["params"], config["run"]
    if config.get("baseline"):
        # the user's plain training: its own args (the space's fixed ones may differ from them)
        params, run = {}, run.for_baseline()
    if config.get("seed") is not None:
        params = {**params, "seed": int(config["seed"])}
    outcome = train_once(params, run, name=f"trial_{config['number']:04d}", report=report,
                         should_stop=_stop_requested)
    if "error" in outcome:
        # Reported, not raised: the searcher marks the trial FAIL with this message.
        tune.report(error_report(outcome["error"]))


def _best_epoch(history: list[EpochReport]) -> EpochReport | None:
    scored = [h for h in history if math.isfinite(h.fitness)]
    return max(scored, key=lambda h: (h.fitness, -h.epoch)) if scored else None


def keep_weights(study, run: RunSpec, number: int, value: float | None) -> str | None:
    """Apply `--keep-weights` to a finished trial's ultralytics run folder (called before the
    trial is told, so the study's best is still the best before it).

    `all` keeps every trial's weights; `none` deletes them; `best` (the default) keeps the best
    COMPLETE trial's best.pt only (stripped to inference weights by ultralytics), deleting the
    previous best's when a better trial completes. Trials that ran on another machine keep
    their folders there.

    Returns:
        The kept best.pt's path (None when nothing was kept).
    """
    import shutil

    if run.keep_weights == "all" or run.replay:
        return None
    project = Path(run.project)
    mine = project / f"trial_{number:04d}" / "weights"
    best = best_trial(study)
    if run.keep_weights == "best" and value is not None and (best is None
                                                             or value > fitness_of(best)):
        # the previous best's (and strays); never a running trial's, which may still write them
        for t in finished_trials(study):
            if t.number != number:
                shutil.rmtree(project / f"trial_{t.number:04d}" / "weights", ignore_errors=True)
        # a trial saves at its final epoch only: best.pt when that epoch was ultralytics' best
        # so far, last.pt always; keep one (best.pt, else last.pt), the other duplicates it
        kept = next((f for f in (mine / "best.pt", mine / "last.pt") if f.is_file()), None)
        if kept is None:
            return None
        for other in mine.iterdir():
            if other != kept:
                other.unlink(missing_ok=True)
        try:  # ultralytics' own strip drops the optimizer and EMA state and halves the floats
            # (26 MB -> 5 MB for yolo11n): the weights a promotion or deploy needs
            from ultralytics.utils.torch_utils import strip_optimizer

            with quiet_ultralytics():  # its "Optimizer stripped" line
                strip_optimizer(kept)
        except Exception:  # keeping a bigger file is no reason to fail the trial
            pass
        return str(kept)
    shutil.rmtree(mine, ignore_errors=True)
    return None


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
            run: RunSpec,
            n_trials: int,
            on_event: Callable[[TrialEvent | EpochEvent], None] | None = None,
            storage_url: str = "",
            deadline: float | None = None,
            goals: Goals | None = None,
        ) -> None:
            super().__init__(metric=FITNESS, mode="max")
            self._goals = goals or Goals()
            self._deadline = deadline  # time.monotonic() after which no trial starts
            self._waiting_since: float | None = None
            self._study = study
            self._storage_url = storage_url
            self._distributions = dict(distributions)
            self._run = run
            self._n_trials = n_trials
            self._on_event = on_event
            self._live: dict[str, Any] = {}
            self._history: dict[str, list[EpochReport]] = {}
            self._started: dict[str, float] = {}

        def set_search_properties(self, metric, mode, config, **spec) -> bool:
            return True  # the space comes from the study, not from Tune's config

        def _others_running(self) -> bool:
            mine = {t.number for t in self._live.values()}
            return any(t.number not in mine for t in self._study.get_trials(
                deepcopy=False, states=(TrialState.RUNNING,)))

        def beat(self) -> None:
            """Record a heartbeat for every trial this driver runs (a thread calls this)."""
            try:
                for trial in list(self._live.values()):
                    record_heartbeat(self._study, trial)
            except Exception:  # a trial just finished, a storage hiccup: the next beat retries
                pass

        def _budget_left(self) -> int:
            running = len(self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
            return self._n_trials - len(finished_trials(self._study)) - running

        def suggest(self, trial_id: str):
            if self._deadline is not None and time.monotonic() >= self._deadline:
                return Searcher.FINISHED  # the time budget: running trials still finish
            if self._waiting_since is not None and time.monotonic() - self._waiting_since < 2:
                return None  # waiting on other drivers' trials: look again in a moment
            with trial_slot_lock(self._storage_url):
                recover_interrupted(self._study)  # a dead driver's trials, on any machine
                if self._budget_left() <= 0:
                    if self._others_running():
                        # another driver's trial may still die: wait to take over its retry
                        self._waiting_since = time.monotonic()
                        return None
                    return Searcher.FINISHED
                self._waiting_since = None
                trial = self._study.ask(self._distributions)
                trial.set_user_attr(OWNER_ATTR, owner_tag())
                record_heartbeat(self._study, trial)
            self._live[trial_id] = trial
            self._history[trial_id] = []
            self._started[trial_id] = time.perf_counter()
            return {"params": dict(trial.params), "number": trial.number, "run": self._run,
                    "baseline": bool(trial.user_attrs.get(BASELINE_ATTR)),
                    "seed": trial.user_attrs.get(SEED_ATTR)}

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            trial = self._live.get(trial_id)
            epoch = EpochReport.from_result(result)
            if trial is None or epoch is None:
                return
            history = self._history[trial_id]
            if history and history[-1].epoch >= epoch.epoch:
                return  # already recorded
            history.append(epoch)
            if math.isfinite(epoch.fitness) and not self._goals.multi:
                trial.report(epoch.fitness, step=epoch.epoch)
            elif math.isfinite(epoch.fitness):  # Optuna takes no report() on several objectives
                trial.set_user_attr(LATEST_FITNESS_ATTR, epoch.fitness)
            # for `automl status` elsewhere: how far the trial is and how fast it goes
            trial.set_user_attr("epochs", epoch.epoch)
            trial.set_user_attr("train_seconds", epoch.train_seconds)
            if self._on_event:
                self._on_event(EpochEvent(trial.number, epoch.epoch, int(self._run.epochs),
                                          epoch.fitness, epoch.train_seconds))

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
            metrics = {}
            if best is not None:
                metrics = best.metrics()
                for key, value in metrics.items():
                    trial.set_user_attr(key, value)
                trial.set_user_attr("best_epoch", best.epoch)
            if result and result.get("node"):  # which Ray node ran it (clusters: --address)
                trial.set_user_attr("ray_node", result["node"])
            if history:
                last = history[-1]
                trial.set_user_attr("epochs", last.epoch)
                trial.set_user_attr("train_seconds", last.train_seconds)
                if math.isfinite(last.val_loss):  # the last epoch's: a fingerprint of the weights
                    trial.set_user_attr("val_loss", last.val_loss)
            last_epoch = history[-1].epoch if history else 0
            measured = history[-1].measured() if history else {}
            for key, value in measured.items():
                trial.set_user_attr(key, value)
            missing = [k for k in self._goals.measures if k not in measured]
            if message is None and last_epoch >= int(self._run.epochs) and missing:
                message = f"the trained weights' {' and '.join(missing)} could not be measured"
            over_cap = None
            if message is None and self._goals.caps and not missing:
                violations = self._goals.violations(measured)
                for key, value in violations.items():  # Optuna's own record of feasibility
                    trial.set_constraint(key, value)
                over_cap = ", ".join(f"{k} {measured[k]:.4g} > {self._goals.caps[k]:g}"
                                     for k, v in violations.items() if v > 0) or None
            if message is not None:
                trial.set_user_attr(ERROR_ATTR, message)
                self._study.tell(trial, state=TrialState.FAIL)
                state, value = "FAIL", None
            elif last_epoch < int(self._run.epochs):
                # the scheduler stopped it at a rung: PRUNED, never mistaken for COMPLETE
                trial.set_user_attr(FITNESS, best.fitness)
                self._study.tell(trial, state=TrialState.PRUNED)
                state, value = "PRUNED", best.fitness
            else:
                trial.set_user_attr(FITNESS, best.fitness)
                # a trial over a cap is never the best: its weights go below, with the others'
                kept = None if over_cap else keep_weights(self._study, self._run, trial.number,
                                                          best.fitness)
                if kept:
                    trial.set_user_attr("weights", kept)
                self._study.tell(trial, self._goals.values(best.fitness, measured)
                                 if self._goals.multi else best.fitness)
                state, value = "COMPLETE", best.fitness
            if state != "COMPLETE" or over_cap:
                keep_weights(self._study, self._run, trial.number, None)
            if self._on_event:
                self._on_event(TrialEvent(trial.number, state, value, metrics, message, seconds,
                                          last_epoch, bool(trial.user_attrs.get(BASELINE_ATTR)),
                                          measured, over_cap))

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


def _probe(address: str, timeout: float = 5.0) -> None:
    """Raise OSError when nothing listens at a HOST:PORT address (Ray itself retries for minutes).

    Other forms ("auto", a bare host) are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if sep and host and port.isdigit():
        socket.create_connection((host, int(port)), timeout=timeout).close()


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
        try:
            _probe(address)
            ray.init(address=address, **kwargs)
        except (OSError, RuntimeError, ValueError) as e:
            raise ConfigError(f"--address {address}: no Ray cluster answers there "
                              f"({type(e).__name__}); start one with `ray start --head`, check "
                              "HOST:PORT, or leave --address out for a local Ray") from None
    else:
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
        _local_ray_cwd = os.getcwd()


def run_search(
    study,
    distributions: Mapping[str, Any],
    run: RunSpec,
    *,
    n_trials: int,
    resources: Resources,
    on_event: Callable[[TrialEvent | EpochEvent], None] | None = None,
    address: str | None = None,
    pruner: str = "none",
    trainable: Callable[[dict[str, Any]], None] = run_trial,
    storage_url: str = "",
    timeout: float | None = None,
    goals: Goals | None = None,
) -> None:
    """Run trials through Ray Tune until the study holds `n_trials` finished trials.

    With `timeout` (seconds), no trial starts after that time; the running ones finish.
    `goals`: the study's objectives and caps (automl.objectives; default fitness alone).

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
                             deadline, goals)
    trainable = tune.with_resources(
        trainable, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial}
    )
    with tempfile.TemporaryDirectory(prefix="automl-ray-") as tmp:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=make_scheduler(pruner, int(run.epochs)),
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
        # Tune's own SIGINT handler ends fit() quietly; between two trials nothing was running
        # to show it, and the interrupt was lost (the run went on to its summary, exit 0). Off,
        # Ctrl-C raises KeyboardInterrupt here wherever Tune is.
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        drop_lost_state_syncs()
        stop = threading.Event()
        beats = threading.Thread(target=_beat, args=(searcher, stop), daemon=True)
        beats.start()
        try:
            tuner.fit()
        except KeyboardInterrupt:
            searcher.fail_live(message)
            raise
        finally:
            stop.set()
        # Tune traps SIGINT itself and returns from fit() normally; trials it never reported
        # complete were cut short and must not stay RUNNING (or pass for COMPLETE).
        if searcher.fail_live(message):
            raise KeyboardInterrupt


class LostStateSync(logging.Filter):
    """Drops Ray Tune's log of a failed upload of its own experiment state.

    Tune saves its experiment state (tmp file, then rename) while its previous background upload
    of the same folder may still be copying; the copy then finds the tmp file gone and Tune logs
    the FileNotFoundError with a traceback. automl never reads that state (a search resumes from
    the study, and the state lives in a temporary folder deleted after the run), so the record is
    noise on the user's console. Every other record passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        lost = (record.exc_info is not None and record.exc_info[0] is not None
                and issubclass(record.exc_info[0], FileNotFoundError))
        return not (lost and record.getMessage().startswith("Saving experiment state to storage"))


def drop_lost_state_syncs() -> None:
    """Installs `LostStateSync` on Tune's experiment-state logger (once)."""
    state_log = logging.getLogger("ray.tune.execution.experiment_state")
    if not any(isinstance(f, LostStateSync) for f in state_log.filters):
        state_log.addFilter(LostStateSync())


def _beat(searcher, stop) -> None:
    """Heartbeats for the driver's live trials until `stop` is set."""
    interval = heartbeat_settings()["heartbeat_interval"]
    while not stop.wait(interval):
        searcher.beat()
