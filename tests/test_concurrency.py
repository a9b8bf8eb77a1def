"""Several `automl search` processes started at the same moment on one study."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from automl.study import finished_trials, get_storage

pytestmark = pytest.mark.integration
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(("storage", "processes", "total"), [
    ("sqlite:///studies/shared.db", 3, 5),
    ("studies/shared.log", 2, 3),  # a journal file
])
def test_processes_sharing_a_study_reach_the_exact_total(in_tmp, tiny_data, storage, processes,
                                                         total):
    cmd = [sys.executable, "-m", "automl", "search", "--data", str(tiny_data), "--study", "shared",
           "--storage", storage, "--trials", str(total), "--epochs", "1", "--imgsz", "64",
           "--batch", "4", "--seed", "0", "--cpus-per-trial", "1"]
    procs = [subprocess.Popen(cmd, cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(processes)]
    outputs = [p.communicate(timeout=420) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "database is locked" not in out + err
    study = optuna.load_study(study_name="shared", storage=get_storage(storage, "shared"))
    trials = study.trials
    assert len(finished_trials(study)) == total == len(trials)
    assert sorted(t.number for t in trials) == list(range(total))
    assert all(t.state == TrialState.COMPLETE for t in trials)
