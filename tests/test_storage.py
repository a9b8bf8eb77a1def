"""Nothing of anyone else's: a search writes only into an empty database or an Optuna storage,
and a command that only reads creates nothing (no folder, no file, no table), whatever it is
given; each refusal is one line naming the storage, exit 2."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import uuid

import pytest

from automl.study import check_storage, get_storage
from tests.conftest import run_cli

READERS = {  # every command that only reads a storage, with what it needs besides --storage
    "studies": [], "status": ["--study", "s"], "export": ["--study", "s"],
    "report": ["--study", "s"], "dashboard": [],
}


def tree(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, dirs, files in os.walk(root) for n in dirs + files)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_exit_2(result, says: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    assert says in line, line
    return line


@pytest.fixture
def no_dashboard(monkeypatch):
    """optuna-dashboard would serve until stopped: reaching it at all is the failure here."""
    import optuna_dashboard

    def reached(*args, **kwargs):
        raise AssertionError("the dashboard was started")

    monkeypatch.setattr(optuna_dashboard, "run_server", reached)


def foreign_sqlite(path):
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE customers (name TEXT)")
    connection.execute("INSERT INTO customers VALUES ('ada')")
    connection.commit()
    connection.close()
    return path


@pytest.mark.parametrize("command", ["search", *READERS])
def test_a_database_of_someone_elses_is_never_written(tmp_path, no_dashboard, command):
    db = foreign_sqlite(tmp_path / "shop.db")
    before, files = digest(db), tree(tmp_path)
    args = ["--trials", "1"] if command == "search" else READERS[command]
    result = run_cli(command, *args, "--storage", f"sqlite:///{db}", cwd=tmp_path)
    line = one_line_exit_2(result, f"--storage sqlite:///{db}: the database holds tables that "
                                   "are not an Optuna study's (customers)")
    assert "Pass a new file such as sqlite:///studies/NAME.db" in line
    assert digest(db) == before and tree(tmp_path) == files


@pytest.mark.parametrize("command", sorted(READERS))
@pytest.mark.parametrize("storage", ["sqlite:///typo/x.db", "typo/x.log", "sqlite:///x.db"])
def test_a_reader_given_a_mistyped_storage_creates_nothing(tmp_path, no_dashboard, command,
                                                           storage):
    files = tree(tmp_path)
    result = run_cli(command, *READERS[command], "--storage", storage, cwd=tmp_path)
    path = storage.removeprefix("sqlite:///")
    one_line_exit_2(result, path)
    assert storage in result.stderr
    assert tree(tmp_path) == files == []


@pytest.mark.parametrize("command", sorted(READERS))
def test_a_reader_given_an_empty_file_leaves_it_empty(tmp_path, no_dashboard, command):
    empty = tmp_path / "empty.db"
    empty.touch()
    result = run_cli(command, *READERS[command], "--storage", f"sqlite:///{empty}", cwd=tmp_path)
    one_line_exit_2(result, f"--storage sqlite:///{empty}: holds no Optuna study (nothing was "
                            "created)")
    assert empty.stat().st_size == 0 and tree(tmp_path) == ["empty.db"]


def test_a_search_may_start_in_an_empty_file_and_readers_then_read_it(tmp_path):
    import optuna

    empty = tmp_path / "empty.db"
    empty.touch()
    url = f"sqlite:///{empty}"
    check_storage(url)  # an empty file is a new database: a search may create its tables
    optuna.create_study(study_name="s", storage=get_storage(url, "s"))
    result = run_cli("studies", "--storage", url, cwd=tmp_path)
    assert result.returncode == 0 and "s" in result.stdout, result.stderr


def test_an_optuna_storage_with_tables_of_its_own_beside_is_still_a_study(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'both.db'}"
    optuna.create_study(study_name="mine", storage=url)
    foreign_sqlite(tmp_path / "both.db")
    check_storage(url)
    assert [s.study_name for s in optuna.get_all_study_summaries(
        get_storage(url, "", create=False))] == ["mine"]


# --- PostgreSQL: a database of its own per test, created and dropped on the test server ---

POSTGRES = os.environ.get("AUTOML_TEST_POSTGRES_URL")


@pytest.fixture
def pg_database():
    """A new, empty PostgreSQL database on the test server (URL), dropped afterwards."""
    if not POSTGRES:
        if os.environ.get("AUTOML_REQUIRE_POSTGRES") == "1":
            pytest.fail("AUTOML_REQUIRE_POSTGRES=1 but AUTOML_TEST_POSTGRES_URL is not set")
        pytest.skip("no PostgreSQL server (set AUTOML_TEST_POSTGRES_URL; .ci/run does)")
    from sqlalchemy import create_engine, text

    name = f"automl_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    url = POSTGRES.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        from automl.study import storage

        storage._engine.cache_clear()  # its pooled connections would block the DROP
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def pg_tables(url) -> set[str]:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_postgresql_database_of_someone_elses_is_never_written(tmp_path, pg_database):
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_database)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE customers (name TEXT)"))
    engine.dispose()
    for args in (["search", "--trials", "1"], ["studies"], ["status", "--study", "s"]):
        result = run_cli(*args, "--storage", pg_database, cwd=tmp_path)
        one_line_exit_2(result, f"--storage {pg_database}: the database holds tables that are "
                                "not an Optuna study's (customers)")
    assert pg_tables(pg_database) == {"customers"} and tree(tmp_path) == []


def test_a_reader_creates_no_table_in_an_empty_postgresql_database(tmp_path, pg_database):
    for command in sorted(READERS):
        result = run_cli(command, *READERS[command], "--storage", pg_database, cwd=tmp_path)
        one_line_exit_2(result, f"--storage {pg_database}: holds no Optuna study")
    assert pg_tables(pg_database) == set() and tree(tmp_path) == []
    check_storage(pg_database)  # empty: a search may create its tables there
