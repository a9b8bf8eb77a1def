"""Trials whose driver died: owners, heartbeats, and marking them interrupted so they run again."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from automl.study.attrs import (
    BASELINE_ATTR,
    DIED_ATTR,
    ERROR_ATTR,
    INTERRUPTED_ATTR,
    LOSSES_ATTR,
    OUTSIDE_ATTR,
    OWNER_ATTR,
    REPEAT_OF_ATTR,
    RETRY_OF_ATTR,
    SEED_ATTR,
    VALIDATES_ATTR,
)


def owner_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_is_dead(tag: str | None) -> bool:
    if not tag or ":" not in tag:
        return False
    host, _, pid = tag.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's trial: it may still be running
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# a configuration whose process or Ray node died this many times in a row is not queued again:
# one that takes its machine down with it would otherwise run forever (its driver's death is
# never the configuration's doing, and does not count)
MAX_LOSSES = 5


def mark_interrupted(study, trial, message: str, *, cause: str = "driver") -> bool:
    """FAIL a trial cut short by an interruption (not counted toward --trials) and queue its
    configuration again: an interruption is the machine's or the driver's, not the
    configuration's.

    `trial` is a live optuna Trial of this process or a RUNNING FrozenTrial of `study` that a
    dead process left behind. `cause`: "driver" (the search process stopped or was killed),
    "node" (the trial's Ray node died) or "process" (the trial's process died while its node
    seemed alive: a node going down, or the OS killing it). The retry records how many times in
    a row its process or node died (MAX_LOSSES) and how many of those were "process" (a second
    such death is the configuration's own failure: StudySearcher).

    Returns:
        Whether the configuration was queued again.
    """
    from optuna.trial import Trial, TrialState

    losses = int(trial.user_attrs.get(LOSSES_ATTR, 0)) + (cause != "driver")
    again = losses < MAX_LOSSES
    if not again:
        message += f" (its process or node died {losses} times in a row: not queued again)"
    for key, value in ((INTERRUPTED_ATTR, True), (ERROR_ATTR, message)):
        if isinstance(trial, Trial):
            trial.set_user_attr(key, value)
        else:
            # Optuna has no public way to write a FrozenTrial's attrs; tests/test_interrupt.py
            # recovers a killed search through this path and fails if it changes
            study._storage.set_trial_user_attr(trial._trial_id, key, value)
    study.tell(trial.number, state=TrialState.FAIL)
    if again:
        kept = {k: v for k, v in trial.user_attrs.items()
                if k in (BASELINE_ATTR, OUTSIDE_ATTR, REPEAT_OF_ATTR, SEED_ATTR, VALIDATES_ATTR)}
        died = int(trial.user_attrs.get(DIED_ATTR, 0)) + (cause == "process")
        study.enqueue_trial(dict(trial.params), user_attrs={
            **kept, RETRY_OF_ATTR: trial.number,
            **({LOSSES_ATTR: losses} if losses else {}), **({DIED_ATTR: died} if died else {})})
    return again


def heartbeat_settings() -> dict[str, int]:
    """Optuna heartbeats for SQLite/PostgreSQL studies: every AUTOML_HEARTBEAT_S seconds (30);
    a RUNNING trial silent for 4 of them is stale (its driver died, on any machine)."""
    interval = max(1, int(os.environ.get("AUTOML_HEARTBEAT_S", "30")))
    return {"heartbeat_interval": interval, "grace_period": 4 * interval}


def record_heartbeat(study, trial) -> None:
    """Tell the storage that this process still runs `trial` (a live optuna Trial).

    Optuna records heartbeats itself only inside `study.optimize`; automl drives trials by ask
    and tell, so its driver beats for them. Private storage API (`record_heartbeat` on the
    storage, the trial's id): tests/test_interrupt.py fails if it changes.
    """
    storage = study._storage
    if _beats(storage):
        storage.record_heartbeat(trial._trial_id)


def _beats(storage) -> bool:
    """Whether the storage keeps heartbeats (RDB storages opened by get_storage; not journals)."""
    interval = getattr(storage, "get_heartbeat_interval", None)
    return bool(interval and interval())


def _now() -> datetime:
    """Local time, as Optuna stamps a trial's start."""
    return datetime.now()


def recover_interrupted(study) -> list[int]:
    """FAIL the RUNNING trials whose search process is gone, and queue each once more.

    Gone: a process of this host that no longer exists, or (SQLite and PostgreSQL) a driver on
    any machine whose heartbeat for the trial stopped longer than the grace period ago, or a
    trial that no driver took ownership of within the grace period after it was created.

    Returns:
        The numbers of the trials marked FAIL.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    stale = set(storage._get_stale_trial_ids(study._study_id)) if _beats(storage) else set()
    orphaned_before = _now() - timedelta(seconds=heartbeat_settings()["grace_period"])
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # a user attr since 0.2; studies of earlier releases kept it among the system attrs
        owner = t.user_attrs.get(OWNER_ATTR) or t.system_attrs.get(OWNER_ATTR)
        if t._trial_id in stale:
            message = ("interrupted: its search process stopped sending heartbeats (killed, or "
                       "its machine is down)")
        elif _owner_is_dead(owner):
            message = "interrupted: the search process stopped during this trial"
        elif owner is None and t.datetime_start and t.datetime_start < orphaned_before:
            # a driver takes ownership right after asking: one killed in between left this
            # trial with no owner and no heartbeat, and nothing else would ever end it
            message = ("interrupted: its search process stopped as it created this trial, "
                       "before it took ownership")
        else:
            continue
        try:
            mark_interrupted(study, t, message)
        except (UpdateFinishedTrialError, RuntimeError, ValueError):
            continue  # another process got to it first
        failed.append(t.number)
    return failed
