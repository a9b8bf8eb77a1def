"""Interrupting a real `automl search` process (kill -9, Ctrl-C) and resuming it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from automl.study import INTERRUPTED_ATTR, RETRY_OF_ATTR, finished_trials

pytestmark = pytest.mark.integration
optuna.logging.set_verbosity(optuna.logging.WARNING)


def command(data, study, trials=3):
    return [sys.executable, "-m", "automl", "search", "--data", str(data), "--study", study,
            "--trials", str(trials), "--epochs", "4", "--imgsz", "64", "--batch", "4",
            "--seed", "0", "--pruner", "none"]


def load(cwd, study):
    return optuna.load_study(study_name=study, storage=f"sqlite:///{cwd / 'studies' / f'{study}.db'}")


def start(cwd, cmd):
    # own session: signals reach the search and the Ray processes it starts, not pytest
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def wait_for(cwd, study, ready, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if (cwd / "studies" / f"{study}.db").exists():
            try:
                trials = load(cwd, study).trials
            except Exception:  # the study is being created
                trials = []
            if ready(trials):
                return trials
        time.sleep(0.3)
    proc.kill()
    raise AssertionError("the search never reached the state to interrupt")


def training(trials, number):
    return len(trials) > number and trials[number].state == TrialState.RUNNING and \
        len(trials[number].intermediate_values) >= 1


def test_kill_9_then_the_same_command_resumes_keeping_every_complete_trial(in_tmp, tiny_data):
    cmd = command(tiny_data, "k")
    proc = start(in_tmp, cmd)
    before = wait_for(in_tmp, "k", lambda t: len(t) > 1 and t[0].state == TrialState.COMPLETE
                      and training(t, 1), proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    complete_before = {t.number: (t.params, t.value) for t in load(in_tmp, "k").trials
                       if t.state == TrialState.COMPLETE}
    assert 0 in complete_before
    killed = before[1]

    result = subprocess.run(cmd, cwd=in_tmp, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"marked interrupted trials [{killed.number}] as FAIL" in result.stdout
    study = load(in_tmp, "k")
    trials = study.trials
    for number, (params, value) in complete_before.items():
        assert trials[number].state == TrialState.COMPLETE
        assert (trials[number].params, trials[number].value) == (params, value)
    interrupted = trials[killed.number]
    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs[INTERRUPTED_ATTR]
    retries = [t for t in trials if t.user_attrs.get(RETRY_OF_ATTR) == killed.number]
    assert len(retries) == 1 and retries[0].params == interrupted.params
    assert retries[0].state == TrialState.COMPLETE
    assert len(finished_trials(study)) == 3
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_ctrl_c_marks_running_trials_fail_and_exits_130(in_tmp, tiny_data):
    proc = start(in_tmp, command(tiny_data, "c", trials=2))
    wait_for(in_tmp, "c", lambda t: training(t, 0), proc)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; finished trials are kept" in err and "Run the same command again" in err
    assert "Traceback" not in err
    trial = load(in_tmp, "c").trials[0]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs[INTERRUPTED_ATTR] and "Ctrl-C" in trial.user_attrs["error"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_driver_killed_mid_trial_leaves_nothing_running_and_the_other_finishes_the_budget(
        in_tmp, tiny_data, backend, monkeypatch):
    """Two drivers on one study; kill -9 one (and its Ray) while it trains. The other takes
    over the dead driver's trial (dead PID on this host, or its heartbeat stopped) and the
    study ends with the full budget finished and no trial RUNNING."""
    if backend == "postgres":
        url = os.environ.get("AUTOML_TEST_POSTGRES_URL")
        if not url:
            if os.environ.get("AUTOML_REQUIRE_POSTGRES"):
                pytest.fail("AUTOML_REQUIRE_POSTGRES is set but AUTOML_TEST_POSTGRES_URL is not")
            pytest.skip("no PostgreSQL server (set AUTOML_TEST_POSTGRES_URL; .ci/run does)")
    else:
        url = f"sqlite:///{in_tmp / 'hb.db'}"
    study = f"hb-{backend}-{os.getpid()}"
    monkeypatch.setenv("AUTOML_HEARTBEAT_S", "1")
    cmd = [*command(tiny_data, study, trials=5), "--storage", url, "--cpus-per-trial", "1"]
    doomed = start(in_tmp, cmd)
    survivor = start(in_tmp, cmd)

    def load_any():
        return optuna.load_study(study_name=study, storage=url)

    deadline = time.monotonic() + 300
    victim = None
    while time.monotonic() < deadline and victim is None:
        time.sleep(0.5)
        try:
            trials = load_any().trials
        except Exception:
            continue
        pid = doomed.pid
        for t in trials:
            if (t.state == TrialState.RUNNING and t.intermediate_values
                    and str(t.user_attrs.get("automl:owner", "")).endswith(f":{pid}")):
                victim = t.number
    assert victim is not None, "the doomed driver never trained"
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    out, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err
    trials = load_any().trials
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    assert len(finished_trials(load_any())) == 5
    dead = trials[victim]
    assert dead.state == TrialState.FAIL and dead.user_attrs[INTERRUPTED_ATTR]
    assert any(t.user_attrs.get(RETRY_OF_ATTR) == victim for t in trials)


def test_a_trial_whose_heartbeat_stopped_on_another_machine_is_recovered(tmp_path, monkeypatch):
    """The PID check cannot see another machine's process; the heartbeat can."""
    from optuna.distributions import FloatDistribution

    from automl.study import OWNER_ATTR, open_study, record_heartbeat, recover_interrupted

    monkeypatch.setenv("AUTOML_HEARTBEAT_S", "1")
    study = open_study("beat", f"sqlite:///{tmp_path / 'beat.db'}")
    far = study.ask({"x": FloatDistribution(0, 1)})
    far.set_user_attr(OWNER_ATTR, "another-machine:12345")
    record_heartbeat(study, far)
    alive = study.ask({"x": FloatDistribution(0, 1)})
    alive.set_user_attr(OWNER_ATTR, "another-machine:12346")
    assert recover_interrupted(study) == []  # both beat within the grace period
    for _ in range(6):  # 6 s: past the 4 s grace for `far`; `alive` keeps beating
        time.sleep(1)
        record_heartbeat(study, alive)
    assert recover_interrupted(study) == [far.number]
    again = study.trials[far.number]
    assert again.state == TrialState.FAIL and "heartbeats" in again.user_attrs["error"]
    assert again.user_attrs[INTERRUPTED_ATTR]
    assert study.trials[alive.number].state == TrialState.RUNNING
