"""A search and a promotion on a CUDA GPU: two trials packed on one GPU by Ray's fractional
GPUs, each training there, then the pick trained there in full. Skipped where torch sees no
CUDA GPU (CI has none); run on a lent GPU machine (docs/measured.md, "On a GPU")."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

import automl
from automl.study import promotions


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("ray_session"),
    pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU that torch can use (CI has none)"),
]


def test_a_search_packs_two_trials_on_one_gpu_and_promotes_there(in_tmp, tiny_data):
    automl.search(data=str(tiny_data), space="lr_momentum", searcher="tpe", trials=4, seed=0,
                  fraction=1, epochs=3, imgsz=64, batch=8, pruner="none", concurrency=2,
                  gpus_per_trial=0.5, study="gpu", log=lambda line: None)
    storage = "sqlite:///studies/gpu.db"
    study = optuna.load_study(study_name="gpu", storage=storage)
    trials = sorted(study.trials, key=lambda t: t.datetime_start)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    # every trial trained on the GPU Ray gave it (device auto inside the trial)
    assert all(t.user_attrs["device"].startswith("cuda") for t in trials), \
        [t.user_attrs.get("device") for t in trials]
    # torch's own peak counters, reset at each training's start, against the half it was given
    import torch

    total = torch.cuda.get_device_properties(0).total_memory / 2**20
    for t in trials:
        attrs = t.user_attrs
        assert 0 < attrs["gpu_peak_allocated_mb"] <= attrs["gpu_peak_reserved_mb"] < total / 2
        assert attrs["gpu_total_mb"] == total and attrs["gpu_share"] == 0.5
        assert "over_gpu_share" not in attrs and attrs["batch"] == 8
    # half a GPU each: two trained at the same time
    assert any(later.datetime_start < earlier.datetime_complete
               for earlier, later in zip(trials, trials[1:], strict=False))

    result = automl.promote(study="gpu", storage=storage, epochs=2, log=lambda line: None)
    record = promotions(optuna.load_study(study_name="gpu", storage=storage))[result.trial]
    assert record == result.record
    assert record["device"] == "auto" and record["trained_on"].startswith("cuda")
    assert record["gpu_peak_reserved_mb"] > 0 and "gpu_share" not in record  # the whole GPU
    assert result.weights.exists()


def test_autobatch_picks_each_trials_batch_on_the_gpu_and_records_it(in_tmp, tiny_data):
    """batch=-1 on a GPU: ultralytics' AutoBatch picks the batch as each trial starts; the study
    keeps -1 (asked), each trial the batch it trained with."""
    automl.search(data=str(tiny_data), space="lr_momentum", trials=2, seed=0, fraction=1,
                  epochs=1, imgsz=64, pruner="none", concurrency=1, gpus_per_trial=1,
                  study="autobatch", log=lambda line: None, train_args=["batch=-1"])
    study = optuna.load_study(study_name="autobatch", storage="sqlite:///studies/autobatch.db")
    assert study.user_attrs["automl:config"]["batch"] == -1
    for trial in study.trials:
        assert trial.state == TrialState.COMPLETE, trial.user_attrs.get("error")
        assert trial.user_attrs["device"].startswith("cuda")
        assert trial.user_attrs["batch"] >= 1  # what AutoBatch picked, not -1
