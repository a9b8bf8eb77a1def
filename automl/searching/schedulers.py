"""Early stopping: Ray Tune's schedulers, looked up by name, never deciding on noise.

Ray decides when to stop a trial; the study records it as PRUNED. Adding a pruner is one
`PrunerEntry` in `PRUNERS` (plus its tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from automl.epochs import FITNESS
from automl.registry import lookup

# A trial counts as having learned something at a rung once its fitness reaches this (mAP-scale
# metrics lie in [0, 1]; values like 0.0003 in the first epochs are noise).
SCORED = 0.01
REDUCTION_FACTOR = 3
# No rung before this epoch: ultralytics ramps the learning rate up over its first 3 epochs
# (warmup_epochs), and comparing trials during the ramp ranks mostly noise
# (docs/measured.md#provenance-not-recorded).
MIN_GRACE = 3


def _grace(epochs: int, reduction_factor: int) -> int:
    return max(min(MIN_GRACE, epochs), epochs // reduction_factor**2)


def asha_rungs(epochs: int, reduction_factor: int = 3) -> tuple[int, ...]:
    """The epochs at which ASHA compares trials: grace, grace*rf, ... below `epochs`."""
    grace = _grace(epochs, reduction_factor)
    rungs = []
    t = grace
    while t < epochs:
        rungs.append(t)
        t *= reduction_factor
    return tuple(rungs)


def default_pruner(epochs: int) -> str:
    """ASHA when the epochs leave room for at least two rungs, else none."""
    return "asha" if len(asha_rungs(epochs, REDUCTION_FACTOR)) >= 2 else "none"


def informative(values: list[float]) -> bool:
    """Whether fitness values of trials at one epoch can tell the trials apart.

    At least half of them, and two at the least, must have scored (fitness >= SCORED): trained
    from scratch, every trial has mAP 0 for the first epochs (on small data for most of a short
    training), and a decision among zeros is a decision on noise.
    """
    scored = sum(1 for v in values if isinstance(v, float) and math.isfinite(v) and v >= SCORED)
    return scored >= max(2, math.ceil(len(values) / 2))


def _guarded(scheduler_class):
    """A subclass of a Ray Tune scheduler that never stops a trial at an uninformative epoch,
    nor the plain training (trial #0: the reference the search's verdict compares with; at
    concurrency > 1 it meets other trials at the rungs). Its results still count at the rungs."""
    from ray.tune.schedulers import TrialScheduler

    class Guarded(scheduler_class):
        def __init__(self, *args, epochs: int, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._max_epoch = epochs
            self._seen: dict[int, dict[str, float]] = {}  # epoch -> trial id -> fitness
            self.kept: list[tuple[str, int]] = []  # (trial id, epoch) a stop was withheld at

        def on_trial_result(self, tune_controller, trial, result: dict) -> str:
            epoch = result.get("epoch")
            if isinstance(epoch, int):
                self._seen.setdefault(epoch, {})[trial.trial_id] = result.get(FITNESS)
            action = super().on_trial_result(tune_controller, trial, result)
            if action == TrialScheduler.STOP and isinstance(epoch, int) and (
                    trial.config.get("baseline") or (
                        epoch < self._max_epoch
                        and not informative(list(self._seen[epoch].values())))):
                self.kept.append((trial.trial_id, epoch))
                # the median rule remembers whom it stopped (and asserts on them later); the
                # tests of both pruners fail if this private set goes away
                if isinstance(getattr(self, "_stopped_trials", None), set):
                    self._stopped_trials.discard(trial)
                return TrialScheduler.CONTINUE
            return action

    Guarded.__name__ = f"Guarded{scheduler_class.__name__}"
    return Guarded


def _asha(epochs: int):
    from ray.tune.schedulers import ASHAScheduler

    return _guarded(ASHAScheduler)(time_attr="epoch", metric=FITNESS, mode="max", max_t=epochs,
                                   grace_period=_grace(epochs, REDUCTION_FACTOR),
                                   reduction_factor=REDUCTION_FACTOR, epochs=epochs)


def _median(epochs: int):
    from ray.tune.schedulers import MedianStoppingRule

    return _guarded(MedianStoppingRule)(time_attr="epoch", metric=FITNESS, mode="max",
                                        grace_period=_grace(epochs, REDUCTION_FACTOR),
                                        min_samples_required=3, epochs=epochs)


def _none(epochs: int):
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


@dataclass(frozen=True)
class PrunerEntry:
    """One pruner: its Ray Tune scheduler for a trial length, and what the CLI says about it."""

    name: str
    help: str
    build: Callable[[int], Any]  # epochs per trial -> a Ray Tune scheduler


PRUNERS: dict[str, PrunerEntry] = {e.name: e for e in (
    PrunerEntry("asha", "Ray Tune's ASHA over the per-epoch fitness (rungs at grace x 3^k)", _asha),
    PrunerEntry("median", "Ray Tune's median stopping rule from the grace epoch on", _median),
    PrunerEntry("none", "every trial trains to its last epoch", _none),
)}


def pruner_entry(name: str | PrunerEntry) -> PrunerEntry:
    """The registry entry of `--pruner name`.

    Raises:
        ConfigError: an unknown name, listing the known ones.
    """
    if isinstance(name, PrunerEntry):  # as a resolved plan carries it
        return name
    return lookup(PRUNERS, name, flag="pruner", what="pruner")


def make_scheduler(pruner: str | PrunerEntry, epochs: int):
    """The Ray Tune scheduler for `--pruner` (Ray decides when to stop; the study records it).

    Both pruners compare the fitness and act only where it tells trials apart (`informative`).

    Raises:
        ConfigError: an unknown pruner name.
    """
    return pruner_entry(pruner).build(epochs)


def rungs_text(epochs: int) -> str:
    """How ASHA decides for trials of `epochs` epochs, in one clause (the search header)."""
    return (f"rungs at epochs {', '.join(map(str, asha_rungs(epochs)))}; a rung stops trials only "
            f"once half of those there have fitness >= {SCORED:g}")


