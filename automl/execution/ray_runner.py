"""Ray Tune runs the trials; the Optuna study keeps the record.

The trials run as Ray function trainables (`run_trial`); the search algorithm Tune drives is
`automl.execution.study_searcher.StudySearcher`, which asks the study for each trial's params and
records every epoch and outcome there, in the driver, so trials never touch the storage.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from automl.config import RunSpec
from automl.epochs import EpochReport, error_report
from automl.errors import ConfigError
from automl.execution.events import EpochEvent, TrialEvent
from automl.objectives import Goals
from automl.searching.schedulers import PrunerEntry, make_scheduler
from automl.study import finished_trials, heartbeat_settings
from automl.study.attrs import trial_folder
from automl.ultralytics_env import offline_env


@dataclass(frozen=True)
class Resources:
    """What one trial gets and how many run at once."""

    concurrency: int = 1
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0


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

    from automl.execution.trainer import train_once

    node = ray.get_runtime_context().get_node_id()

    def report(epoch: EpochReport) -> None:
        tune.report({**epoch.as_dict(), "node": node})

    params, run = config["params"], config["run"]
    if config.get("baseline"):
        # the user's plain training: its own args (the space's fixed ones may differ from them)
        params, run = {}, run.for_baseline()
    if config.get("seed") is not None:
        params = {**params, "seed": int(config["seed"])}
    # the fraction of a GPU Ray gave this trial: its peak memory is checked against it
    share = ray.get_runtime_context().get_assigned_resources().get("GPU")
    outcome = train_once(params, run, name=trial_folder(config['number']), report=report,
                         should_stop=_stop_requested, gpu_share=share)
    if "error" in outcome:
        # Reported, not raised: the searcher marks the trial FAIL with this message.
        tune.report(error_report(outcome["error"]))


_local_ray_cwd: str | None = None  # where the local Ray that init_ray started was started
_ray_address: str | None = None  # the --address init_ray last joined (None: a local Ray)


def _probe(address: str, timeout: float = 5.0) -> None:
    """Raise OSError when nothing listens at a HOST:PORT address (Ray itself retries for minutes).

    Other forms ("auto", a bare host) are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if sep and host and port.isdigit():
        socket.create_connection((host, int(port)), timeout=timeout).close()


def use_cluster_auth(address: str | None) -> None:
    """Joining a cluster started with `ray start --head` (Ray 2.60 here) needs the token that
    command keeps in ~/.ray/auth_token, which a client sends only in token mode, and Ray reads
    the mode once, when it is first imported: call this before anything imports ray. Once ray
    is imported the mode is left alone: this process keeps the one it read, and a local Ray it
    starts later would otherwise demand a token from it (its GCS inherits the variable)."""
    if (address and "ray" not in sys.modules and not os.environ.get("RAY_AUTH_MODE")
            and _auth_token_available()):
        os.environ["RAY_AUTH_MODE"] = "token"


def _auth_token_available() -> bool:
    """Whether a Ray auth token is at hand (the variable, its file, or Ray's default file)."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or os.path.isfile(path)


def bind_loopback(local: bool) -> None:
    """A local Ray listens on 127.0.0.1 only; one that joins a cluster on the node's address.

    Ray binds every gRPC server (GCS, raylet, workers, driver, runtime-env agent) to all
    interfaces unless the node's address is the loopback one, and it resolves a loopback
    `_node_ip_address` back to the machine's address, except where its multi-machine mode is
    off (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, its default on macOS and Windows). Ray reads that
    variable when imported: the value this process read is set as well, the variable for the
    processes the local Ray starts.
    """
    global _loopback_set
    if local:
        os.environ[_SINGLE_MACHINE] = "0"  # its children (agents, workers) read it too
        _loopback_set = True
    elif _loopback_set:
        os.environ.pop(_SINGLE_MACHINE, None)
        _loopback_set = False
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = not local and ray_constants.env_bool(
        _SINGLE_MACHINE, not ray_constants.IS_WINDOWS_OR_OSX)


_SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_loopback_set = False


def init_ray(num_cpus: int | None = None, num_gpus: int | None = None, address: str | None = None):
    """Start a private local Ray (or join `address`), quiet, with offline ultralytics in workers."""
    import logging

    use_cluster_auth(address)
    import ray

    bind_loopback(not address)
    os.environ.update(offline_env())
    # Tune's own loggers write CSV/JSON/TensorBoard per trial; the study is our record.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    global _local_ray_cwd, _ray_address
    if ray.is_initialized():
        if _ray_address == address and (_local_ray_cwd is None or os.path.isdir(_local_ray_cwd)):
            return
        # a Ray this process joined for another --address (or a local one when a cluster is
        # asked for, or the reverse) is not the one asked for: leave it, join the one asked for.
        # The local Ray started by an earlier search in this process inherited that search's
        # working directory, since deleted (a temporary folder): its new worker processes would
        # start there and Ray Tune's trainables fail on os.getcwd(). Start a fresh one here.
        ray.shutdown()
    _local_ray_cwd = None
    _ray_address = address
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
                              "HOST:PORT (and, for a cluster with token authentication, its "
                              "token: RAY_AUTH_TOKEN or ~/.ray/auth_token), or leave --address "
                              "out for a local Ray") from None
    else:
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
        _local_ray_cwd = os.getcwd()


# how long a search on a cluster waits for a node that can run one trial (an autoscaler may be
# adding one) before it gives up; Ray itself would wait for ever
NODE_WAIT_S = 60.0


def unplaceable(nodes: list[Mapping[str, Any]], cpus: float,
                gpus: float) -> tuple[str, str] | None:
    """What no alive node of `nodes` (as `ray.nodes()` lists them) can give one trial: the
    flag with what it asks, and what to pass instead; None when a node has both."""
    have = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    if any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in have):
        return None
    most_cpus = max((r.get("CPU", 0) for r in have), default=0)
    most_gpus = max((r.get("GPU", 0) for r in have), default=0)
    if most_cpus < cpus:
        return (f"--cpus-per-trial {cpus:g}: no node has {cpus:g} CPUs (the largest has "
                f"{most_cpus:g})", f"pass --cpus-per-trial {most_cpus:g} or less")
    if most_gpus < gpus:
        return (f"--gpus-per-trial {gpus:g}: no node has {gpus:g} GPUs (the largest has "
                f"{most_gpus:g})", f"pass --gpus-per-trial {most_gpus:g} or less")
    return (f"--cpus-per-trial {cpus:g} --gpus-per-trial {gpus:g}: no node has both",
            "ask for fewer of either")


def wait_for_a_node(resources: Resources, address: str | None, *, wait: float | None = None,
                    nodes: Callable[[], list] | None = None, sleep: Callable[[float], None] =
                    time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
    """Refuse trials that no node of the Ray this process joined can run, instead of waiting
    for ever: at once on the local Ray (its nodes are fixed), after `wait` seconds (default
    NODE_WAIT_S) on a cluster, whose autoscaler may add a node meanwhile.

    `nodes`: what lists the nodes (default `ray.nodes`).

    Raises:
        ConfigError: naming the resource no node has, the largest node's, and the flag to pass.
    """
    if nodes is None:
        import ray

        nodes = ray.nodes
    wait = (NODE_WAIT_S if address else 0.0) if wait is None else wait
    end = clock() + wait
    while (problem := unplaceable(nodes(), resources.cpus_per_trial,
                                  resources.gpus_per_trial)) is not None:
        if clock() >= end:
            lack, fix = problem
            where = f"the Ray cluster at {address}" if address else "the local Ray"
            waited = f" after waiting {wait:g} s for one" if wait else ""
            raise ConfigError(f"{lack} on {where}{waited}; {fix}, or add a node that has them")
        sleep(min(5.0, max(0.0, end - clock())))


def run_search(
    study,
    distributions: Mapping[str, Any],
    run: RunSpec,
    *,
    n_trials: int,
    resources: Resources,
    on_event: Callable[[TrialEvent | EpochEvent], None] | None = None,
    address: str | None = None,
    pruner: str | PrunerEntry = "none",
    trainable: Callable[[dict[str, Any]], None] = run_trial,
    storage_url: str = "",
    timeout: float | None = None,
    goals: Goals | None = None,
    pace=None,
) -> None:
    """Run trials through Ray Tune until the study holds `n_trials` finished trials.

    With `timeout` (seconds), no trial starts after that time; the running ones finish.
    `goals`: the study's objectives and caps (automl.objectives; default fitness alone).
    `pace`: with a budget, no trial starts that it says would end after the budget
    (automl.execution.budget.Pace).

    KeyboardInterrupt propagates after the running trials are marked FAIL (interrupted).
    `trainable` is the Ray function run per trial (tests pass a fake trainer here);
    `storage_url` names the study's storage, so processes sharing it can lock trial creation.
    """
    use_cluster_auth(address)  # before the searcher's module imports ray
    from automl.execution.study_searcher import StudySearcher
    from automl.weights import pin_weights

    choices = getattr(distributions.get("model"), "choices", ())
    run = replace(run, weights_sha256=pin_weights([run.model, *choices, run.fixed.get("pretrained")]))

    deadline = None if timeout is None else time.monotonic() + timeout
    # Tune runs at most `remaining` trials a round; a trial interrupted in a round (its node
    # lost, its process killed) took one of them without counting toward --trials, and its
    # configuration was queued again: another round runs it and whatever else is left
    while True:
        remaining = n_trials - len(finished_trials(study))
        if remaining <= 0 or (deadline is not None and time.monotonic() >= deadline) or (
                pace is not None and pace.refused):
            return
        init_ray(address=address)
        wait_for_a_node(resources, address)
        searcher = StudySearcher(study, distributions, run, n_trials, on_event, storage_url,
                                 deadline, goals, pace)
        _round(searcher, make_scheduler(pruner, int(run.epochs)), trainable, resources,
               remaining)
        if not searcher.requeued:
            return


def _round(searcher, scheduler, trainable, resources: Resources, remaining: int) -> None:
    """One Ray Tune run of at most `remaining` trials."""
    with tempfile.TemporaryDirectory(prefix="automl-ray-") as tmp:
        tuner = make_tuner(searcher, scheduler, trainable, resources, num_samples=remaining,
                           storage_path=tmp)
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


def make_tuner(searcher, scheduler, trainable: Callable[[dict[str, Any]], None],
               resources: Resources, *, num_samples: int, storage_path: str):
    """The Ray Tune Tuner of a search: everything automl hands to Tune goes through here.

    Tune pickles the trainable, the searcher and the scheduler when the Tuner is made (and the
    searcher's wrappers again while it runs): none of them may hold a live object (StudySearcher's pickled
    form leaves the study on the driver; tests/test_ray_runner.py builds this for every searcher).
    """
    from ray import tune

    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": resources.cpus_per_trial,
                                        "gpu": resources.gpus_per_trial}),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=num_samples,
            max_concurrent_trials=resources.concurrency,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            storage_path=storage_path,
            name="automl",
            verbose=0,
            log_to_file=False,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )


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
