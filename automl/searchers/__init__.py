"""Searchers: every one is an Optuna sampler, chosen by name."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from automl.errors import ConfigError, SearchSpaceError
from automl.searchers.ga import PARENT_MODES, GASampler
from automl.spaces import Param, SearchSpace

__all__ = ["SEARCHERS", "GASampler", "PARENT_MODES", "grid_values", "make_sampler",
           "queue_first_trials"]

SEARCHERS = ("ga", "tpe", "gp", "cmaes", "random", "grid", "nsga2")
# Searchers whose study gets ultralytics' defaults as a trial from outside (the GA mutates its
# best trials; a grid visits only its own points).
_SEEDED_FROM_OUTSIDE = ("tpe", "gp", "cmaes", "random", "nsga2")
# A grid with more points than this is almost surely a mistake (an int range without a step).
_MAX_GRID_POINTS = 100_000


def _startup_trials(n_trials: int | None) -> int:
    """Random trials before a model-based searcher kicks in: Optuna's 10, fewer on small budgets."""
    if not n_trials:
        return 10
    return max(2, min(10, n_trials // 3))


def queue_first_trials(study, name: str, space: SearchSpace, baseline: Mapping[str, Any],
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
    if budget >= 2 and name in _SEEDED_FROM_OUTSIDE and second and second != first:
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
            self._n_complete = len(study.get_trials(deepcopy=False,
                                                    states=(TrialState.COMPLETE,)))
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


def make_sampler(
    name: str,
    space: SearchSpace,
    *,
    seed: int | None = None,
    n_trials: int | None = None,
    defaults: Mapping[str, Any] | None = None,
    ga_parent: str = "single",
):
    """Build the Optuna sampler for searcher `name` over `space`.

    Args:
        name: one of SEARCHERS.
        space: the validated search space.
        seed: makes the searcher's draws reproducible.
        n_trials: the study's trial budget (sizes the random start of model-based searchers).
        defaults: the GA's first trial (ultralytics defaults for the space's keys).
        ga_parent: GA parent selection, `single` or `weighted`.

    Raises:
        ConfigError: unknown searcher name.
        SearchSpaceError: a space the searcher cannot use (grid over a continuous key).
    """
    import optuna

    startup = _startup_trials(n_trials)
    if name == "ga":
        if ga_parent not in PARENT_MODES:
            raise ConfigError(f"--ga-parent {ga_parent}: choose one of {', '.join(PARENT_MODES)}")
        return GASampler(space=space, defaults=defaults, parent=ga_parent, seed=seed)
    if name == "tpe":
        # constant_liar keeps parallel trials from all proposing the same point
        return _tpe_sampler_class()(
            seed=seed, n_startup_trials=startup, multivariate=True, constant_liar=True
        )
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(
            seed=seed, n_startup_trials=startup, warn_independent_sampling=False
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "grid":
        grid = {p.name: grid_values(p, space.source) for p in space.params}
        size = math.prod(len(v) for v in grid.values())
        if size > _MAX_GRID_POINTS:
            raise SearchSpaceError(
                f"{space.source}: the grid has {size} points (> {_MAX_GRID_POINTS}); "
                "use larger steps or fewer keys"
            )
        return _grid_sampler_class()(grid, seed=seed)
    raise ConfigError(f"--searcher {name}: unknown searcher; choose one of {', '.join(SEARCHERS)}")
