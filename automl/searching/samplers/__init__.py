"""Searchers: every one is an Optuna sampler, looked up by name in one registry.

Adding a searcher is one `SearcherEntry` in `SEARCHERS` (plus its tests): the CLI's choices
and help, the error for an unknown name and the study's first trials all read the registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from automl import defaults as D
from automl.defaults import GA_PARENT_MODES as PARENT_MODES
from automl.errors import ConfigError, SearchSpaceError
from automl.registry import lookup
from automl.searching.spaces import Param, SearchSpace

__all__ = ["SEARCHERS", "GASampler", "PARENT_MODES", "SearcherEntry", "grid_values",
           "make_sampler", "queue_first_trials", "searcher_entry"]

# A grid with more points than this is almost surely a mistake (an int range without a step).
_MAX_GRID_POINTS = 100_000


@dataclass(frozen=True)
class SamplerArgs:
    """What every searcher's factory may use."""

    space: SearchSpace
    seed: int | None = None
    n_trials: int | None = None  # the study's budget: sizes a model-based searcher's random start
    baseline: Mapping[str, Any] | None = None  # the GA's start (the plain training's values)
    ga_parent: str = D.GA_PARENT


@dataclass(frozen=True)
class SearcherEntry:
    """One searcher: how to build its Optuna sampler and what the CLI says about it.

    Attributes:
        name: the `--searcher` value.
        help: one line for the CLI's help and README.
        build: SamplerArgs -> an Optuna sampler.
        queue_defaults: whether a new study queues ultralytics' default values as trial #1 for
            it (searchers with no start of their own; the GA mutates its best trials, a grid
            visits its own points).
        max_trials: the most trials it can propose for a space (None: no limit).
        multi_objective: whether it can drive a multi-objective study (--objectives).
    """

    name: str
    help: str
    build: Callable[[SamplerArgs], Any]
    queue_defaults: bool = True
    max_trials: Callable[[SearchSpace], int] | None = None
    multi_objective: bool = True


def _startup_trials(n_trials: int | None) -> int:
    """Random trials before a model-based searcher kicks in: Optuna's 10, fewer on small budgets."""
    if not n_trials:
        return 10
    return max(2, min(10, n_trials // 3))


def queue_first_trials(study, name: str | SearcherEntry, space: SearchSpace, baseline: Mapping[str, Any],
                       defaults: Mapping[str, Any], *, outside: str | None = None,
                       budget: int = 2) -> list[dict[str, Any]]:
    """Queue a new study's first trials: the plain training (baseline), then ultralytics' defaults.

    Trial #0 is the user's plain `yolo train` (`baseline`: its values of the space's keys), so a
    search never ends below the training the user would have run anyway. For the searchers that
    do not start from a configuration of their own (tpe, gp, cmaes, random, nsga2), trial #1 is
    ultralytics' default.yaml values for the space's keys (`defaults`, what `model.tune()` starts
    from), when they differ from the baseline: one more sensible point among a model-based
    searcher's random start (on short trainings many random draws learn nothing). The GA then
    mutates from its best trials; a grid visits its own points after the baseline.

    Values are clipped into the space (Optuna refuses others); when the baseline is not a point
    of the space (`outside` says why), its trial is marked so that no GA takes it as a parent.
    Nothing beyond `budget` trials is queued; a study that already has trials is left alone.
    The caller holds the trial-slot lock, so processes sharing a new study queue these once.

    Returns:
        The params queued, in order (empty when the study already had trials).
    """
    from automl.study import BASELINE_ATTR, OUTSIDE_ATTR

    if study.get_trials(deepcopy=False):
        return []
    first = _clipped(space, baseline)
    attrs: dict[str, Any] = {BASELINE_ATTR: True}
    if outside:
        attrs[OUTSIDE_ATTR] = outside
    study.enqueue_trial(first, user_attrs=attrs)
    queued = [first]
    second = _clipped(space, defaults)
    if budget >= 2 and searcher_entry(name).queue_defaults and second and second != first:
        study.enqueue_trial(second)
        queued.append(second)
    return queued


def _clipped(space: SearchSpace, values: Mapping[str, Any]) -> dict[str, Any]:
    return {p.name: p.clip(values[p.name]) for p in space.params if p.name in values}


def grid_values(param: Param, source: str = "") -> list[Any]:
    """The values a grid takes for one key: its choices, or low..high by step.

    Raises:
        SearchSpaceError: for a continuous key without a step.
    """
    if param.kind == "categorical":
        return list(param.choices)
    step = param.step if param.step else (1 if param.kind == "int" and not param.log else None)
    if step is None:
        raise SearchSpaceError(
            f"{source or 'search space'}: {param.name}: the grid searcher needs a finite set of "
            f"values; add 'step:' (e.g. step: {(param.high - param.low) / 4:g}) or use 'choices:'"
        )
    count = int(math.floor((param.high - param.low) / step + 1e-9)) + 1
    values = [param.low + i * step for i in range(count)]
    return [int(v) if param.kind == "int" else float(f"{v:.10g}") for v in values]


def grid_size(space: SearchSpace) -> int:
    return math.prod(len(grid_values(p, space.source)) for p in space.params)


def _tpe_sampler_class():
    import optuna
    from optuna.trial import TrialState

    class TPESampler(optuna.samplers.TPESampler):
        """Optuna's TPE whose good set holds COMPLETE trials only.

        Stock TPE ranks PRUNED trials by their last intermediate value and tops up the good set
        with them while fewer trials than the set's size (10% of the trials, at most 25) are
        COMPLETE, as happens early in an ASHA search. A trial stopped at epoch 3 is no evidence
        of a good configuration, so here the good set is capped at the COMPLETE count (it may
        be empty: TPE then samples from its prior); PRUNED trials still count as bad ones.
        """

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self._n_complete = 0
            # Optuna reads the good-set size from `_gamma` (its `gamma=` argument is deprecated
            # since 4.9 without a replacement); tests/test_searchers.py notices if that changes.
            self._gamma = self._good_set_size

        def _good_set_size(self, n: int) -> int:
            return min(math.ceil(0.1 * n), 25, self._n_complete)  # Optuna's default, capped

        def before_trial(self, study, trial) -> None:
            from automl.objectives import feasible

            # within the study's caps: Optuna files trials over a cap apart, and a count with
            # them would let PRUNED trials fill the places they cannot take
            self._n_complete = sum(1 for t in study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE,)) if feasible(t))
            super().before_trial(study, trial)

    return TPESampler


def _grid_sampler_class():
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's grid, minus its end-of-grid `study.stop()`.

        `study.stop()` only works inside `study.optimize`; automl drives trials by ask/tell and
        caps --trials at the grid size itself, so the stop would only raise.
        """

        def after_trial(self, study, trial, state, values) -> None:
            return None

    return GridSampler


def _ga(a: SamplerArgs):
    from automl.searching.samplers.ga import GASampler

    if a.ga_parent not in PARENT_MODES:
        raise ConfigError(f"--ga-parent {a.ga_parent}: choose one of {', '.join(PARENT_MODES)}")
    return GASampler(space=a.space, defaults=a.baseline, parent=a.ga_parent, seed=a.seed)


def __getattr__(name: str):
    # GASampler stays importable from here without making `import automl.searching.samplers` (the CLI's
    # help reads the registry) pay for importing Optuna
    if name == "GASampler":
        from automl.searching.samplers.ga import GASampler

        return GASampler
    raise AttributeError(f"module 'automl.searching.samplers' has no attribute {name!r}")


def _tpe(a: SamplerArgs):
    # constant_liar keeps parallel trials from all proposing the same point
    return _tpe_sampler_class()(seed=a.seed, n_startup_trials=_startup_trials(a.n_trials),
                                multivariate=True, constant_liar=True)


def _gp(a: SamplerArgs):
    import optuna

    return optuna.samplers.GPSampler(seed=a.seed, n_startup_trials=_startup_trials(a.n_trials))


def _cmaes(a: SamplerArgs):
    import optuna

    return optuna.samplers.CmaEsSampler(seed=a.seed, n_startup_trials=_startup_trials(a.n_trials),
                                        warn_independent_sampling=False)


def _random(a: SamplerArgs):
    import optuna

    return optuna.samplers.RandomSampler(seed=a.seed)


def _nsga2(a: SamplerArgs):
    import optuna

    return optuna.samplers.NSGAIISampler(seed=a.seed)


def _grid(a: SamplerArgs):
    grid = {p.name: grid_values(p, a.space.source) for p in a.space.params}
    size = math.prod(len(v) for v in grid.values())
    if size > _MAX_GRID_POINTS:
        raise SearchSpaceError(
            f"{a.space.source}: the grid has {size} points (> {_MAX_GRID_POINTS}); "
            "use larger steps or fewer keys"
        )
    return _grid_sampler_class()(grid, seed=a.seed)


SEARCHERS: dict[str, SearcherEntry] = {e.name: e for e in (
    SearcherEntry("tpe", "Optuna's TPE, multivariate; PRUNED trials never in its good set", _tpe),
    SearcherEntry("ga", "YOLOv5 evolve: mutation of the best trials, restricted to the space",
                  _ga, queue_defaults=False, multi_objective=False),
    SearcherEntry("gp", "Optuna's Gaussian-process Bayesian optimisation", _gp),
    SearcherEntry("cmaes", "Optuna's CMA-ES", _cmaes, multi_objective=False),
    SearcherEntry("random", "uniform draws from the space (log where the space says log)", _random),
    SearcherEntry("grid", "every combination of the space's steps and choices", _grid,
                  queue_defaults=False, max_trials=lambda space: grid_size(space)),
    SearcherEntry("nsga2", "Optuna's NSGA-II genetic algorithm", _nsga2),
)}


def searcher_entry(name: str | SearcherEntry) -> SearcherEntry:
    """The registry entry of `--searcher name` (an entry, as a resolved plan carries it, is
    itself).

    Raises:
        ConfigError: an unknown name, listing the known ones.
    """
    if isinstance(name, SearcherEntry):
        return name
    return lookup(SEARCHERS, name, flag="searcher", what="searcher")


def make_sampler(
    name: str | SearcherEntry,
    space: SearchSpace,
    *,
    seed: int | None = None,
    n_trials: int | None = None,
    baseline: Mapping[str, Any] | None = None,
    ga_parent: str = D.GA_PARENT,
):
    """Build the Optuna sampler for searcher `name` over `space`.

    Raises:
        ConfigError: unknown searcher name or GA parent mode.
        SearchSpaceError: a space the searcher cannot use (grid over a continuous key).
    """
    return searcher_entry(name).build(SamplerArgs(space=space, seed=seed, n_trials=n_trials,
                                                  baseline=baseline, ga_parent=ga_parent))
