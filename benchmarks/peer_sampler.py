"""The peer's search algorithm as an Optuna sampler, for the replay benchmark only (not shipped).

Re-implemented from the description of ultralytics 8.4's `Tuner` mutation (ultralytics/engine/
tuner.py, `_mutate`), not copied: every key is scaled to [0, 1] over its range (linearly, as the
peer does, even for keys automl samples on a log scale); the first trial is the defaults; then a
parent is drawn from the 9 best trials with probability proportional to its fitness above the
worst of them, about half of the keys are moved by a normal step of 0.2 x gain of the range
(shrinking to 0.16 as the best trial grows stale over 25 trials), clipped to the range; from 30
trials on, with probability 0.4 x confidence, the step is drawn from the covariance of the best
20% of the trials (reflected into the range) instead; a configuration already tried is drawn
again (after 100 tries, the chosen keys are drawn uniformly).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import TrialState


class PeerSampler(BaseSampler):
    """ultralytics 8.4's tuner mutation, over the float keys of an Optuna search space."""

    def __init__(self, *, distributions: Mapping[str, BaseDistribution],
                 defaults: Mapping[str, float], gains: Mapping[str, float] | None = None,
                 seed: int | None = None, parents: int = 9, sigma: float = 0.2) -> None:
        self._distributions = dict(distributions)
        self._defaults = dict(defaults)
        self._gains = dict(gains or {})
        self._rng = np.random.default_rng(seed)
        self._fallback = RandomSampler(seed=seed)
        self._parents = parents
        self._sigma = sigma

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._fallback.reseed_rng()

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        if not search_space:
            return {}
        keys = sorted(search_space)
        low = np.array([search_space[k].low for k in keys])
        high = np.array([search_space[k].high for k in keys])
        span = high - low
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.value is not None and math.isfinite(t.value) and all(k in t.params for k in keys)]
        if not done:
            return {k: float(np.clip(self._defaults[k], low[i], high[i]))
                    for i, k in enumerate(keys) if k in self._defaults}
        values = np.array([t.value for t in done])
        x = np.array([[t.params[k] for k in keys] for t in done])
        units = (x - low) / np.where(span > 0, span, 1)
        order = np.argsort(-values)
        top = order[: self._parents]
        weights = values[top] - values[top].min() + 1e-6
        stale = len(done) - 1 - int(np.argmax(values))
        decay = 1 - 0.2 * min(stale / 25, 1)
        gains = np.array([self._gains.get(k, 1.0) for k in keys])
        scale = np.maximum(self._sigma * decay * gains, 1e-5)
        covariance = None
        confidence = 0.0
        if len(done) >= 30:
            elite = units[order[: min(math.ceil(len(done) * 0.2), 30)]]
            confidence = min(len(elite) / len(keys), 1)
            covariance = (np.cov(elite, rowvar=False) * decay**2 * confidence
                          + np.diag(np.square(scale) / len(keys)))
        tried = {tuple(np.round(row, 12)) for row in x}
        genes = units[top[0]]
        for attempt in range(200):
            parent = units[top[self._rng.choice(len(top), p=weights / weights.sum())]]
            mask = self._rng.random(len(keys)) < 0.5
            if attempt >= 100:
                genes = np.where(mask, self._rng.random(len(keys)), parent)
            elif covariance is not None and self._rng.random() < 0.4 * confidence:
                genes = np.where(mask, self._rng.multivariate_normal(parent, covariance), parent)
                genes = 1 - np.abs(genes % 2 - 1)  # reflect into [0, 1]
            else:
                genes = np.clip(parent + mask * self._rng.standard_normal(len(keys)) * scale, 0, 1)
            candidate = low + genes * span
            if tuple(np.round(candidate, 12)) not in tried:
                break
        return {k: float(candidate[i]) for i, k in enumerate(keys)}

    def sample_independent(self, study, trial, param_name, param_distribution) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)
