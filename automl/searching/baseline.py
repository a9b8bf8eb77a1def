"""The user's plain training: what `yolo train` would do with the same data and flags.

A search's first trial is that training (the baseline), so a search never ends below what the
user would have run anyway. The subtle part is ultralytics' `optimizer=auto`, its default: it
picks the optimizer, lr0 and momentum from the dataset size, the epochs, the batch and the
class count, and sets `warmup_bias_lr` to 0. Here ultralytics' own `build_optimizer` makes that
choice, so automl follows whatever rule the installed ultralytics has.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

AUTO = "auto"
# What a searched trial takes from auto's choice besides the optimizer (see trial_fixed).
SEARCHED_FROM_AUTO = ("lr0", "momentum")


@dataclass(frozen=True)
class AutoOptimizer:
    """ultralytics' `optimizer=auto` choice for one training."""

    optimizer: str
    lr0: float
    momentum: float
    warmup_bias_lr: float
    iterations: int  # optimizer steps ultralytics counted to decide (> 10,000: SGD-like)

    def as_args(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "lr0": self.lr0, "momentum": self.momentum,
                "warmup_bias_lr": self.warmup_bias_lr}


def optimizer_steps(n_images: int, epochs: int, batch: int, nbs: int) -> int:
    """The iteration count ultralytics' `auto` decides on (one per nominal batch of `nbs` images)."""
    return math.ceil(n_images / max(batch, nbs)) * epochs


def resolve_auto(*, n_images: int, epochs: int, batch: int, nbs: int, nc: int) -> AutoOptimizer:
    """What ultralytics' `optimizer=auto` picks for a training of `n_images` images.

    Runs ultralytics' own `BaseTrainer.build_optimizer` on a stand-in trainer and a two-layer
    model, and reads the optimizer it built.
    """
    import logging

    import torch
    from ultralytics.engine.trainer import BaseTrainer

    iterations = optimizer_steps(n_images, epochs, batch, nbs)
    model = torch.nn.Module()
    # the shape build_optimizer walks: model.model[-1] is the detection head
    model.model = torch.nn.ModuleList([torch.nn.Conv2d(1, 1, 1), torch.nn.Conv2d(1, 1, 1)])
    stand_in = SimpleNamespace(data={"nc": nc}, args=SimpleNamespace(
        optimizer=AUTO, lr0=0.01, momentum=0.937, warmup_bias_lr=0.1))
    log = logging.getLogger("ultralytics")
    level, log.level = log.level, logging.WARNING  # its "optimizer: ..." lines are for trainings
    try:
        optimizer = BaseTrainer.build_optimizer(stand_in, model, name=AUTO, lr=0.01,
                                                momentum=0.937, decay=0.0, iterations=iterations)
    finally:
        log.level = level
    group = optimizer.param_groups[0]  # every group has the same momentum (beta1 for Adam*)
    momentum = group["betas"][0] if "betas" in group else group.get("momentum", 0.0)
    return AutoOptimizer(optimizer=str(stand_in.args.optimizer), lr0=float(stand_in.args.lr0),
                         momentum=float(momentum),
                         warmup_bias_lr=float(stand_in.args.warmup_bias_lr),
                         iterations=iterations)


def optimizer_named(fixed: Mapping[str, Any], keys: tuple[str, ...]) -> bool:
    """Whether a space chooses the optimizer itself (fixed to a name other than auto, or searched)."""
    return "optimizer" in keys or fixed.get("optimizer", AUTO) != AUTO


def trial_fixed(fixed: Mapping[str, Any], keys: tuple[str, ...],
                auto: AutoOptimizer) -> dict[str, Any]:
    """A space's fixed args with `optimizer: auto` (or no optimizer at all) made explicit.

    ultralytics' `auto` ignores lr0 and momentum, so a space that searches them under `auto`
    would search nothing. Instead automl trains the optimizer `auto` would pick, with auto's lr0
    and momentum where the space does not search them: the optimizer that actually trains is
    the one tuned. Not auto's `warmup_bias_lr` 0: a trial keeps ultralytics' default (0.1, what
    every named optimizer gets) unless the space sets it: on the small regime 0.1 trained
    better than 0 in most paired AdamW configurations (benchmarks/README.md,
    `compare_records.py`). The plain training (trial #0) keeps every value auto chose: it is
    what `yolo train` does.
    """
    out = dict(fixed)
    if optimizer_named(fixed, keys):
        return out
    for key, value in auto.as_args().items():
        if key == "optimizer" or (key in SEARCHED_FROM_AUTO and key not in keys
                                  and key not in fixed):
            out[key] = value
    return out
