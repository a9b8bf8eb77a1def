"""Fake trainers, named as such: they stand in for YOLO trainings where a test is about the
searchers' or the runner's logic, not about what a real training does.

- `fake_score`: a closed-form objective of the hyperparameters (searcher tests).
- `fake_*` Ray trainables: report `EpochReport`s through Ray Tune as a real trial does, with a
  per-epoch fitness that is a closed-form function of lr0 (runner and pruner tests). Ray ships
  them to its workers by value (the `ray_fakes` fixture in conftest.py).
"""

from __future__ import annotations

import math

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
    """Trial #0's process is killed (e.g. by the OOM killer) in its second epoch."""
    import os
    import signal

    for epoch in range(1, config["run"].epochs + 1):
        if config["number"] == 0 and epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        _report(epoch, 0.1 * epoch)
