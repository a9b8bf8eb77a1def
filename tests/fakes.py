"""Fake trainers, named as such: they stand in for YOLO trainings where a test is about the
searchers' or the runner's logic, not about what a real training does.

- `fake_score`: a closed-form objective of the hyperparameters (searcher tests).
- `fake_*` Ray trainables: report `EpochReport`s through Ray Tune as a real trial does, with a
  per-epoch fitness that is a closed-form function of lr0 (runner and pruner tests). Ray ships
  them to its workers by value (the `ray_fakes` fixture in conftest.py).
- `fake_out_of_memory`: a fake memory limit on a real training (torch.OutOfMemoryError raised at
  model build, a first batch or mid-epoch); `FakeCuda`: torch.cuda's peak counters, faked.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

from automl.config import RunSpec
from automl.epochs import EpochReport


def fake_score(params, *, sgd_bonus: float = 0.1) -> float:
    """Best at lr0=0.01, momentum=0.9; a little better with a larger lrf and with SGD."""
    return (-abs(math.log10(params["lr0"]) + 2.0) - abs(params["momentum"] - 0.9)
            + 0.1 * params.get("lrf", 0.0)
            + (sgd_bonus if params.get("optimizer") == "SGD" else 0.0))


def fake_run(epochs: int) -> RunSpec:
    """A RunSpec for fake trainables: only the epochs matter to them."""
    return RunSpec(data="", model="", epochs=epochs, imgsz=0, batch=None)


def _report(epoch: int, fitness: float, **extra) -> None:
    from ray import tune

    tune.report(EpochReport(epoch=epoch, fitness=fitness, **extra).as_dict())


def fake_trainer(config):
    """Fitness grows each epoch, faster for larger lr0."""
    lr0 = config["params"]["lr0"]
    for epoch in range(1, config["run"].epochs + 1):
        value = lr0 * epoch
        _report(epoch, value, map50=value, map50_95=value, map75=value, precision=value,
                recall=value, f1=value)


def fake_late_learner(config):
    """A training from scratch on small data: for 6 epochs mAP is ~0, with noise that ranks the
    trials the wrong way round; then the larger lr0 is better."""
    lr0 = config["params"]["lr0"]
    for epoch in range(1, config["run"].epochs + 1):
        value = 0.0005 * (0.1 - lr0) if epoch <= 6 else lr0
        _report(epoch, value, val_loss=5.0 - lr0 * epoch)


def fake_slow_trainer(config):
    """A training of 0.4 s an epoch."""
    import time

    for epoch in range(1, config["run"].epochs + 1):
        time.sleep(0.4)
        _report(epoch, 0.1 * epoch)


def fake_trainer_killed_by_the_os(config):
    """Trials #0 and #1 (#0's retry) have their process killed (e.g. by the OOM killer) in
    their second epoch."""
    import os
    import signal

    for epoch in range(1, config["run"].epochs + 1):
        if config["number"] in (0, 1) and epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        _report(epoch, 0.1 * epoch)


def fake_record(path, *, configs: int = 40, epochs: int = 20, seed: int = 0):
    """A record (automl.execution.replay) of made-up learning curves, in the shape of the small regime's
    (lr_momentum for AdamW, 20 epochs): fitness 0 until epoch 8, then rising towards a
    closed-form value of lr0 and momentum, plus a per-seed offset (training noise)."""
    import numpy as np

    from automl.execution.record import FIELDS, Record

    rng = np.random.default_rng(seed)
    params = np.column_stack([10 ** rng.uniform(-4, -1, configs), rng.uniform(0.01, 1, configs),
                              rng.uniform(0.6, 0.98, configs)])
    params[0] = (0.001667, 0.01, 0.9)  # the plain training
    params[1] = (0.01, 0.01, 0.937)  # ultralytics' default values
    curves = np.full((configs, 2, epochs, len(FIELDS)), np.nan, np.float32)
    for i, (lr0, _lrf, momentum) in enumerate(params):
        for s in range(2):
            top = max(0.0, 0.5 - 0.15 * abs(math.log10(lr0) + 1.7) - abs(momentum - 0.85)
                      + 0.05 * (s - 0.5) * math.sin(7 * i))
            for e in range(epochs):
                value = 0.0 if e < 7 else top * (e - 6) / (epochs - 6)
                row = dict.fromkeys(FIELDS, value)
                row.update(val_loss=5.0 - value, train_seconds=1.5 * (e + 1))
                curves[i, s, e] = [row[f] for f in FIELDS]
    meta = {"regime": "fake", "flags": {"epochs": epochs, "imgsz": 96, "batch": 16,
                                        "data": "data.yaml"},
            "dataset": {"yaml": "data.yaml", "names": ["a", "b"], "n_train": 120, "n_val": 30}}
    bounds = {"lr0": (1e-4, 1e-1, True), "lrf": (0.01, 1.0, False), "momentum": (0.6, 0.98, False)}
    return Record(keys=("lr0", "lrf", "momentum"), params=params, seeds=(0, 1), curves=curves,
                  bounds=bounds, meta=meta).save(path)


def fake_measured_trainer(config):
    """`fake_trainer` whose final epoch also reports a measured footprint, as a real trial with
    caps or objectives does: latency 100 * lr0 ms, size 5 MB."""
    lr0 = config["params"]["lr0"]
    epochs = config["run"].epochs
    for epoch in range(1, epochs + 1):
        value = lr0 * epoch
        extra = {"latency_ms": 100 * lr0, "size_mb": 5.0} if epoch == epochs else {}
        _report(epoch, value, map50=value, map50_95=value, **extra)


def fake_patient_trainer(config):
    """A training that ultralytics' early stopping (patience) ends after epoch 4 when lr0 < 0.05:
    its last report says so, as train_once's does."""
    lr0 = config["params"]["lr0"]
    last = 4 if lr0 < 0.05 else config["run"].epochs
    for epoch in range(1, last + 1):
        _report(epoch, lr0 * min(epoch, 2),
                stopped_by="patience" if epoch == last < config["run"].epochs else "")


def fake_out_of_memory(at: str, above: int, epoch: int = 1):
    """A fake memory limit on a real ultralytics training: an on_pretrain_routine_start callback
    that makes the trainer raise torch.OutOfMemoryError, as torch does when an allocation does
    not fit, while its batch is above `above`.

    at: "build" (right after the trainer builds its model), "first_batch" (the forward pass of
        epoch `epoch`'s first batch, inside ultralytics' own out-of-memory handling) or
        "mid_epoch" (the start of epoch `epoch`'s second batch, outside it).
    """
    import torch

    def raise_oom() -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (a fake)")

    def install(trainer) -> None:
        if at == "build":
            build = trainer.setup_model

            def setup_model():
                ckpt = build()
                if trainer.batch_size > above:
                    raise_oom()
                return ckpt

            trainer.setup_model = setup_model
        elif at == "first_batch":
            preprocess = trainer.preprocess_batch

            def preprocess_batch(batch):
                if int(trainer.epoch) + 1 == epoch and trainer.batch_size > above:
                    raise_oom()
                return preprocess(batch)

            trainer.preprocess_batch = preprocess_batch
        elif at == "mid_epoch":
            batches = {"n": 0}

            def on_train_epoch_start(trainer) -> None:
                batches["n"] = 0

            def on_train_batch_start(trainer) -> None:
                batches["n"] += 1
                if (int(trainer.epoch) + 1 == epoch and batches["n"] == 2
                        and trainer.batch_size > above):
                    raise_oom()

            trainer.add_callback("on_train_epoch_start", on_train_epoch_start)
            trainer.add_callback("on_train_batch_start", on_train_batch_start)
        else:
            raise ValueError(f"fake_out_of_memory: unknown point {at!r}")

    return install


@contextmanager
def fake_memory_limit(*args, **kwargs):
    """Inside the block, every ultralytics training in this process gets `fake_out_of_memory`."""
    from ultralytics.utils.callbacks.base import default_callbacks

    hook = fake_out_of_memory(*args, **kwargs)
    default_callbacks["on_pretrain_routine_start"].append(hook)
    try:
        yield
    finally:
        default_callbacks["on_pretrain_routine_start"].remove(hook)


def fake_out_of_memory_trials(limits):
    """automl's real Ray trial (`run_trial`), with a fake memory limit on the trials numbered in
    `limits` ({number: fake_out_of_memory's arguments})."""

    def trial(config):
        from automl.execution.ray_runner import run_trial

        limit = limits.get(config["number"])
        if limit is None:
            return run_trial(config)
        with fake_memory_limit(*limit):
            return run_trial(config)

    return trial


class FakeCuda:
    """A fake `torch.cuda`: the four peak-memory functions automl reads, with set values."""

    def __init__(self, allocated_mb: float, reserved_mb: float, total_mb: float) -> None:
        self.resets = 0
        self._allocated, self._reserved = allocated_mb * 2**20, reserved_mb * 2**20
        self._total = total_mb * 2**20

    def reset_peak_memory_stats(self, device) -> None:
        self.resets += 1

    def max_memory_allocated(self, device) -> float:
        return self._allocated

    def max_memory_reserved(self, device) -> float:
        return self._reserved

    def get_device_properties(self, device):
        from types import SimpleNamespace

        return SimpleNamespace(total_memory=self._total)
