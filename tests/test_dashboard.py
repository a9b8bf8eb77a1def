"""`automl dashboard` serves the real optuna-dashboard; `automl export` writes files from the study."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request

import optuna
import pytest
import yaml

from automl.config import StudyConfig
from automl.errors import StudyError
from automl.results.dashboard import resolve_storage
from automl.searching.spaces import load_space
from automl.study import check_config, open_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def study(in_tmp):
    s = open_study("dash", None)
    check_config(s, StudyConfig.from_dict({"fixed": {"optimizer": "SGD"}, "fitness": "v5"}))
    dists = load_space("lr_momentum").distributions()
    for value, lr0 in ((0.2, 0.01), (0.4, 0.002)):
        s.add_trial(optuna.trial.create_trial(
            params={"lr0": lr0, "lrf": 0.1, "momentum": 0.9}, distributions=dists, value=value,
            user_attrs={"map50": value + 0.1, "map50_95": value}))
    return s


def get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def dashboard(cwd):
    """`automl dashboard --study dash` running; yields (port, the study's id), then stops it and
    checks it said where it serves."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "automl", "dashboard", "--study", "dash",
                             "--port", str(port)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "dashboard did not answer"
                time.sleep(0.3)
        yield port, next(s for s in studies if s["study_name"] == "dash")["study_id"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/dashboard" in out


def test_dashboard_serves_the_study_over_its_http_api(in_tmp, study):
    with dashboard(in_tmp) as (port, study_id):
        detail = get(f"http://127.0.0.1:{port}/api/studies/{study_id}?after=0")
    trials = detail["trials"]
    assert [t["state"] for t in trials] == ["Complete", "Complete"]
    assert {p["name"] for p in trials[0]["params"]} == {"lr0", "lrf", "momentum"}
    assert [t["values"] for t in trials] == [[0.2], [0.4]]
    assert detail["objective_names"] == ["fitness (0.1*map50 + 0.9*map50_95)"]


@pytest.mark.integration  # a real browser process
def test_the_dashboard_draws_the_study_in_headless_chromium(in_tmp, study):
    from tests.browser import Browser

    with dashboard(in_tmp) as (port, study_id), Browser() as browser:
        browser.open(f"http://127.0.0.1:{port}/dashboard/studies/{study_id}")
        # a React page: wait until it has drawn the history plot and named the objective
        shown = browser.evaluate("""(async () => {
          for (let i = 0; i < 600; i++) {
            const plots = [...document.querySelectorAll('.js-plotly-plot')];
            if (plots.some(p => p.querySelector('.scatterlayer .point'))
                && document.body.innerText.includes('fitness (')) return true;
            await new Promise(r => setTimeout(r, 100));
          }
          return false;
        })()""")
        text = browser.evaluate("document.body.innerText")
        seen = browser.seen()
        errors = browser.errors
    assert shown, text[:2000]
    assert "fitness (0.1*map50 + 0.9*map50_95)" in text and "Objective 0" not in text
    assert any(figure["drawn"] >= 2 for figure in seen), seen  # both trials' points
    assert errors == []


def test_the_dashboard_reads_trials_with_plain_selects_equal_to_optunas_read(in_tmp, study,
                                                                             monkeypatch):
    # a 10,000-trial study's first page took 25.6 s through Optuna's ORM read (scale.py), and
    # the dashboard reads every trial again every 10 s: later reads skip the finished trials
    from optuna.trial import TrialState

    from automl.results import dashboard
    from automl.study import reading

    read = []
    real = reading.rdb_trials
    monkeypatch.setattr(reading, "rdb_trials",
                        lambda *a, **k: read.append(k["numbers"] and sorted(k["numbers"]))
                        or real(*a, **k))
    store = dashboard.dashboard_storage("sqlite:///studies/dash.db")
    sid = store.get_study_id_from_name("dash")
    plain = optuna.storages.RDBStorage("sqlite:///studies/dash.db")
    assert store.get_all_trials(sid, deepcopy=False) == plain.get_all_trials(sid, deepcopy=False)
    assert read == [[0, 1]] and store.get_all_trials(sid, states=(TrialState.RUNNING,)) == []
    assert read == [[0, 1]]  # nothing but finished trials: nothing read again
    running = study.ask(load_space("lr_momentum").distributions())
    running.report(0.1, 1)
    assert store.get_all_trials(sid) == plain.get_all_trials(sid) and read[-1] == [2]
    running.report(0.3, 2)
    study.tell(running, 0.3)
    assert store.get_all_trials(sid) == plain.get_all_trials(sid) and read[-1] == [2]
    assert store.get_all_trials(sid)[2].state == TrialState.COMPLETE and read[-1] == [2]
    assert len(read) == 3  # #2 finished: kept, not read again
    for delete in (plain.delete_study, store.delete_study):  # elsewhere; the dashboard's button
        delete(sid)  # SQLite gives a new study (and its trials) the ids of the deleted ones
        again = open_study("dash", None)
        again.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.9))
        assert store.get_study_id_from_name("dash") == sid
        assert store.get_all_trials(sid) == plain.get_all_trials(sid) and read[-1] == [0]
    monkeypatch.setattr(reading, "NUMBERS_MAX", 0)  # more to read than one query names: all
    fresh = dashboard.dashboard_storage("sqlite:///studies/dash.db")
    assert fresh.get_all_trials(sid) == plain.get_all_trials(sid) and read[-1] is None


def test_resolve_storage(in_tmp, study):
    assert resolve_storage("dash", None) == "sqlite:///studies/dash.db"
    assert resolve_storage(None, None) == "sqlite:///studies/dash.db"  # the only study db
    assert resolve_storage(None, "sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(StudyError, match="--study nope: sqlite:///studies/nope.db does not exist"):
        resolve_storage("nope", None)


def test_export_writes_ultralytics_cfg_and_csv(in_tmp, study):
    result = subprocess.run([sys.executable, "-m", "automl", "export", "--study", "dash"],
                            cwd=in_tmp, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    best = in_tmp / "studies" / "dash" / "best_hyperparameters.yaml"
    assert yaml.safe_load(best.read_text()) == {"optimizer": "SGD", "lr0": 0.002, "lrf": 0.1,
                                                "momentum": 0.9}
    from ultralytics.cfg import get_cfg

    cfg = get_cfg(str(best))  # the form `yolo train cfg=...` accepts
    assert cfg.lr0 == 0.002 and cfg.optimizer == "SGD"
    csv = (in_tmp / "studies" / "dash" / "trials.csv").read_text().splitlines()
    assert len(csv) == 3 and "params_lr0" in csv[0] and "user_attrs_map50" in csv[0]


def test_export_of_a_missing_study_is_one_line(in_tmp, study):
    result = subprocess.run([sys.executable, "-m", "automl", "export", "--study", "nope"],
                            cwd=in_tmp, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "automl export: error: --study nope: no such study in sqlite:///studies/nope.db "
        "(the file does not exist)"]
    assert not (in_tmp / "studies" / "nope.db").exists()


def test_trials_csv_lists_only_weights_that_are_there(in_tmp, study):
    import csv

    from automl.study import export_study

    kept = in_tmp / "runs" / "trial_0002" / "weights" / "best.pt"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"weights")
    gone = in_tmp / "runs" / "trial_0001" / "weights" / "best.pt"  # a former best's, deleted
    dists = load_space("lr_momentum").distributions()
    for value, weights in ((0.5, gone), (0.6, kept)):
        study.add_trial(optuna.trial.create_trial(
            params={"lr0": 0.01, "lrf": 0.1, "momentum": 0.9}, distributions=dists, value=value,
            user_attrs={"weights": str(weights)}))
    paths = export_study(study, in_tmp / "out")
    with open(paths["trials_csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["user_attrs_weights"] for r in rows] == ["", "", "", str(kept)]
