"""What a search optimises besides fitness: caps on size and latency, and extra objectives.

- `--max-size-mb X` / `--max-latency-ms X`: a trial whose own trained weights exceed a cap is
  *infeasible*: recorded as such (user attrs `size_mb`, `latency_ms`; Optuna's own trial
  constraints `size_mb`/`latency_ms` = measured minus cap, feasible when every one is <= 0),
  never the study's best, never a GA parent; Optuna's TPE, GP and NSGA-II read the constraints
  and learn to avoid such trials, its Pareto front (`study.best_trials`) and plots leave them
  out.
- `--objectives fitness,latency` (or `fitness,size`, or all three): a multi-objective study
  (fitness maximised, latency/size minimised) whose Pareto front the summary prints, the report
  draws and optuna-dashboard shows natively. Pruning judges fitness alone, so such a study runs
  every trial to its end; `--repeats` ranks by fitness alone and is refused too.

`Goals` is the study's record of both (StudyConfig.goals); the trainer measures a trial's
footprint (automl.execution.footprint) only when a goal needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from automl.epochs import FITNESS
from automl.errors import ConfigError

# objective name -> (the trial's user attr holding its value, Optuna direction, unit)
MEASURES = {"latency": ("latency_ms", "minimize", "ms"), "size": ("size_mb", "minimize", "MB")}
OBJECTIVE_NAMES = (FITNESS, *MEASURES)


@dataclass(frozen=True)
class Goals:
    """The study's objectives (fitness first) and caps (None: no cap)."""

    objectives: tuple[str, ...] = (FITNESS,)
    max_size_mb: float | None = None
    max_latency_ms: float | None = None

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[str]:
        return ["maximize" if o == FITNESS else MEASURES[o][1] for o in self.objectives]

    @property
    def caps(self) -> dict[str, float]:
        """user attr -> cap, for the caps that are set."""
        caps = {"size_mb": self.max_size_mb, "latency_ms": self.max_latency_ms}
        return {k: v for k, v in caps.items() if v is not None}

    @property
    def measures(self) -> tuple[str, ...]:
        """The user attrs (size_mb, latency_ms) a trial must measure for these goals."""
        wanted = set(self.caps) | {MEASURES[o][0] for o in self.objectives if o != FITNESS}
        return tuple(sorted(wanted))

    def violations(self, measured: Mapping[str, float]) -> dict[str, float]:
        """The trial's constraints for Optuna (`trial.set_constraint`): measured minus cap, per
        cap (<= 0: within the cap)."""
        return {k: float(measured[k]) - cap for k, cap in sorted(self.caps.items())}

    def values(self, fitness: float, measured: Mapping[str, float]) -> list[float]:
        """The study's objective values of a trial, in `objectives` order."""
        return [fitness if o == FITNESS else float(measured[MEASURES[o][0]])
                for o in self.objectives]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"objectives": list(self.objectives)}
        out.update({k: v for k, v in (("max_size_mb", self.max_size_mb),
                                      ("max_latency_ms", self.max_latency_ms)) if v is not None})
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> Goals:
        raw = raw or {}
        return cls(objectives=tuple(raw.get("objectives") or (FITNESS,)),
                   max_size_mb=raw.get("max_size_mb"), max_latency_ms=raw.get("max_latency_ms"))

    def describe(self) -> str:
        pairs = zip(self.objectives, self.directions, strict=True)
        parts = ["objectives " + ", ".join(f"{o} ({d})" for o, d in pairs)] if self.multi else []
        if self.max_size_mb is not None:
            parts.append(f"weights <= {self.max_size_mb:g} MB")
        if self.max_latency_ms is not None:
            parts.append(f"CPU latency <= {self.max_latency_ms:g} ms")
        return "; ".join(parts)


def parse_objectives(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """`--objectives fitness,latency` -> ("fitness", "latency").

    Raises:
        ConfigError: an unknown or repeated name, or a list that does not start with fitness.
    """
    if text is None:
        return (FITNESS,)
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in OBJECTIVE_NAMES]
    if unknown or not names:
        raise ConfigError(f"--objectives {text}: unknown objective {', '.join(unknown) or '(none)'}"
                          f"; list some of {', '.join(OBJECTIVE_NAMES)}, e.g. fitness,latency")
    if names[0] != FITNESS or len(set(names)) != len(names):
        raise ConfigError(f"--objectives {text}: start with fitness and name each objective "
                          "once, e.g. fitness,latency or fitness,size")
    return tuple(names)


def feasible(trial) -> bool:
    """Whether a trial met every cap of its study (trials of uncapped studies always do)."""
    return all(v <= 0 for v in trial.constraints.values())
