"""`automl dashboard`: optuna-dashboard on a study's storage, on loopback by default."""

from __future__ import annotations

import threading
from pathlib import Path

from automl.errors import ConfigError, StudyError
from automl.study import STUDIES_DIR, default_storage, get_storage


def resolve_storage(study: str | None, storage: str | None, studies_dir: Path = STUDIES_DIR) -> str:
    """The storage URL to open: --storage, else the study's default, else the only studies/*.db.

    Raises:
        StudyError: when nothing (or more than one database) says which storage to open.
    """
    if storage:
        return storage
    if study:
        url = default_storage(study, studies_dir)
        if not (studies_dir / f"{study}.db").is_file():
            raise StudyError(f"--study {study}: {url} does not exist; pass --storage URL")
        return url
    found = sorted(studies_dir.glob("*.db"))
    if len(found) == 1:
        return default_storage(found[0].stem, studies_dir)
    names = ", ".join(p.stem for p in found) or "none"
    raise StudyError(f"say which study to show with --study NAME or --storage URL "
                     f"(studies under {studies_dir}/: {names})")


def dashboard_storage(url: str):
    """The storage optuna-dashboard serves: on SQLite and PostgreSQL its reads of a study's
    trials go through automl's plain SELECTs (automl.study.reading) instead of Optuna's ORM (too
    slow for the first page of a 10,000-trial study: benchmarks/scale.py), and each
    later read (the dashboard asks every 10 s) reads again only the trials not finished when it
    last looked. Everything else, writes included, is Optuna's own storage."""
    from automl.study import rdb_of, rdb_trials_kept

    store = get_storage(url, "", create=False)
    rdb = rdb_of(store)
    if rdb is not None:
        finished: dict[int, dict] = {}  # study id -> number -> finished trial, as read
        lock = threading.Lock()

        def get_all_trials(study_id: int, deepcopy: bool = True, states=None) -> list:
            with lock:
                trials = rdb_trials_kept(rdb, study_id, finished.setdefault(study_id, {}))
            return trials if states is None else [t for t in trials if t.state in states]

        store.get_all_trials = get_all_trials  # an instance attribute: the dashboard's reads
    return store


def check_listen(host: str, port: int) -> None:
    """The dashboard can listen on HOST:PORT (checked before the server starts, which would end
    in a traceback).

    Raises:
        ConfigError: a port in use, or a host that is not an address of this machine.
    """
    import errno
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(f"--port {port}: in use on {host}; pass a free --port") from None
        raise ConfigError(f"--host {host}: cannot listen there ({e.strerror}); pass an address "
                          "of this machine, or leave it out for 127.0.0.1") from None


def serve(url: str, *, host: str = "127.0.0.1", port: int = 8080, announce=print) -> None:
    """Run optuna-dashboard on `url` until interrupted (blocks)."""
    from optuna_dashboard import run_server

    check_listen(host, port)
    store = dashboard_storage(url)
    announce(f"optuna-dashboard on {url}: http://{host}:{port}/dashboard  (Ctrl-C to stop)")
    run_server(store, host=host, port=port)
