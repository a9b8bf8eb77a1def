"""The Ray Tune searcher that asks the Optuna study for each trial and records it there.

`StudySearcher` asks the study for each trial's params, reports each epoch's fitness as an
intermediate value and tells the study the outcome. All study writes happen here, in the driver,
so trials never touch the storage themselves.

Imports Ray at import time: the runner and the replay import this module inside the functions
that need it, so `automl --help` stays instant.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from optuna.trial import TrialState
from ray.tune.search import Searcher

from automl.config import RunSpec
from automl.epochs import FITNESS, EpochReport
from automl.execution.events import EpochEvent, TrialEvent
from automl.execution.memory import memory_record
from automl.objectives import Goals
from automl.study import (
    BASELINE_ATTR,
    DIED_ATTR,
    ERROR_ATTR,
    LATEST_FITNESS_ATTR,
    OWNER_ATTR,
    SEED_ATTR,
    STOPPED_BY_ATTR,
    best_trial,
    finished_trials,
    fitness_of,
    mark_interrupted,
    owner_tag,
    record_heartbeat,
    recover_interrupted,
    trial_slot_lock,
)
from automl.study.attrs import (
    BATCH_ATTR,
    BEST_EPOCH_ATTR,
    DEVICE_ATTR,
    EPOCHS_ATTR,
    RAY_NODE_ATTR,
    TRAIN_SECONDS_ATTR,
    VAL_LOSS_ATTR,
    WEIGHTS_ATTR,
    trial_folder,
)
from automl.ultralytics_env import quiet_ultralytics

# seconds between writes of a running trial's progress attrs ("epochs", "train_seconds"): a
# replayed or tiny epoch takes a fraction of a second, and each write is a storage round trip
PROGRESS_EVERY_S = 5.0


def _best_epoch(history: list[EpochReport]) -> EpochReport | None:
    scored = [h for h in history if math.isfinite(h.fitness)]
    return max(scored, key=lambda h: (h.fitness, -h.epoch)) if scored else None


def delete_unkept_weights(study, run: RunSpec, number: int, value: float | None) -> str | None:
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
    mine = project / trial_folder(number) / "weights"
    best = best_trial(study)
    if run.keep_weights == "best" and value is not None and (best is None
                                                             or value > fitness_of(best)):
        # the previous best's (and strays); never a running trial's, which may still write them
        for t in finished_trials(study):
            if t.number != number:
                shutil.rmtree(project / trial_folder(t.number) / "weights", ignore_errors=True)
        # a trial saves at its final epoch only: best.pt when that epoch was ultralytics' best
        # so far, last.pt always; keep one (best.pt, else last.pt), the other duplicates it
        kept = next((f for f in (mine / "best.pt", mine / "last.pt") if f.is_file()), None)
        if kept is None:
            return None
        for other in mine.iterdir():
            if other != kept:
                other.unlink(missing_ok=True)
        try:  # ultralytics' own strip drops the optimizer and EMA state and halves the floats:
            # a fraction of the size, and the weights a promotion or deploy needs
            from ultralytics.utils.torch_utils import strip_optimizer

            with quiet_ultralytics():  # its "Optimizer stripped" line
                strip_optimizer(kept)
        except Exception:  # keeping a bigger file is no reason to fail the trial
            pass
        return str(kept)
    shutil.rmtree(mine, ignore_errors=True)
    return None


def node_lost(node: str | None) -> bool:
    """Whether the Ray node a trial ran on is dead (any node, when its own is not known: the
    trial died before its first report). False outside Ray or when Ray cannot say."""
    try:
        import ray

        nodes = ray.nodes() if ray.is_initialized() else []
    except Exception:  # the cluster is going: a process death then reads as such
        return False
    if node:
        return any(n.get("NodeID") == node and not n.get("Alive", True) for n in nodes)
    return any(not n.get("Alive", True) for n in nodes)


class StudySearcher(Searcher):
    """Ray Tune's search algorithm for a study: ask on suggest, report per epoch, tell at the end.

    Ray Tune pickles its search algorithm into `tuner.pkl` when the Tuner is made (and its
    wrappers' state while it runs; Ray 2.60 saves no base searcher's state, whose `save` raises
    NotImplementedError) so that a Tune run could be restored. automl never restores
    one: a search resumes from its study. So only the plain description of the search pickles
    (distributions, RunSpec, budget, goals, storage URL, study name); the live study with its
    sampler, storage, locks and connections, the trials in flight and the progress callback stay
    on the driver (`DRIVER_ONLY`). optuna 5.1's NSGAIISampler, for one, holds a threading.Lock
    and no longer pickles at all. A searcher unpickled from Tune's state refuses to run.
    """

    # attribute -> what a pickled copy holds instead (the trials in flight hold the study too)
    DRIVER_ONLY: Mapping[str, Callable[[], Any]] = {
        "_study": lambda: None, "_on_event": lambda: None, "_live": dict, "_history": dict,
        "_started": dict, "_progress_at": dict, "_pace": lambda: None, "_restarted": dict}

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
        pace=None,
    ) -> None:
        super().__init__(metric=FITNESS, mode="max")
        self._pace = pace  # with a budget: whether one more trial ends inside it
        self._goals = goals or Goals()
        self._deadline = deadline  # time.monotonic() after which no trial starts
        self._waiting_since: float | None = None
        self.requeued = 0  # trials interrupted in this run whose configuration was queued again
        self._study = study
        self._study_name = study.study_name
        self._storage_url = storage_url
        self._distributions = dict(distributions)
        self._run = run
        self._n_trials = n_trials
        self._on_event = on_event
        self._live: dict[str, Any] = {}
        self._history: dict[str, list[EpochReport]] = {}
        self._started: dict[str, float] = {}
        self._progress_at: dict[str, float] = {}  # when a trial's progress attrs were written
        self._restarted: dict[str, int] = {}  # the epochs a trial reported before a retry

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, **{key: empty() for key, empty in self.DRIVER_ONLY.items()}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _attached(self):
        """The live study; a searcher unpickled from Ray Tune's saved state has none."""
        if self._study is None:
            raise RuntimeError(
                f"this searcher of study '{self._study_name}' was restored from Ray Tune's saved "
                "state, which automl never resumes from: run the same automl search again, it "
                "continues from the study")
        return self._study

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
        if self._pace is not None and not self._pace.fits():
            return Searcher.FINISHED  # --budget: the measured pace leaves no room for a trial
        if self._waiting_since is not None and time.monotonic() - self._waiting_since < 2:
            return None  # waiting on other drivers' trials: look again in a moment
        study = self._attached()
        with trial_slot_lock(self._storage_url):
            recover_interrupted(study)  # a dead driver's trials, on any machine
            if self._budget_left() <= 0:
                if self._others_running():
                    # another driver's trial may still die: wait to take over its retry
                    self._waiting_since = time.monotonic()
                    return None
                return Searcher.FINISHED
            self._waiting_since = None
            trial = study.ask(self._distributions)
            # live at once: a Ctrl-C from here on (a search or validate interrupted as it asks)
            # reaches fail_live, which FAILs it; before, such a trial stayed RUNNING with no
            # owner and no heartbeat, and a resumed run waited for it forever
            self._live[trial_id] = trial
            trial.set_user_attr(OWNER_ATTR, owner_tag())
            record_heartbeat(study, trial)
        self._history[trial_id] = []
        self._started[trial_id] = time.perf_counter()
        if self._pace is not None:
            self._pace.started(trial.number)
        return {"params": dict(trial.params), "number": trial.number, "run": self._run,
                "baseline": bool(trial.user_attrs.get(BASELINE_ATTR)),
                "seed": trial.user_attrs.get(SEED_ATTR)}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        trial = self._live.get(trial_id)
        epoch = EpochReport.from_result(result)
        if trial is None or epoch is None:
            return
        history = self._history[trial_id]
        if history and epoch.batch != history[-1].batch:
            # out of memory: the training started again at a smaller batch; its epochs count
            self._restarted[trial_id] = max(self._restarted.get(trial_id, 0), history[-1].epoch)
            history.clear()
        if history and history[-1].epoch >= epoch.epoch:
            return  # already recorded
        history.append(epoch)
        if self._pace is not None:
            self._pace.epoch(trial.number, epoch.epoch)
        # Optuna keeps the first value of a step: the curve keeps the epochs before a retry
        reported = epoch.epoch <= self._restarted.get(trial_id, 0)
        if math.isfinite(epoch.fitness) and self._goals.multi:
            # Optuna takes no report() on several objectives
            trial.set_user_attr(LATEST_FITNESS_ATTR, epoch.fitness)
        elif math.isfinite(epoch.fitness) and not reported:
            trial.report(epoch.fitness, step=epoch.epoch)
        # for `automl status` elsewhere: how far the trial is and how fast it goes, at most every
        # PROGRESS_EVERY_S (status reads the epoch from the reports between; the end writes both)
        now = time.monotonic()
        if now - self._progress_at.get(trial_id, -math.inf) >= PROGRESS_EVERY_S:
            self._progress_at[trial_id] = now
            trial.set_user_attr(EPOCHS_ATTR, epoch.epoch)
            trial.set_user_attr(TRAIN_SECONDS_ATTR, epoch.train_seconds)
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
        self._progress_at.pop(trial_id, None)
        self._restarted.pop(trial_id, None)
        seconds = time.perf_counter() - self._started.pop(trial_id)
        message = None
        last_epoch = history[-1].epoch if history else 0
        node = history[-1].node if history else (result or {}).get("node")
        died = error or result is None
        lost = died and node_lost(node)
        if lost or (died and not trial.user_attrs.get(DIED_ATTR)):
            # its machine went, not its configuration: FAIL as interrupted, queued again, not
            # counted toward --trials (as a killed driver's trials are). A process that died
            # on a node that still seems alive may be on a node going down (Ray marks a node
            # dead only after its health checks fail, seconds later) or killed by the OS for
            # its own memory: it runs once more, and a second such death is its own (below)
            message = ("interrupted: the Ray node running this trial died or left the cluster"
                       if lost else "interrupted: the trial's process died before it finished "
                       "(its Ray node going down, or the OS killing it, e.g. out of memory); "
                       "it runs once more")
            self.requeued += mark_interrupted(self._study, trial, message,
                                              cause="node" if lost else "process")
            if self._on_event:
                self._on_event(TrialEvent(trial.number, "FAIL", None, {}, message, seconds,
                                          last_epoch, bool(trial.user_attrs.get(BASELINE_ATTR))))
            return
        if died:
            message = ("the trial's process died again (killed by the OS, e.g. out of memory) "
                       "before it finished: the configuration's own failure")
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
            trial.set_user_attr(BEST_EPOCH_ATTR, best.epoch)
        if result and result.get("node"):  # which Ray node ran it (clusters: --address)
            trial.set_user_attr(RAY_NODE_ATTR, result["node"])
        if history:
            last = history[-1]
            if last.device:  # which torch device trained it ("cpu", "cuda:0")
                trial.set_user_attr(DEVICE_ATTR, last.device)
            trial.set_user_attr(EPOCHS_ATTR, last.epoch)
            trial.set_user_attr(TRAIN_SECONDS_ATTR, last.train_seconds)
            if last.batch and int(self._run.batch or 0) < 1:  # what AutoBatch picked
                trial.set_user_attr(BATCH_ATTR, last.batch)
            if last.stopped_by:  # shorter than its epochs, and why
                trial.set_user_attr(STOPPED_BY_ATTR, last.stopped_by)
            if math.isfinite(last.val_loss):  # the last epoch's: a fingerprint of the weights
                trial.set_user_attr(VAL_LOSS_ATTR, last.val_loss)
        memory, notes = memory_record(history[-1]) if history else ({}, [])
        for key, value in memory.items():  # the batch it trained with, peak GPU memory
            trial.set_user_attr(key, value)
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
        elif last_epoch < int(self._run.epochs) and not history[-1].stopped_by:
            # the scheduler stopped it at a rung: PRUNED, never mistaken for COMPLETE
            trial.set_user_attr(FITNESS, best.fitness)
            self._study.tell(trial, state=TrialState.PRUNED)
            state, value = "PRUNED", best.fitness
        else:
            trial.set_user_attr(FITNESS, best.fitness)
            # a trial over a cap is never the best: its weights go below, with the others'
            kept = None if over_cap else delete_unkept_weights(self._study, self._run, trial.number,
                                                      best.fitness)
            if kept:
                trial.set_user_attr(WEIGHTS_ATTR, kept)
            self._study.tell(trial, self._goals.values(best.fitness, measured)
                             if self._goals.multi else best.fitness)
            state, value = "COMPLETE", best.fitness
        if state != "COMPLETE" or over_cap:
            delete_unkept_weights(self._study, self._run, trial.number, None)
        if self._on_event:
            self._on_event(TrialEvent(trial.number, state, value, metrics, message, seconds,
                                      last_epoch, bool(trial.user_attrs.get(BASELINE_ATTR)),
                                      measured, over_cap, tuple(notes)))

    def fail_live(self, message: str) -> list[int]:
        """Mark every trial still running as interrupted (FAIL, queued again)."""
        numbers = []
        for trial_id in list(self._live):
            trial = self._live.pop(trial_id)
            mark_interrupted(self._study, trial, message)
            numbers.append(trial.number)
        return numbers
