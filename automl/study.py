"""The Optuna study: the single record of every trial. Everything else is derived from it."""

from __future__ import annotations

import json
import math
import os
import socket
import tempfile
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from automl.config import StudyConfig
from automl.errors import ConfigError, StudyError
from automl.fitness import METRICS
from automl.objectives import feasible

STUDIES_DIR = Path("studies")
CONFIG_ATTR = "automl:config"
OWNER_ATTR = "automl:owner"          # host:pid of the process running a trial
INTERRUPTED_ATTR = "automl:interrupted"  # FAIL because the search process died or was stopped
RETRY_OF_ATTR = "automl:retry_of"    # number of the interrupted trial this one re-runs
REPEAT_OF_ATTR = "automl:repeat_of"  # number of the trial this one trains again (--repeats)
SEED_ATTR = "automl:seed"            # the training seed of a repeat (others train with seed 0)
BUDGET_ATTR = "automl:budget"        # the latest run's --trials and --concurrency (status, ETA)
ERROR_ATTR = "error"
BASELINE_ATTR = "automl:baseline"    # the trial that trains the user's plain `yolo train`
OUTSIDE_ATTR = "automl:outside_space"  # why a baseline is not a point of the space (no GA parent)
PROMOTIONS_ATTR = "automl:promotions"  # {trial number: record} of `automl promote` runs
VALIDATES_ATTR = "automl:validates"  # on a trial of NAME-validate: the searched trial it trains
VALIDATION_ATTR = "automl:validation"  # on the searched study: `automl validate`'s verdict
# a running trial's latest fitness where the study takes no intermediate values (multi-objective)
LATEST_FITNESS_ATTR = "automl:latest_fitness"


def check_study_name(study_name: str) -> str:
    """A study name is a plain name: it becomes studies/NAME.db and studies/NAME/.

    Raises:
        ConfigError: a name that is a path (with a separator, absolute, '.' or '..'), which would
            put the study's files outside studies/.
    """
    if (not study_name or study_name in (".", "..") or "/" in study_name or "\\" in study_name
            or os.path.isabs(study_name) or "\0" in study_name):
        raise ConfigError(f"--study {study_name!r}: a study name is a plain name such as "
                          "'cows-lr' (no '/', '..' or absolute path: it becomes studies/NAME.db); "
                          "to put the study elsewhere, pass --storage")
    return study_name


def default_storage(study_name: str, studies_dir: Path = STUDIES_DIR) -> str:
    """sqlite:///studies/NAME.db (relative to the working directory)."""
    return f"sqlite:///{(studies_dir / f'{check_study_name(study_name)}.db').as_posix()}"


def study_dir(study_name: str, studies_dir: Path = STUDIES_DIR) -> Path:
    """Per-study outputs: mini split lists, trial runs, best_hyperparameters.yaml."""
    return studies_dir / check_study_name(study_name)


def storage_file(url: str) -> Path | None:
    """The local file behind a storage URL (SQLite or a journal file path), else None."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    if "://" not in url:
        return Path(url)
    return None


@contextmanager
def trial_slot_lock(url: str):
    """Serialise "is there budget left? then create a trial" across processes sharing a study.

    Without it, processes sharing a study can each see one trial left and each start one. A
    file lock serves local files (SQLite, journal); a PostgreSQL advisory lock serves processes
    on many machines. Other server storages (MySQL) take no lock: there the total can
    overshoot by up to one trial per extra process.
    """
    path = storage_file(url)
    if path is not None:
        from filelock import FileLock

        # Not NAME.lock: Optuna's journal storage takes that path for its own symlink lock.
        with FileLock(str(path) + ".automl-slot.lock", timeout=120):
            yield
    elif url.startswith("postgresql"):
        with _pg_advisory_lock(url, "automl-trial-slot"):  # one lock per database is enough
            yield
    else:
        yield


@contextmanager
def _pg_advisory_lock(url: str, name: str):
    """A PostgreSQL session-level advisory lock, shared by every process on that database."""
    import zlib

    from sqlalchemy import text

    key = zlib.crc32(name.encode())
    with _engine(url).connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


@lru_cache(maxsize=4)
def _engine(url: str):
    from sqlalchemy import create_engine

    return create_engine(url, pool_pre_ping=True)


def _sqlite_storage(url: str):
    """SQLite tuned for a study: writers wait instead of failing "locked", and WAL journaling.

    WAL with synchronous=NORMAL makes each commit ~1 ms instead of ~20 ms (a trial writes about
    15 times) and lets readers (the dashboard) run beside writers. It survives a crashed or
    killed process; only an OS crash can lose the last commits. Not for network filesystems.
    """
    import optuna
    from sqlalchemy import event

    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}},
                                         **heartbeat_settings())

    @event.listens_for(storage.engine, "connect")
    def _pragmas(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    storage.engine.dispose()  # connections opened while creating the schema lack the pragmas
    return storage


def _schema_race(error: Exception) -> bool:
    """Whether `error` is another creator of the same tables winning the race."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    if isinstance(error, IntegrityError):  # both inserted the schema version row
        return True
    return isinstance(error, (OperationalError, ProgrammingError)) and \
        "already exists" in str(error)


def _retry_schema_race(open_storage, attempts: int = 5):
    """Open a storage, again if a process outside our lock created the schema at the same moment.

    Our lock only orders automl processes; `optuna-dashboard` or a plain `optuna.load_study` on
    a brand-new file creates the tables too. Optuna's schema creation checks what exists first,
    so a second attempt after the other creator committed finds everything in place.
    """
    import time

    for attempt in range(attempts - 1):
        try:
            return open_storage()
        except Exception as e:
            if not _schema_race(e):
                raise
            time.sleep(0.2 * (attempt + 1))
    return open_storage()  # the last attempt: whatever it raises goes to the caller


_checked_files: set[Path] = set()  # storage files this process has checked (and opened since)


def get_storage(storage: str | None, study_name: str):
    """An Optuna storage for a URL (default: the study's SQLite file, created on demand)."""
    import optuna

    url = storage or default_storage(study_name)
    path = storage_file(url)
    if path is not None and path.resolve() not in _checked_files:
        # once per process, before its first connection to the file: closing any descriptor of
        # a file drops the POSIX locks SQLite holds on it through another one (SQLite's own
        # "how to corrupt" list), so the file is never read beside an open connection
        _check_storage_file(url, path)
        _checked_files.add(path.resolve())
    # Optuna calls heartbeats experimental and would say so on every storage opened
    warnings.filterwarnings("ignore", message=".*heartbeat.*",
                            category=optuna.exceptions.ExperimentalWarning)
    # ...and that they belong to study.optimize, on every ask: automl beats for its trials itself
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    if url.startswith("sqlite:///"):
        from filelock import FileLock

        # processes opening a new file at once would race to create Optuna's tables
        with FileLock(str(path) + ".automl-schema.lock", timeout=120):
            return _retry_schema_race(lambda: _sqlite_storage(url))
    if path is not None:  # a journal file: many processes on one machine, no database
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    try:
        if url.startswith("postgresql"):
            # processes opening a fresh database at once would race to create Optuna's schema
            with _pg_advisory_lock(url, "automl-schema"):
                return _retry_schema_race(lambda: optuna.storages.RDBStorage(
                    url, **heartbeat_settings()))
        return optuna.storages.RDBStorage(url, **heartbeat_settings())
    except Exception as e:  # an unknown URL scheme or an unreachable server
        raise ConfigError(f"--storage {url}: cannot open ({type(e).__name__}: {e})") from e


def check_storage(url: str) -> None:
    """Before any work: a local storage file must be usable (see _check_storage_file)."""
    path = storage_file(url)
    if path is not None and path.resolve() not in _checked_files:
        _check_storage_file(url, path)


def _check_storage_file(url: str, path: Path) -> None:
    """A local storage file must be writable and, when it exists, be what the URL says it is.

    Raises:
        ConfigError: an unwritable folder, a folder in place of the file, or an existing file
            that is not an SQLite database (sqlite:///...) or an Optuna journal (a plain path):
            automl must never append to a file of the user's.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--storage {url}: cannot create {path.parent} ({e.strerror})") from None
    if path.is_dir():
        raise ConfigError(f"--storage {url}: {path} is a folder; name a file "
                          "(sqlite:///studies/NAME.db, or a journal file such as studies/NAME.log)")
    try:  # a real write, not os.access: root passes access() on read-only file systems
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".automl-write-test-"):
            pass
    except OSError as e:
        raise ConfigError(f"--storage {url}: cannot write in {path.parent} ({e.strerror}); pick "
                          "a storage in a folder you can write to") from None
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as f:
        head = f.read(4096)
    if url.startswith("sqlite:///"):
        if not head.startswith(b"SQLite format 3\0"):
            raise ConfigError(f"--storage {url}: {path} exists and is not an SQLite database; "
                              "pass a new file name")
        return
    first = head.split(b"\n", 1)[0]
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    if not isinstance(record, dict) or "op_code" not in record:
        raise ConfigError(f"--storage {url}: {path} exists and is not an Optuna journal file "
                          "(nothing was written to it); pass a new path, or sqlite:///NAME.db")


def open_study(study_name: str, storage: str | None, sampler=None, *, create: bool = True,
               directions: list[str] | None = None):
    """Load a study (creating it when `create`: direction maximize, or `directions` for a
    multi-objective one, fitness first)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our progress line says what matters
    url = storage or default_storage(study_name)
    path = storage_file(url)
    if not create and path is not None and not path.exists():  # do not leave an empty file
        raise StudyError(f"--study {study_name}: no such study in {url} (the file does not exist)")
    store = get_storage(url, study_name)
    if create:
        return optuna.create_study(
            study_name=study_name, storage=store, sampler=sampler,
            directions=directions or ["maximize"], load_if_exists=True,
        )
    try:
        return optuna.load_study(study_name=study_name, storage=store, sampler=sampler)
    except KeyError as e:
        names = [s.study_name for s in optuna.get_all_study_summaries(store)]
        raise StudyError(
            f"--study {study_name}: no such study in {storage or default_storage(study_name)}"
            f"; studies there: {', '.join(names) or 'none'}"
        ) from e


def check_config(study, config: StudyConfig) -> None:
    """Store the search config on a new study; refuse to resume one created with other settings.

    Raises:
        ConfigError: naming the first setting that differs and how to proceed.
    """
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, config.to_dict())
        return
    problem = config.conflict(stored)
    if problem:
        raise ConfigError(f"study '{study.study_name}' {problem}")


def study_config(study) -> StudyConfig:
    """The config a search stored on the study (an empty one for a study automl did not make)."""
    return StudyConfig.from_dict(study.user_attrs.get(CONFIG_ATTR) or {})


DRIVERS_ATTR = "automl:drivers"  # how many search processes have driven the study so far


def driver_seed(study, seed: int) -> int:
    """The sampler seed of the next search process on `study` (the caller holds the slot lock).

    The first process of a study uses `seed` as given (a fresh seeded search is reproducible);
    each later one (a resume, a second process on a shared study) a seed of its own derived
    from it, so it does not propose again the configurations the seed gave the first.
    """
    drivers = int(study.user_attrs.get(DRIVERS_ATTR, 0))
    study.set_user_attr(DRIVERS_ATTR, drivers + 1)
    return seed if drivers == 0 else (seed + 1_000_003 * drivers) % 2**32


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


def mark_interrupted(study, trial, message: str) -> None:
    """FAIL a trial cut short by an interruption (not counted toward --trials), queue it again once.

    `trial` is a live optuna Trial of this process or a RUNNING FrozenTrial of `study` that a
    dead process left behind.
    """
    from optuna.trial import Trial, TrialState

    for key, value in ((INTERRUPTED_ATTR, True), (ERROR_ATTR, message)):
        if isinstance(trial, Trial):
            trial.set_user_attr(key, value)
        else:
            # Optuna has no public way to write a FrozenTrial's attrs; tests/test_interrupt.py
            # recovers a killed search through this path and fails if it changes
            study._storage.set_trial_user_attr(trial._trial_id, key, value)
    study.tell(trial.number, state=TrialState.FAIL)
    if RETRY_OF_ATTR not in trial.user_attrs:  # retry each configuration once, not forever
        kept = {k: v for k, v in trial.user_attrs.items()
                if k in (BASELINE_ATTR, OUTSIDE_ATTR, REPEAT_OF_ATTR, SEED_ATTR, VALIDATES_ATTR)}
        study.enqueue_trial(dict(trial.params), user_attrs={**kept, RETRY_OF_ATTR: trial.number})


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


def finished_trials(study) -> list:
    """Trials that count toward --trials: COMPLETE, PRUNED, and FAIL not caused by an interruption."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [
        t for t in study.get_trials(deepcopy=False, states=done)
        if not t.user_attrs.get(INTERRUPTED_ATTR)
    ]


def fitness_of(trial) -> float | None:
    """A trial's fitness: its value, or its first value in a multi-objective study."""
    values = trial.values
    return float(values[0]) if values else None


def multi_objective(study) -> bool:
    return len(study.directions) > 1


def _complete(study) -> list:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if fitness_of(t) is not None and math.isfinite(fitness_of(t))]


def _rankable(study) -> list:
    """COMPLETE trials that met the study's caps (automl.objectives), repeats left out."""
    return [t for t in _complete(study) if REPEAT_OF_ATTR not in t.user_attrs and feasible(t)]


def pareto_trials(study) -> list:
    """The Pareto front of a multi-objective study's feasible COMPLETE trials (Optuna's
    `best_trials`, which leaves out trials over a cap), by number, repeats left out; for a
    single-objective study, its best trial."""
    if not multi_objective(study):
        best = best_trial(study)
        return [best] if best else []
    front = [t for t in study.best_trials if REPEAT_OF_ATTR not in t.user_attrs]
    return sorted(front, key=lambda t: t.number)


def repeat_means(study) -> dict[int, tuple[float, int]]:
    """Trials trained again with other seeds (`--repeats`): original number -> (mean, trainings).

    The mean is over the original's fitness and its COMPLETE repeats'.
    """
    complete = [t for t in _complete(study) if feasible(t)]
    groups: dict[int, list[float]] = {}
    for t in complete:
        original = t.user_attrs.get(REPEAT_OF_ATTR)
        if original is not None:
            groups.setdefault(int(original), []).append(fitness_of(t))
    originals = {t.number: fitness_of(t) for t in complete}
    return {n: ((originals[n] + sum(v)) / (len(v) + 1), len(v) + 1)
            for n, v in groups.items() if n in originals}


def best_trial(study):
    """The best COMPLETE trial, or None. Trials over a cap of the study (--max-size-mb,
    --max-latency-ms) never are; in a multi-objective study it is the front's fittest.

    Where trials were trained again with other seeds (`--repeats`), the one whose trainings have
    the best mean fitness (what the configuration is worth, not its luckiest run); otherwise
    the one with the highest fitness.
    """
    if multi_objective(study):  # on a fitness tie, the one the other does not dominate
        front = pareto_trials(study)
        return max(front, key=lambda t: (fitness_of(t), -t.number)) if front else None
    ranked = ranked_trials(study)
    return ranked[0][0] if ranked else None


def ranked_trials(study) -> list[tuple[Any, float]]:
    """Every COMPLETE trial (repeats folded into their original) with what it is worth, best
    first, as best_trial judges: trials trained again (`--repeats`) first, by the mean of their
    trainings, then the others by their fitness; ties go to the earlier trial."""
    means = repeat_means(study)
    scored = [(t, means[t.number][0] if t.number in means else fitness_of(t))
              for t in _rankable(study)]
    return sorted(scored, key=lambda pair: (pair[0].number not in means, -pair[1],
                                            pair[0].number))


def top_trials(study, n: int = 5) -> list:
    """The `n` best COMPLETE trials by fitness (repeats of a trial left out: see repeat_means;
    trials over a cap left out)."""
    return sorted(_rankable(study), key=lambda t: (-fitness_of(t), t.number))[:n]


def repeat_slots(repeats: int, baseline: bool) -> int:
    """Trials at the end of the budget that `--repeats K` takes: the K best searched trials and,
    when the study has one, the plain training, so that the pick's mean is compared with the
    plain training's mean (like with like)."""
    return repeats + 1 if repeats and baseline else repeats


def queue_repeats(study, count: int, seed: int = 1) -> list[int]:
    """Queue the `count` best searched trials, and the plain training (trial #0) when the study
    has one, to train once more with training seed `seed` (`--repeats`).

    A repeat is its own trial with the original's params, user attrs `automl:repeat_of` (the
    original's number) and `automl:seed`; a baseline's repeat is a baseline too. Trials already
    repeated (or queued) are not queued again. The caller holds the trial-slot lock.

    Returns:
        The numbers of the trials queued to be repeated.
    """
    from optuna.trial import TrialState

    repeated = {t.user_attrs.get(REPEAT_OF_ATTR) for t in study.get_trials(deepcopy=False)
                if t.state != TrialState.FAIL or not t.user_attrs.get(INTERRUPTED_ATTR)}
    ranked = _rankable(study)
    searched = sorted((t for t in ranked if not t.user_attrs.get(BASELINE_ATTR)),
                      key=lambda t: (-fitness_of(t), t.number))[:count]
    plain = [t for t in ranked if t.user_attrs.get(BASELINE_ATTR)][:1]
    queued = []
    for t in [*searched, *plain]:
        if t.number in repeated:
            continue
        kept = {k: v for k, v in t.user_attrs.items() if k in (BASELINE_ATTR, OUTSIDE_ATTR)}
        study.enqueue_trial(dict(t.params), user_attrs={**kept, REPEAT_OF_ATTR: t.number,
                                                        SEED_ATTR: seed})
        queued.append(t.number)
    return queued


def trial_args(study, trial) -> dict[str, Any]:
    """The training args a trial ran with beyond ultralytics' defaults (the run's plumbing aside).

    The space's fixed args with the trial's params over them; for the baseline, the plain
    training's own args (which may lie outside the space).
    """
    config = study_config(study)
    if trial.user_attrs.get(BASELINE_ATTR) and config.baseline_fixed is not None:
        return dict(config.baseline_fixed)
    return {**config.fixed, **trial.params}


def best_hyperparameters(study) -> dict[str, Any]:
    """The best trial's training args (see trial_args): ready for `yolo train cfg=`."""
    best = best_trial(study)
    if best is None:
        raise StudyError(f"study '{study.study_name}' has no COMPLETE trial yet")
    return trial_args(study, best)


def write_best_hyperparameters(study, path: str | Path) -> Path:
    """Write best_hyperparameters.yaml (derived from the study) with a provenance header."""
    best = best_trial(study)
    params = best_hyperparameters(study)
    config = study_config(study)
    attrs = best.user_attrs
    plain = " (the plain training: no searched configuration beat it)" \
        if attrs.get(BASELINE_ATTR) else ""
    means = repeat_means(study)
    mean = (f", mean of {means[best.number][1]} trainings {means[best.number][0]:.5f}"
            if best.number in means else "")
    header = [
        f"# best of study '{study.study_name}': trial {best.number}{plain}, fitness "
        f"{fitness_of(best):.5f}{mean} ({config.fitness})",
        "# " + ", ".join(
            f"{k} {attrs[k]:.4f}" for k in METRICS if isinstance(attrs.get(k), (int, float))
        ),
        f"# searched on {config.data or '?'} (fraction {config.fraction}),"
        f" model {config.model or '?'}, {config.epochs or '?'} epochs,"
        f" imgsz {config.imgsz or '?'}",
        "# use: yolo train cfg=best_hyperparameters.yaml data=... model=...",
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(header) + "\n" + yaml.safe_dump(params, sort_keys=False))
    return path


def export_study(study, out_dir: str | Path) -> dict[str, Path]:
    """best_hyperparameters.yaml (for `yolo train cfg=`) and trials.csv, both from the study."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"trials_csv": out / "trials.csv"}
    study.trials_dataframe().to_csv(paths["trials_csv"], index=False)
    if best_trial(study) is not None:
        paths["best_hyperparameters"] = write_best_hyperparameters(
            study, out / "best_hyperparameters.yaml")
    return paths


def record_promotion(study, record: Mapping[str, Any]) -> None:
    """Store a promotion (trial, metrics, fitness, weights, ...) on the study, keyed by trial number."""
    records = dict(study.user_attrs.get(PROMOTIONS_ATTR) or {})
    records[str(record["trial"])] = dict(record)
    study.set_user_attr(PROMOTIONS_ATTR, records)


def promotions(study) -> dict[int, dict[str, Any]]:
    """The study's promotions by trial number (empty when none)."""
    return {int(k): v for k, v in (study.user_attrs.get(PROMOTIONS_ATTR) or {}).items()}


def validation(study) -> dict[str, Any] | None:
    """The verdict `automl validate` stored on the study (automl.validation.Verdict.as_dict), or None."""
    return study.user_attrs.get(VALIDATION_ATTR)


def latest_promotion(study) -> dict[str, Any] | None:
    """The promotion recorded last (by its finished_at time), or None."""
    records = list(promotions(study).values())
    return max(records, key=lambda r: str(r.get("finished_at", ""))) if records else None


def list_studies(storage: str | None = None, studies_dir: Path = STUDIES_DIR) -> list[dict]:
    """Every study in `storage` (default: every studies/*.db) with trial counts and best fitness."""
    import optuna
    from optuna.trial import TrialState

    urls = [storage] if storage else [
        default_storage(p.stem, studies_dir) for p in sorted(studies_dir.glob("*.db"))
    ]
    rows = []
    for url in urls:
        store = get_storage(url, "")
        for summary in optuna.get_all_study_summaries(store, include_best_trial=False):
            study = optuna.load_study(study_name=summary.study_name, storage=store)
            trials = study.get_trials(deepcopy=False)
            counts = {s: sum(t.state == s for t in trials) for s in TrialState}
            best = best_trial(study)
            rows.append({
                "study": summary.study_name,
                "storage": url,
                "trials": len(trials),
                "complete": counts[TrialState.COMPLETE],
                "pruned": counts[TrialState.PRUNED],
                "fail": counts[TrialState.FAIL],
                "running": counts[TrialState.RUNNING],
                "best_fitness": fitness_of(best) if best else None,
                "best_trial": best.number if best else None,
            })
    return rows
