"""YOLOv5 `--evolve` as an Optuna sampler, restricted to the keys of a search space.

Parents come from the study's COMPLETE trials (never FAIL or PRUNED ones), so the GA resumes and
runs in parallel with no state of its own beyond the study.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from automl.defaults import GA_PARENT
from automl.defaults import GA_PARENT_MODES as PARENT_MODES
from automl.searching.spaces import Param, SearchSpace


class GASampler(BaseSampler):
    """Mutation-only genetic search with YOLOv5 evolve semantics.

    - With no trial yet, the first is `defaults` (automl passes the plain training's values for
      the space's keys, and queues that training itself as trial #0).
    - Later trials take a parent from the `top_k` COMPLETE trials (never a baseline trained
      outside the space, see automl.searching.samplers.queue_first_trials, nor a trial over a cap): one
      drawn with probability proportional to its fitness above the worst of them (`single`), or
      their fitness-weighted mean (`weighted`). Until a trial completes, the parent is `defaults`.
    - Each key mutates with probability `mutation_prob`, by the factor
      `gain * randn * rand * sigma + 1` clipped to [0.3, 3.0] (one `rand` per generation, as in
      YOLOv5), then is clipped to the key's bounds and step. The child always differs from
      its parent (redrawn until it does, also when a key at its bound mutated outwards).
      Categorical keys switch to another choice with probability `mutation_prob * min(gain, 1)`.
    - Keys outside the space are never sampled here, so they never change.

    Zero fix: a multiplicative mutation can never move a value that is exactly 0 (YOLOv5's flaw:
    `mixup: 0.0` stays 0 forever). For a key whose range reaches 0 (low <= 0), when it is chosen
    for mutation and its value is within `zero_floor * (high - low)` of 0, it is first lifted to
    that floor (keeping its sign), and the factor applies to the lifted value. So a zero moves to
    `floor * factor`, a small relative step that later generations can grow or shrink. Keys whose
    range excludes 0 (all log-scale keys among them) mutate purely multiplicatively.

    Args:
        space: the search space (distributions and GA gains come from it).
        defaults: values for the first trial; missing keys fall back to each range's midpoint.
        parent: `single` or `weighted`.
        top_k: how many of the best COMPLETE trials may be parents.
        mutation_prob: probability that a key mutates.
        sigma: mutation scale.
        zero_floor: fraction of a key's range a zero is lifted to before mutating.
        seed: with a seed, trial n always draws from the same random stream, so the same
            study history gives the same next trial (also after a resume).
    """

    def __init__(
        self,
        *,
        space: SearchSpace,
        defaults: Mapping[str, Any] | None = None,
        parent: str = GA_PARENT,
        top_k: int = 5,
        mutation_prob: float = 0.8,
        sigma: float = 0.2,
        zero_floor: float = 0.01,
        seed: int | None = None,
    ) -> None:
        if parent not in PARENT_MODES:
            raise ValueError(f"parent must be one of {PARENT_MODES} ({parent=})")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1 ({top_k=})")
        if not 0.0 <= mutation_prob <= 1.0:
            raise ValueError(f"mutation_prob must be in [0, 1] ({mutation_prob=})")
        if sigma <= 0 or zero_floor <= 0:
            raise ValueError(f"sigma and zero_floor must be > 0 ({sigma=}, {zero_floor=})")
        self._space = space
        self._params: tuple[Param, ...] = space.params
        self._distributions = space.distributions()
        defaults = dict(defaults or {})
        self._defaults = {
            p.name: p.clip(defaults[p.name]) if p.name in defaults else _midpoint(p)
            for p in self._params
        }
        self._parent = parent
        self._top_k = top_k
        self._mutation_prob = mutation_prob
        self._sigma = sigma
        self._zero_floor = zero_floor
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._fallback = RandomSampler(seed=seed)

    @property
    def defaults(self) -> dict[str, Any]:
        return dict(self._defaults)

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._fallback.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        rng = self._trial_rng(trial)
        parents = self._parent_pool(study)
        if not parents:
            others = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
            if not others:
                return dict(self._defaults)  # the very first trial: the current defaults
            return self.mutate(self._defaults, rng)
        return self.mutate(self.select_parent(parents, study.direction, rng), rng)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def _trial_rng(self, trial: FrozenTrial) -> np.random.Generator:
        if self._seed is None:
            return self._rng
        return np.random.default_rng([self._seed, trial.number])

    def _parent_pool(self, study: Study) -> list[FrozenTrial]:
        from automl.objectives import feasible
        from automl.study import OUTSIDE_ATTR

        complete = [  # never a trial over the study's caps (--max-size-mb, --max-latency-ms)
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value) and OUTSIDE_ATTR not in t.user_attrs
            and feasible(t)
        ]
        reverse = study.direction == StudyDirection.MAXIMIZE
        complete.sort(key=lambda t: (t.value, -t.number), reverse=reverse)
        return complete[: self._top_k]

    def select_parent(
        self,
        parents: Sequence[FrozenTrial],
        direction: StudyDirection,
        rng: np.random.Generator,
    ) -> dict[str, Any]:
        """A parent from the best trials, weighted by how far each is above the worst of them."""
        values = np.array([t.value for t in parents], dtype=float)
        if direction == StudyDirection.MINIMIZE:
            values = -values
        weights = values - values.min() + 1e-6
        rows = [{p.name: t.params.get(p.name, self._defaults[p.name]) for p in self._params}
                for t in parents]
        chosen = rows[int(rng.choice(len(rows), p=weights / weights.sum()))]
        if self._parent == "single":
            return chosen
        mixed = {}
        for p in self._params:
            if p.kind == "categorical":
                mixed[p.name] = chosen[p.name]  # a mean of choices means nothing: keep the draw's
            else:
                column = np.array([float(r[p.name]) for r in rows])
                mixed[p.name] = float((column * weights).sum() / weights.sum())
        return mixed

    def mutate(self, values: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """One YOLOv5 mutation of `values` (see the class docstring), clipped to the space."""
        params = self._params
        n = len(params)
        gains = np.array([p.gain for p in params])
        numeric = np.array([p.kind != "categorical" for p in params])
        if not np.any(gains > 0):
            return {p.name: p.clip(values[p.name]) for p in params}
        unchanged = child = self._apply(values, np.ones(n), np.zeros(n, dtype=bool), rng)
        # mutate until the child differs from the parent once clipped to the space: a key at its
        # bound (lrf at 0.01) mutating only outwards would otherwise repeat the parent's trial
        for _ in range(1000):
            mask = rng.random(n) < self._mutation_prob
            factors = (gains * mask * rng.standard_normal(n) * rng.random() * self._sigma + 1)
            factors = np.where(numeric, factors.clip(0.3, 3.0), 1.0)
            switch = ~numeric & (rng.random(n) < self._mutation_prob * np.minimum(gains, 1.0))
            child = self._apply(values, factors, switch, rng)
            if child != unchanged:
                break
        return child

    def _apply(self, values: Mapping[str, Any], factors: np.ndarray, switch: np.ndarray,
               rng: np.random.Generator) -> dict[str, Any]:
        child = {}
        for i, p in enumerate(self._params):
            value = values[p.name]
            if p.kind == "categorical":
                others = [c for c in p.choices if c != value]
                if switch[i] and others:
                    value = others[int(rng.integers(len(others)))]
            elif factors[i] != 1.0:
                value = float(value)
                floor = self._zero_floor * (p.high - p.low)
                if p.low <= 0 and abs(value) < floor:
                    value = math.copysign(floor, value) if value else floor
                value *= factors[i]
            clipped = p.clip(value)
            child[p.name] = float(f"{clipped:.6g}") if p.kind == "float" else clipped
        return child


def _midpoint(p: Param) -> Any:
    if p.kind == "categorical":
        return p.choices[0]
    if p.log:
        return p.clip(math.sqrt(p.low * p.high))
    return p.clip((p.low + p.high) / 2)

