"""A search inside a time budget, end to end: a replayed search whose epochs take simulated time
through Ray Tune, a budget too small for any search, and one real training on tiny data."""

from __future__ import annotations

import shlex
import time

import pytest
from optuna.trial import TrialState

import automl
from automl.cli import build_parser, main
from automl.durations import parse_duration
from automl.searching.budget_plan import MARGIN
from automl.study import finished_trials, open_study
from tests.fakes import fake_record

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]

# the tolerance the docs state: a budgeted search ends inside its budget plus this share
TOLERANCE = 0.05


@pytest.fixture(scope="module")
def record_path(tmp_path_factory):
    return fake_record(tmp_path_factory.mktemp("rec") / "fake.npz")


def test_a_replayed_search_ends_inside_its_budget(record_path, in_tmp, capsys):
    lines: list[str] = []
    budget = 150  # Ray's start, before the plan, takes from a few seconds to a minute
    started = time.monotonic()
    automl.search(data="data.yaml", replay=str(record_path), replay_epoch_seconds=0.2,
                  budget=f"{budget}s", study="b", seed=0, log=lines.append)
    elapsed = time.monotonic() - started
    assert elapsed <= budget * (1 + TOLERANCE)
    study = open_study("b", None, create=False)
    done = finished_trials(study)
    assert study.trials[0].state == TrialState.COMPLETE  # the plain training
    # the plan, with its ETA inside the budget, before the first trial
    planned = next(i for i, line in enumerate(lines) if line.startswith("budget 2m30s: "))
    first = next(i for i, line in enumerate(lines) if line.startswith("trial 1/"))
    assert planned < first and "ETA" in lines[planned]
    eta = parse_duration(lines[planned].split("ETA ")[1].split(" ")[0])
    assert eta <= budget * (1 - MARGIN)
    ending = [line for line in lines if line.startswith("budget: ")]
    assert len(ending) == 1 and f"{len(done)}/" in ending[0]
    # the plan's trials ran, or the measured pace (a loaded machine) says why fewer did
    sure = int(lines[planned].split(": ")[1].split(" trials")[0])
    assert sure >= 2 and (len(done) >= sure or "the measured pace" in ending[0])
    # the same command goes on with a budget of its own: the study's epochs, more trials; and
    # ends with the next step, a command the parser takes
    capsys.readouterr()
    started = time.monotonic()
    assert main(["search", "--data", "data.yaml", "--replay", str(record_path),
                 "--replay-epoch-seconds", "0.2", "--budget", "45s", "--study", "b",
                 "--seed", "0"]) == 0
    assert time.monotonic() - started <= 45 * (1 + TOLERANCE)
    assert len(finished_trials(open_study("b", None, create=False))) > len(done)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("next: automl validate --study b  (") or \
        last.startswith("next: automl promote --study b  (")
    argv = shlex.split(last.removeprefix("next: ").split("  (")[0])
    assert build_parser().parse_args(argv[1:]).study == "b"
    assert "epochs=20 imgsz=96" in last  # the yolo train of what the trials trained


def test_a_budget_too_small_exits_2_before_any_trial_naming_one_that_fits(record_path, in_tmp,
                                                                          capsys):
    code = main(["search", "--replay", str(record_path), "--data", "data.yaml",
                 "--replay-epoch-seconds", "2", "--budget", "30s", "--study", "tiny"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "--budget 30s: too small for the plain training and one more trial" in err
    assert "the smallest budget that fits is --budget " in err
    assert not (in_tmp / "studies" / "tiny.db").exists()  # nothing was opened, nothing trained


def test_a_real_search_plans_from_a_timed_epoch_and_ends_inside_its_budget(in_tmp, tiny_data):
    lines: list[str] = []
    budget = 150
    started = time.monotonic()
    automl.search(data=str(tiny_data), budget="2m30s", epochs=6, imgsz=64, batch=4, seed=0,
                  study="real", log=lines.append)
    elapsed = time.monotonic() - started
    assert elapsed <= budget * (1 + TOLERANCE), "\n".join(lines)
    assert any(line.startswith("budget: timing one epoch") for line in lines)
    plan = next(line for line in lines if line.startswith("budget 2m30s: "))
    assert "epochs" in plan and "ETA" in plan
    study = open_study("real", None, create=False)
    # the plain training ran to its end (how many more fit depends on this machine's load)
    assert study.trials[0].state == TrialState.COMPLETE
    assert study.trials[0].user_attrs["epochs"] <= 6  # --epochs is a cap the plan keeps
