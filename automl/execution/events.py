"""What a running search tells its progress display: a trial's epoch, a trial's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrialEvent:
    """What the progress line needs to know about a finished trial."""

    number: int
    state: str  # COMPLETE | FAIL | PRUNED
    value: float | None
    metrics: dict[str, float]
    error: str | None
    seconds: float
    epochs: int = 0
    baseline: bool = False  # the user's plain training (trial #0 of a new study)
    measured: dict[str, float] = field(default_factory=dict)  # size_mb, latency_ms (if measured)
    over_cap: str | None = None  # which cap a COMPLETE trial exceeded (it is infeasible)
    notes: tuple[str, ...] = ()  # memory: a retry at a smaller batch, a peak over its GPU share


@dataclass
class EpochEvent:
    """What the live progress needs to know about a trial's epoch."""

    number: int
    epoch: int
    epochs: int  # the trial's full length
    fitness: float
    train_seconds: float  # since the trial's training started
