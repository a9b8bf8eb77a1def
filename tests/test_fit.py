"""`automl fit`: the step logic (automl.results.fitting, with fake steps), its refusals, and a
real fit on tiny data that is killed after its search and goes on without searching again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from automl.errors import ConfigError
from automl.results.fitting import (
    STATE,
    StepState,
    choose_validation,
    comparison,
    run_steps,
    summary_markdown,
    training_s,
)
from tests.conftest import run_cli


class FakeClock:
    """A clock each step moves on by its own seconds."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fake_steps(clock, ran, seconds, *, fail=None):
    """Fake steps that record that they ran, take `seconds[name]`, and leave a dict (None for
    "validate": skipped); `fail` raises as a kill would stop it."""
    def step(name):
        def run():
            ran.append(name)
            clock.now += seconds.get(name, 1.0)
            if name == fail:
                raise KeyboardInterrupt
            return None if name == "validate" else {"of": name}
        return run
    return {n: step(n) for n in ("check", "search", "validate", "promote", "summary")}


def test_finished_steps_are_kept_and_not_run_again(tmp_path):
    clock, ran = FakeClock(), []
    state = StepState(tmp_path, {"budget": 60})
    with pytest.raises(KeyboardInterrupt):  # killed during the promotion
        run_steps(state, fake_steps(clock, ran, {"search": 40}, fail="promote"),
                  say=lambda _: None, clock=clock)
    assert ran == ["check", "search", "validate", "promote"]
    again = StepState.load(tmp_path, {"budget": 60})
    assert list(again.done) == ["check", "search", "validate"]  # the killed step is not
    assert again.done["validate"]["skipped"] and again.done["search"]["of"] == "search"
    assert again.spent_s == pytest.approx(42.0)  # the finished steps' seconds count as spent
    ran.clear()
    lines = []
    run_steps(again, fake_steps(clock, ran, {}), say=lines.append, clock=clock)
    assert ran == ["promote", "summary"]
    assert "fit: step search finished before, not run again" in lines
    assert list(StepState.load(tmp_path, {"budget": 60}).done) == [
        "check", "search", "validate", "promote", "summary"]


def test_the_state_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    state = StepState(tmp_path, {"budget": 60}, {"check": {"seconds": 1.0}})
    state.save()
    before = (tmp_path / STATE).read_text()
    state.done["search"] = {"seconds": 9.0}

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        state.save()
    assert (tmp_path / STATE).read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == [STATE]  # no temporary file left


def test_nothing_is_written_before_the_folder_is_made(tmp_path):
    StepState(tmp_path / "new", {}, {"check": {"seconds": 1.0}}).save()
    assert not (tmp_path / "new").exists()


def test_a_folder_of_a_fit_with_other_settings_is_refused_naming_them(tmp_path):
    StepState(tmp_path, {"budget": 3600.0, "model": "yolo11n.yaml"}).save()
    with pytest.raises(ConfigError) as e:
        StepState.load(tmp_path, {"budget": 7200.0, "model": "yolo11n.yaml"})
    assert str(e.value).startswith(f"--out {tmp_path}: holds a fit with other settings (budget: "
                                   "3600.0 there, 7200.0 now)")


@pytest.mark.parametrize(("left", "candidates", "expected"), [
    (10_000, 8, (3, 2)),  # roomy: the top 3 and the plain training, two seeds each
    (100 + 20 + 6 * 10, 8, (2, 2)), (100 + 20 + 3 * 10, 8, (2, 1)),
    (100 + 20 + 2 * 10, 8, (1, 1)), (100 + 20 + 19, 8, None),  # not even one more training
    (10_000, 1, (1, 2)),  # one searched trial to validate
    (10_000, 0, None),  # only the plain training completed
])
def test_validation_is_as_large_as_the_time_left_allows(left, candidates, expected):
    assert choose_validation(left_s=left, train_s=10.0, kept_s=120.0,
                             candidates=candidates) == expected


def test_a_full_data_training_is_the_searchs_epoch_or_its_trials_extrapolated():
    planned = training_s(epochs=10, epoch_s=2.0, fraction=0.5, overhead_s=5.0)
    assert planned == pytest.approx(45.0)  # 10 epochs of 4 s on all images, and a start
    # whole trials that took longer (a loaded machine): their median, on all images
    assert training_s(epochs=10, epoch_s=2.0, fraction=0.5, overhead_s=5.0,
                      trials_s=[30.0, 40.0, 90.0]) == pytest.approx(80.0)
    assert training_s(epochs=10, epoch_s=2.0, fraction=0.5, overhead_s=5.0,
                      trials_s=[10.0]) == pytest.approx(45.0)


def test_the_summary_compares_the_tuned_model_with_the_plain_training():
    rows = comparison({"fitness": 0.6, "map50": 0.8}, {"fitness": 0.5, "map50": 0.85})
    assert rows[0] == {"metric": "fitness", "tuned": 0.6, "plain": 0.5,
                       "gain": pytest.approx(0.1)}
    assert rows[1]["gain"] == pytest.approx(-0.05)
    text = summary_markdown({
        "study": "s", "data": "d.yaml", "budget": "10m", "spent": "9m", "planned": "9m30s",
        "weights": "w/best.pt", "trial": 4, "report": "r.html", "comparison": rows,
        "thresholds": {"path": "w/thresholds.yaml", "conf": 0.25, "iou": 0.6, "metric": "f1"},
        "exports": {"onnx": "w/best.onnx"}, "steps": {"search": 300.0, "validate": None}})
    assert "| fitness | 0.6000 | 0.5000 | +0.1000 |" in text
    assert "| map50 | 0.8000 | 0.8500 | -0.0500 |" in text
    assert "conf 0.25, NMS IoU 0.6, chosen for f1" in text and "| validate | skipped |" in text
    # another task's own metrics are compared too
    assert [r["metric"] for r in comparison({"fitness": 0.7, "top1": 0.8, "top5": 1.0},
                                            {"fitness": 0.6, "top1": 0.7, "top5": 1.0})] == [
        "fitness", "top1", "top5"]
    assert [r["metric"] for r in comparison({"map50": 0.5, "mask_map50_95": 0.2},
                                            {"map50": 0.4, "mask_map50_95": 0.1})] == [
        "map50", "mask_map50_95"]


def test_fit_needs_a_budget_and_refuses_a_folder_of_someone_elses(tmp_path):
    result = run_cli("fit", cwd=tmp_path)
    assert result.returncode == 2 and "--budget" in result.stderr
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep\n")
    result = run_cli("fit", "--budget", "1h", "--out", str(mine), cwd=tmp_path)
    assert result.returncode == 2
    assert "already holds files and nothing in it may be overwritten" in result.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    result = run_cli("fit", "--budget", "1h", "--metric", "f2", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # nothing written


def _fit(out, data, *, kill_after: str | None = None, timeout: float = 600):
    """`python -m automl fit` on `data` into `out`; with `kill_after`, killed (its whole process
    group, Ray's workers included) once the step's marker line appears. Returns its output."""
    argv = [sys.executable, "-m", "automl", "fit", "--data", str(data), "--budget", "4m",
            "--epochs", "2", "--imgsz", "64", "--batch", "4", "--seed", "0", "--study", "f",
            "--formats", "onnx", "--out", str(out)]
    process = subprocess.Popen(argv, cwd=out.parent, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines, started = [], time.monotonic()
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if kill_after and line.startswith(f"fit: step {kill_after} done"):
                os.killpg(process.pid, signal.SIGKILL)
                break
            assert time.monotonic() - started < timeout, "\n".join(lines)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return lines, process.returncode


@pytest.mark.integration
def test_a_fit_killed_after_its_search_goes_on_without_searching_again(tmp_path, tiny_data):
    import optuna

    out = tmp_path / "fit"
    first, code = _fit(out, tiny_data, kill_after="search")
    assert code == -signal.SIGKILL, "\n".join(first)
    done = json.loads((out / STATE).read_text())["done"]
    assert list(done) == ["check", "search"], "\n".join(first)
    storage = f"sqlite:///{tmp_path / 'studies' / 'f.db'}"
    trials = len(optuna.load_study(study_name="f", storage=storage).trials)

    second, code = _fit(out, tiny_data)
    text = "\n".join(second)
    assert code == 0, text
    assert "fit: step search finished before, not run again" in second
    assert "fit: step check finished before, not run again" in second
    assert not any(line.startswith("budget: timing one epoch") for line in second), text
    assert len(optuna.load_study(study_name="f", storage=storage).trials) == trials
    # the folder holds the final weights, their thresholds, the export, the report, the summary
    summary = json.loads((out / "summary.json").read_text())
    weights = out / "promote" / f"f-trial{summary['trial']}" / "weights"
    assert summary["weights"] == str((weights / "best.pt").resolve())
    assert (weights / "best.pt").is_file() and (weights / "thresholds.yaml").is_file()
    assert (out / "report.html").is_file() and (out / "summary.md").is_file()
    exports = summary["exports"]
    assert any(name.startswith("onnx") for name in exports), exports
    assert all(Path(path).is_file() and Path(path).parent == weights for path in exports.values())
    assert {r["metric"] for r in summary["comparison"]} >= {"fitness", "map50", "map50_95"}
    if summary["trial"] != 0:  # the plain training was trained on the full data too
        assert (out / "promote" / "f-trial0" / "weights" / "best.pt").is_file()
    assert summary["thresholds"]["metric"] == "f1"
    # the plan fits the budget, and the budget's clock went on across the kill: what the fit
    # spent is both runs' finished steps (the search's among them), not the second run's alone
    # (how close the spent time keeps to the plan on a loaded machine: tests/test_budget.py)
    assert summary["planned_s"] <= 240 * (1 - 0.05)
    finished = sum(s for s in summary["steps"].values() if s is not None)
    assert summary["steps"]["search"] > 0
    assert finished <= summary["spent_s"] <= finished + 30, text
    assert second[-1].startswith("next: yolo predict model=")


@pytest.mark.parametrize(("model", "task", "demo"), [
    ("yolo11n-seg.yaml", "segment", "demo-seg"), ("yolo11n-cls.yaml", "classify", "demo-cls"),
])
def test_a_fit_of_another_task_checks_its_demo_skips_thresholds_and_deploys(
        model, task, demo, tmp_path, monkeypatch):
    from automl import api
    from automl.config import SearchFlags
    from automl.data.demo import ensure_demo_dataset
    from automl.results.deployment import Artifact, DeployResult
    from automl.results.fitting import StepState

    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))
    assert api._demo_of(model) == demo and api._demo_of("yolo11n.yaml") == "demo"
    lines, deployed = [], []

    def fake_deploy(**kwargs):  # a fake of automl deploy: records what it was asked
        deployed.append(kwargs)
        return DeployResult(
            weights=Path("w.pt"), yaml=Path("deploy.yaml"), threads=1, runs=1, artifacts=[
                Artifact("onnx fp32", "w.onnx", 1.0, 1.0, 1.0, {})])

    monkeypatch.setattr(api, "deploy", fake_deploy)
    state = StepState(tmp_path / "fit", {})
    steps = api._FitSteps(SearchFlags(model=model, budget="1h", study="s"), state,
                          tmp_path / "fit", lines.append, metric="f1", formats="onnx")
    checked = steps.check()
    assert checked["data"] == str(ensure_demo_dataset(task=task))  # the task's demo, not boxes
    state.done = {"check": checked, "promote": {"weights": "w.pt"},
                  "thresholds": {"skipped": True, "seconds": 0.0}}
    assert steps.thresholds() is None
    assert f"fit: no thresholds: {model} trains task '{task}'" in lines[-1]
    assert steps.deploy() == {"exports": {"onnx fp32": "w.onnx"}}
    assert deployed[0]["weights"] == "w.pt" and deployed[0]["data"] == checked["data"]
    assert deployed[0]["thresholds"] is None


def test_a_fits_check_counts_the_images_its_trials_train_on(tmp_path, tiny_data):
    from automl import api
    from automl.config import SearchFlags
    from automl.results.fitting import StepState

    lines: list[str] = []
    flags = SearchFlags(data=str(tiny_data), budget="1h", study="s",
                        train_args=["fraction=0.5"])
    steps = api._FitSteps(flags, StepState(tmp_path / "fit", {}), tmp_path / "fit", lines.append,
                          metric="f1", formats=None)
    assert steps.check()["clean"]
    # fraction=0.5 keeps the first 8 of the 16 train images (val is not cut), as yolo train does
    assert "16 images checked (train 8, val 8)" in lines[-1], lines[-1]


def test_a_fits_search_plans_from_its_check_without_checking_the_images_again(
        tmp_path, tiny_data, monkeypatch):
    from dataclasses import replace

    from automl import api
    from automl.config import SearchFlags
    from automl.data import checks
    from automl.results.fitting import StepState

    calls = []
    real = checks.check_dataset

    def counting(*args, **kwargs):  # the real check, counted
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(checks, "check_dataset", counting)
    lines: list[str] = []
    flags = SearchFlags(data=str(tiny_data), study="s", train_args=["fraction=0.5"])
    steps = api._FitSteps(replace(flags, budget="1h"), StepState(tmp_path / "fit", {}),
                          tmp_path / "fit", lines.append, metric="f1", formats=None)
    steps.check()
    plan = api._plan(flags, lines.append, checked=steps.checked)
    assert len(calls) == 1
    assert len(plan.dataset.train) == 8  # fraction=0.5 of 16, as the check counted
    # without the check step's result (a resumed fit), the plan checks the data itself
    assert len(api._plan(flags, lines.append).dataset.train) == 8 and len(calls) == 2
