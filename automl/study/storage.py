"""Where a study lives: storage URLs and files, locks shared by processes and machines, opening a
study and pinning what it measures (its config)."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from automl.config import StudyConfig
from automl.errors import ConfigError, StudyError
from automl.study.attrs import CONFIG_ATTR, DRIVERS_ATTR, STUDIES_DIR
from automl.study.ranking import best_trial, fitness_of
from automl.study.recovery import heartbeat_settings


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


def get_storage(storage: str | None, study_name: str, *, create: bool = True):
    """An Optuna storage for a URL (default: the study's SQLite file, created on demand).

    `create`: False for a command that only reads: the storage must already be an Optuna
    storage, and nothing (file, folder or table) is created.
    """
    import optuna

    url = storage or default_storage(study_name)
    path = storage_file(url)
    if path is not None and path.resolve() not in _checked_files:
        # once per process, before its first connection to the file: closing any descriptor of
        # a file drops the POSIX locks SQLite holds on it through another one (SQLite's own
        # "how to corrupt" list), so the file is never read beside an open connection
        _check_storage_file(url, path, create=create)
        _checked_files.add(path.resolve())
    # Optuna calls heartbeats experimental and would say so on every storage opened
    warnings.filterwarnings("ignore", message=".*heartbeat.*",
                            category=optuna.exceptions.ExperimentalWarning)
    # ...and that they belong to study.optimize, on every ask: automl beats for its trials itself
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    if url.startswith("sqlite:///"):
        from filelock import FileLock

        if not create:  # Optuna's tables are there (checked): no race, and no lock file made
            return _sqlite_storage(url)
        # processes opening a new file at once would race to create Optuna's tables
        with FileLock(str(path) + ".automl-schema.lock", timeout=120):
            return _retry_schema_race(lambda: _sqlite_storage(url))
    if path is not None:  # a journal file: many processes on one machine, no database
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    _check_server(url, create=create)
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
    """Before any work: a local storage file must be usable (see _check_storage_file), a
    database server must answer and hold nothing but Optuna's tables (see _check_tables)."""
    path = storage_file(url)
    if path is None:
        _check_server(url, create=True)
    elif path.resolve() not in _checked_files:
        _check_storage_file(url, path)


# tables every Optuna RDB storage has: a database holding other tables but not these is not ours
OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})


def _check_tables(url: str, tables: set[str], *, create: bool) -> None:
    """A search writes only into an empty database or an Optuna storage; a reader reads only an
    Optuna storage (Optuna would create its tables in any other).

    Raises:
        ConfigError: a database holding tables that are not Optuna's, or, for a reader, one
            without Optuna's tables.
    """
    if OPTUNA_TABLES <= tables:
        return
    if tables:
        shown = ", ".join(sorted(tables)[:3]) + (", ..." if len(tables) > 3 else "")
        raise ConfigError(f"--storage {url}: the database holds tables that are not an Optuna "
                          f"study's ({shown}); nothing was written to it. Pass a new file such "
                          "as sqlite:///studies/NAME.db, or an empty database")
    if not create:
        raise ConfigError(f"--storage {url}: holds no Optuna study (nothing was created); pass "
                          "the storage a search wrote (automl studies lists studies/*.db)")


def _sqlite_tables(path: Path) -> set[str]:
    """The tables of an SQLite file, read through a read-only connection."""
    import sqlite3

    connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}
    finally:
        connection.close()


def _check_server(url: str, *, create: bool) -> None:
    """A database server's storage (PostgreSQL, MySQL): its tables, read without creating any,
    must be Optuna's (see _check_tables).

    Raises:
        ConfigError: an unknown URL scheme or an unreachable server, or tables not Optuna's.
    """
    from sqlalchemy import inspect

    try:
        tables = set(inspect(_engine(url)).get_table_names())
    except Exception as e:
        raise ConfigError(f"--storage {url}: cannot open ({type(e).__name__}: {e})") from e
    _check_tables(url, tables, create=create)


def _check_storage_file(url: str, path: Path, *, create: bool = True) -> None:
    """A local storage file must be writable and, when it exists, be what the URL says it is.

    `create`: False for a reader: the file must exist and be an Optuna storage already, and
    nothing is made (no folder, no empty database).

    Raises:
        ConfigError: an unwritable folder, a folder in place of the file, or an existing file
            that is not an SQLite database (sqlite:///...) or an Optuna journal (a plain path),
            or an SQLite database holding tables that are not Optuna's: automl must never
            write into a file of the user's. For a reader, a file that does not exist.
    """
    if not create and not path.exists():
        raise ConfigError(f"--storage {url}: {path} does not exist (nothing was created); pass "
                          "the storage a search wrote (automl studies lists studies/*.db)")
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"--storage {url}: cannot create {path.parent} "
                              f"({e.strerror})") from None
    if path.is_dir():
        raise ConfigError(f"--storage {url}: {path} is a folder; name a file "
                          "(sqlite:///studies/NAME.db, or a journal file such as studies/NAME.log)")
    if create:
        try:  # a real write, not os.access: root passes access() on read-only file systems
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".automl-write-test-"):
                pass
        except OSError as e:
            raise ConfigError(f"--storage {url}: cannot write in {path.parent} ({e.strerror}); "
                              "pick a storage in a folder you can write to") from None
    if not path.is_file() or path.stat().st_size == 0:
        if not create and url.startswith("sqlite:///"):
            _check_tables(url, set(), create=False)
        return
    with path.open("rb") as f:
        head = f.read(4096)
    if url.startswith("sqlite:///"):
        if not head.startswith(b"SQLite format 3\0"):
            raise ConfigError(f"--storage {url}: {path} exists and is not an SQLite database; "
                              "pass a new file name")
        _check_tables(url, _sqlite_tables(path), create=create)
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
    store = get_storage(url, study_name, create=create)
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
    else:
        problem = config.conflict(stored)
        if problem:
            raise ConfigError(f"study '{study.study_name}' {problem}")
    names = metric_names(config)
    if study.metric_names != names and len(names) == len(study.directions):
        with warnings.catch_warnings():  # Optuna marks set_metric_names experimental
            warnings.simplefilter("ignore")
            study.set_metric_names(names)


def metric_names(config: StudyConfig) -> list[str]:
    """The study's objectives as optuna-dashboard and Optuna's plots name them: the fitness with
    its formula, then each measure with its unit."""
    from automl.fitness import parse_fitness
    from automl.objectives import FITNESS, MEASURES

    return [f"fitness ({parse_fitness(config.fitness).describe()})" if o == FITNESS
            else f"{MEASURES[o][0]} ({MEASURES[o][2]})" for o in config.goals.objectives]


def study_config(study) -> StudyConfig:
    """The config a search stored on the study (an empty one for a study automl did not make)."""
    return StudyConfig.from_dict(study.user_attrs.get(CONFIG_ATTR) or {})


def driver_seed(study, seed: int) -> int:
    """The sampler seed of the next search process on `study` (the caller holds the slot lock).

    The first process of a study uses `seed` as given (a fresh seeded search is reproducible);
    each later one (a resume, a second process on a shared study) a seed of its own derived
    from it, so it does not propose again the configurations the seed gave the first.
    """
    drivers = int(study.user_attrs.get(DRIVERS_ATTR, 0))
    study.set_user_attr(DRIVERS_ATTR, drivers + 1)
    return seed if drivers == 0 else (seed + 1_000_003 * drivers) % 2**32


def list_studies(storage: str | None = None, studies_dir: Path = STUDIES_DIR) -> list[dict]:
    """Every study in `storage` (default: every studies/*.db) with trial counts and best fitness."""
    import optuna
    from optuna.trial import TrialState

    urls = [storage] if storage else [
        default_storage(p.stem, studies_dir) for p in sorted(studies_dir.glob("*.db"))
    ]
    rows = []
    for url in urls:
        store = get_storage(url, "", create=False)
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
