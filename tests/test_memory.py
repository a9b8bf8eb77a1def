"""Out of memory is a smaller batch, not a lost trial; a trial's peak GPU memory against its share.

The trainings here are real (tiny ultralytics runs on generated data); the out-of-memory errors
are a fake (tests/fakes.py `fake_out_of_memory`) raising the error torch raises, at model build,
a first batch or mid-epoch. The peak counters are torch.cuda's on a GPU (tests/test_gpu.py) and a
fake (`FakeCuda`) here.
"""

from __future__ import annotations

import math
import os

import optuna
import pytest
from optuna.trial import TrialState

from automl.config import RunSpec
from automl.epochs import EpochReport
from automl.execution.events import TrialEvent
from automl.execution.memory import (
    is_out_of_memory,
    memory_record,
    over_share,
    peak_memory,
    reset_peak,
    retry_batch,
)
from automl.results.progress import TrialLines
from tests.fakes import FakeCuda, fake_memory_limit


class _Device:
    def __init__(self, kind: str) -> None:
        self.type = kind


def test_torch_out_of_memory_is_recognised_and_other_errors_are_not():
    import torch

    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert is_out_of_memory(RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("lr0 must be > 0"))


def test_a_retry_halves_the_batch_down_to_the_floor():
    assert retry_batch(16, 2) == 8
    assert retry_batch(5, 2) == 2
    assert retry_batch(3, 2) is None  # half of 3 is 1, below the floor
    assert retry_batch(2, 2) is None
    assert retry_batch(0, 2) is None  # autobatch (-1) or a memory fraction: no number to halve
    assert retry_batch(4, 1) == 2


def test_peak_memory_reads_torchs_counters_on_cuda_and_nothing_on_cpu():
    fake = FakeCuda(allocated_mb=900, reserved_mb=1200, total_mb=8192)
    reset_peak(_Device("cuda"), fake)
    assert fake.resets == 1
    assert peak_memory(_Device("cuda"), fake) == {
        "gpu_peak_allocated_mb": 900.0, "gpu_peak_reserved_mb": 1200.0, "gpu_total_mb": 8192.0}
    reset_peak(_Device("cpu"), fake)
    assert fake.resets == 1
    assert peak_memory(_Device("cpu"), fake) == {}


def test_a_peak_over_the_share_is_said_and_one_within_it_is_not():
    assert over_share(1200, 8192, 0.25) is None  # 1.2 GB of a 2 GB quarter
    line = over_share(3000, 8192, 0.25)
    assert line and "over its share" in line and "0.25 of 8.0 GB = 2.00 GB" in line
    assert "--gpus-per-trial" in line
    assert over_share(3000, 8192, math.nan) is None  # outside Ray, or no GPU share
    assert over_share(math.nan, 8192, 0.25) is None  # on the CPU


def test_the_record_keeps_the_batch_the_peaks_and_what_went_wrong():
    fake = FakeCuda(allocated_mb=2500, reserved_mb=3000, total_mb=8192)
    last = EpochReport(epoch=3, fitness=0.5, batch=4, requested_batch=16, gpu_share=0.25,
                       **peak_memory(_Device("cuda"), fake))
    attrs, notes = memory_record(last)
    assert attrs["batch"] == 4
    assert attrs["out_of_memory"] == "out of memory at batch 16: trained at batch 4 (nbs kept)"
    assert attrs["gpu_peak_reserved_mb"] == 3000.0 and attrs["gpu_share"] == 0.25
    assert "over its share" in attrs["over_gpu_share"]
    assert notes == [attrs["out_of_memory"], attrs["over_gpu_share"]]

    plain, none = memory_record(EpochReport(epoch=3, fitness=0.5, batch=16, requested_batch=16))
    assert plain == {"batch": 16} and none == []  # on the CPU: no peak is recorded


def test_the_trial_line_shows_the_notes(tmp_path):
    study = optuna.create_study(direction="maximize",
                                storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    lines: list[str] = []
    TrialLines(study, 3, lines.append)(TrialEvent(
        2, "COMPLETE", 0.5, {"map50": 0.6, "map50_95": 0.4}, None, 9.0, 3,
        notes=("out of memory at batch 16: trained at batch 8 (nbs kept)",)))
    assert "[out of memory at batch 16: trained at batch 8 (nbs kept)]" in lines[0]


# --- real trainings with a fake out-of-memory --------------------------------------------------

def _run(tiny_data, tmp_path, epochs: int = 2) -> RunSpec:
    return RunSpec(data=str(tiny_data), model="yolo11n.yaml", epochs=epochs, imgsz=32, batch=8,
                   fixed={"nbs": 8, "workers": 0, "warmup_epochs": 0},
                   project=str(tmp_path / "runs"), threads=os.cpu_count() or 1)


def _train(tiny_data, tmp_path, *limit, epochs: int = 2):
    from automl.execution.trainer import train_once

    reports: list[EpochReport] = []
    with fake_memory_limit(*limit):
        outcome = train_once({}, _run(tiny_data, tmp_path, epochs), name="t",
                             report=reports.append)
    return outcome, reports


@pytest.mark.integration
def test_out_of_memory_at_model_build_trains_again_at_half_the_batch(tiny_data, tmp_path):
    import gc
    import weakref

    from ultralytics.utils.callbacks.base import default_callbacks

    trainers = []  # each attempt's trainer: the failed one must not hold its memory on

    def remember(trainer) -> None:
        trainers.append(weakref.ref(trainer))

    default_callbacks["on_pretrain_routine_start"].append(remember)
    try:
        outcome, reports = _train(tiny_data, tmp_path, "build", 4)
    finally:
        default_callbacks["on_pretrain_routine_start"].remove(remember)
    assert outcome == {"epochs": 2, "batch": 4}
    assert [(r.epoch, r.batch, r.requested_batch) for r in reports] == [(1, 4, 8), (2, 4, 8)]
    assert all(math.isfinite(r.fitness) for r in reports)
    gc.collect()
    assert len(trainers) == 2 and all(t() is None for t in trainers)


@pytest.mark.integration
def test_out_of_memory_at_the_first_batch_is_ultralytics_halving_in_place(tiny_data, tmp_path):
    outcome, reports = _train(tiny_data, tmp_path, "first_batch", 2)
    assert outcome == {"epochs": 2, "batch": 2}  # 8 -> 4 -> 2 inside the one training
    assert [(r.epoch, r.batch) for r in reports] == [(1, 2), (2, 2)]


@pytest.mark.integration
def test_out_of_memory_mid_epoch_starts_again_and_its_epochs_count(tiny_data, tmp_path):
    outcome, reports = _train(tiny_data, tmp_path, "mid_epoch", 4, 2)
    assert outcome == {"epochs": 2, "batch": 4}
    # epoch 1 at batch 8 was reported before epoch 2 ran out; the retry reports from epoch 1
    assert [(r.epoch, r.batch) for r in reports] == [(1, 8), (1, 4), (2, 4)]


@pytest.mark.integration
def test_below_the_floor_the_training_fails_with_one_line(tiny_data, tmp_path):
    outcome, reports = _train(tiny_data, tmp_path, "build", 1)  # fits nowhere: 8, 4, 2 fail
    assert reports == []
    assert outcome == {"error": (
        "out of memory at batch 2 (model build), and half of it is below --min-batch 2: lower "
        "imgsz, search a smaller model, or give each trial more of the GPU (--gpus-per-trial, "
        "--concurrency)")}


@pytest.mark.integration
def test_ultralytics_halving_below_the_floor_fails_with_the_same_line(tiny_data, tmp_path):
    outcome, reports = _train(tiny_data, tmp_path, "first_batch", 1)  # 8 -> 4 -> 2 -> 1
    assert reports == []
    assert outcome["error"].startswith("out of memory at batch 2 (epoch 1), and half of it is "
                                       "below --min-batch 2: ")


@pytest.mark.integration
@pytest.mark.usefixtures("ray_session")
def test_a_search_keeps_a_trial_that_ran_out_of_memory_at_its_smaller_batch(
        in_tmp, tiny_data, ray_fakes, monkeypatch):
    import functools

    import automl
    from automl.execution import ray_runner

    lines: list[str] = []
    trainable = ray_fakes.fake_out_of_memory_trials({1: ("mid_epoch", 4, 2),
                                                     2: ("first_batch", 1)})
    monkeypatch.setattr(ray_runner, "run_search",
                        functools.partial(ray_runner.run_search, trainable=trainable))
    automl.search(data=str(tiny_data), space="lr_momentum", searcher="random", trials=3, seed=0,
                  fraction=1, epochs=2, imgsz=32, batch=8, min_batch=4, pruner="none",
                  concurrency=1, study="oom", log=lines.append)
    study = optuna.load_study(study_name="oom", storage="sqlite:///studies/oom.db")
    trials = {t.number: t for t in study.trials}
    assert trials[0].state == TrialState.COMPLETE and trials[0].user_attrs["batch"] == 8
    assert "out_of_memory" not in trials[0].user_attrs
    kept = trials[1]
    assert kept.state == TrialState.COMPLETE, kept.user_attrs.get("error")
    assert kept.user_attrs["batch"] == 4 and kept.user_attrs["epochs"] == 2
    assert kept.user_attrs["out_of_memory"] == ("out of memory at batch 8: trained at batch 4 "
                                                "(nbs kept)")
    assert kept.value == kept.user_attrs["fitness"]  # its fitness counts as the configuration's
    lost = trials[2]
    assert lost.state == TrialState.FAIL
    # ultralytics halved 8 -> 4 -> 2 in place; 2 is below --min-batch 4
    assert lost.user_attrs["error"].startswith("out of memory at batch 4 (epoch 1), and half of "
                                               "it is below --min-batch 4: ")
    assert any("#1" in line and "[out of memory at batch 8: trained at batch 4" in line
               for line in lines), lines
    exported = study.trials_dataframe()
    assert list(exported["user_attrs_batch"])[:2] == [8, 4]


def test_the_searcher_counts_the_retrys_epochs_and_keeps_its_batch(tmp_path):
    """Epochs 1-2 at batch 8, then out of memory: the retry's epochs 1-3 at batch 4 are the
    trial's (a fake sequence of reports, as a real retry sends them)."""
    from optuna.distributions import FloatDistribution

    from automl.execution.study_searcher import StudySearcher
    from tests.fakes import fake_run

    study = optuna.create_study(direction="maximize",
                                storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    events = []
    searcher = StudySearcher(study, {"lr0": FloatDistribution(1e-4, 1e-1, log=True)},
                             fake_run(3), 1, on_event=events.append)
    searcher.suggest("a")

    def epoch(n: int, fitness: float, batch: int) -> dict:
        return EpochReport(epoch=n, fitness=fitness, map50=fitness, batch=batch,
                           requested_batch=8).as_dict()

    for n, fitness, batch in [(1, 0.9, 8), (2, 0.95, 8), (1, 0.1, 4), (2, 0.2, 4), (3, 0.3, 4)]:
        searcher.on_trial_result("a", epoch(n, fitness, batch))
    searcher.on_trial_complete("a", epoch(3, 0.3, 4))
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.value == 0.3 and trial.user_attrs["best_epoch"] == 3  # not the lost 0.95
    assert trial.user_attrs["batch"] == 4
    assert trial.user_attrs["out_of_memory"].startswith("out of memory at batch 8")
    assert trial.intermediate_values == {1: 0.9, 2: 0.95, 3: 0.3}  # Optuna keeps a step's first
    assert events[-1].notes == (trial.user_attrs["out_of_memory"],)


@pytest.mark.integration
def test_promote_trains_at_half_the_batch_and_fails_below_the_floor_in_one_line(in_tmp,
                                                                               tiny_data):
    from automl.errors import AutoMLError
    from automl.results.promotion import promote
    from automl.study import default_storage, promotions
    from tests.test_promote import make_study

    make_study("s", tiny_data, [(TrialState.COMPLETE, 0.3, {"lr0": 0.02, "momentum": 0.8})])
    lines: list[str] = []
    with fake_memory_limit("build", 2):  # the study's batch 4 does not fit, 2 does
        result = promote(study="s", log=lines.append)
    record = promotions(optuna.load_study(study_name="s", storage=default_storage("s")))[0]
    assert record == result.record and record["batch"] == 2
    assert record["out_of_memory"] == "out of memory at batch 4: trained at batch 2 (nbs kept)"
    assert record["out_of_memory"] in lines

    with fake_memory_limit("build", 1), pytest.raises(AutoMLError) as failed:
        promote(study="s", trial=0, epochs=1, project="again", log=lines.append)
    assert str(failed.value) == (
        "promoting trial #0 failed: out of memory at batch 2 (model build), and half of it is "
        "below --min-batch 2: lower imgsz, search a smaller model, or give each trial more of "
        "the GPU (--gpus-per-trial, --concurrency)")


def test_the_top_table_shows_the_batch_once_a_trial_trained_at_a_smaller_one(tmp_path):
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from automl.results.summary import top_table

    study = optuna.create_study(direction="maximize",
                                storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    dist = {"lr0": FloatDistribution(1e-4, 0.1, log=True)}
    study.add_trial(create_trial(value=0.4, params={"lr0": 0.01}, distributions=dist,
                                 user_attrs={"fitness": 0.4, "batch": 16}))
    assert "batch" not in top_table(study).splitlines()[1]
    study.add_trial(create_trial(value=0.5, params={"lr0": 0.02}, distributions=dist,
                                 user_attrs={"fitness": 0.5, "batch": 8, "out_of_memory": "..."}))
    table = top_table(study).splitlines()
    assert "batch" in table[1]
    assert [row.split()[table[1].split().index("batch")] for row in table[2:]] == ["8", "16"]


@pytest.mark.integration
@pytest.mark.usefixtures("ray_session")
def test_validate_trains_at_half_the_batch_and_fails_below_the_floor(in_tmp, tiny_data,
                                                                     ray_fakes, monkeypatch):
    import functools

    from automl.execution import ray_runner
    from automl.results.validation import validate
    from automl.study import default_storage
    from tests.test_validate import SIX, make_study

    make_study("v", tiny_data, SIX, epochs=1)  # batch 4
    # the companion's trial #0 trains searched trial #1 (the top one), #1 the plain training
    trainable = ray_fakes.fake_out_of_memory_trials({0: ("build", 2), 1: ("build", 1)})
    monkeypatch.setattr(ray_runner, "run_search",
                        functools.partial(ray_runner.run_search, trainable=trainable))
    lines: list[str] = []
    validate(study="v", top=1, seeds=1, log=lines.append, live=False)
    companion = optuna.load_study(study_name="v-validate", storage=default_storage("v"))
    kept, lost = sorted(companion.trials, key=lambda t: t.number)
    assert kept.state == TrialState.COMPLETE and kept.user_attrs["batch"] == 2
    assert kept.user_attrs["out_of_memory"] == ("out of memory at batch 4: trained at batch 2 "
                                                "(nbs kept)")
    assert lost.state == TrialState.FAIL
    assert lost.user_attrs["error"].startswith("out of memory at batch 2 (model build), and half")
