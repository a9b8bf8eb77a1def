"""Which trials count and which is best: finished trials, noise-aware ranking with repeats, the
Pareto front, and the repeats a search queues."""

from __future__ import annotations

import math
from typing import Any

from automl.objectives import feasible
from automl.study.attrs import (
    BASELINE_ATTR,
    INTERRUPTED_ATTR,
    OUTSIDE_ATTR,
    REPEAT_OF_ATTR,
    SEED_ATTR,
)


def finished_trials(study) -> list:
    """Trials that count toward --trials: COMPLETE, PRUNED, and FAIL not caused by an interruption."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [
        t for t in study.get_trials(deepcopy=False, states=done)
        if not t.user_attrs.get(INTERRUPTED_ATTR)
    ]


def fitness_of(trial) -> float | None:
    """A trial's fitness: its value, or its first value in a multi-objective study."""
    values = trial.values
    return float(values[0]) if values else None


def multi_objective(study) -> bool:
    return len(study.directions) > 1


def _complete(study) -> list:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if fitness_of(t) is not None and math.isfinite(fitness_of(t))]


def _rankable(study) -> list:
    """COMPLETE trials that met the study's caps (automl.objectives), repeats left out."""
    return [t for t in _complete(study) if REPEAT_OF_ATTR not in t.user_attrs and feasible(t)]


def pareto_trials(study) -> list:
    """The Pareto front of a multi-objective study's feasible COMPLETE trials (Optuna's
    `best_trials`, which leaves out trials over a cap), by number, repeats left out; for a
    single-objective study, its best trial."""
    if not multi_objective(study):
        best = best_trial(study)
        return [best] if best else []
    front = [t for t in study.best_trials if REPEAT_OF_ATTR not in t.user_attrs]
    return sorted(front, key=lambda t: t.number)


def repeat_means(study) -> dict[int, tuple[float, int]]:
    """Trials trained again with other seeds (`--repeats`): original number -> (mean, trainings).

    The mean is over the original's fitness and its COMPLETE repeats'.
    """
    complete = [t for t in _complete(study) if feasible(t)]
    groups: dict[int, list[float]] = {}
    for t in complete:
        original = t.user_attrs.get(REPEAT_OF_ATTR)
        if original is not None:
            groups.setdefault(int(original), []).append(fitness_of(t))
    originals = {t.number: fitness_of(t) for t in complete}
    return {n: ((originals[n] + sum(v)) / (len(v) + 1), len(v) + 1)
            for n, v in groups.items() if n in originals}


def best_trial(study):
    """The best COMPLETE trial, or None. Trials over a cap of the study (--max-size-mb,
    --max-latency-ms) never are; in a multi-objective study it is the front's fittest.

    Where trials were trained again with other seeds (`--repeats`), the one whose trainings have
    the best mean fitness (what the configuration is worth, not its luckiest run); otherwise
    the one with the highest fitness.
    """
    if multi_objective(study):  # on a fitness tie, the one the other does not dominate
        front = pareto_trials(study)
        return max(front, key=lambda t: (fitness_of(t), -t.number)) if front else None
    ranked = ranked_trials(study)
    return ranked[0][0] if ranked else None


def ranked_trials(study) -> list[tuple[Any, float]]:
    """Every COMPLETE trial (repeats folded into their original) with what it is worth, best
    first, as best_trial judges: trials trained again (`--repeats`) first, by the mean of their
    trainings, then the others by their fitness; ties go to the earlier trial."""
    means = repeat_means(study)
    scored = [(t, means[t.number][0] if t.number in means else fitness_of(t))
              for t in _rankable(study)]
    return sorted(scored, key=lambda pair: (pair[0].number not in means, -pair[1],
                                            pair[0].number))


def top_trials(study, n: int = 5) -> list:
    """The `n` best COMPLETE trials by fitness (repeats of a trial left out: see repeat_means;
    trials over a cap left out)."""
    return sorted(_rankable(study), key=lambda t: (-fitness_of(t), t.number))[:n]


def repeat_slots(repeats: int, baseline: bool) -> int:
    """Trials at the end of the budget that `--repeats K` takes: the K best searched trials and,
    when the study has one, the plain training, so that the pick's mean is compared with the
    plain training's mean (like with like)."""
    return repeats + 1 if repeats and baseline else repeats


def queue_repeats(study, count: int, seed: int = 1) -> list[int]:
    """Queue the `count` best searched trials, and the plain training (trial #0) when the study
    has one, to train once more with training seed `seed` (`--repeats`).

    A repeat is its own trial with the original's params, user attrs `automl:repeat_of` (the
    original's number) and `automl:seed`; a baseline's repeat is a baseline too. Trials already
    repeated (or queued) are not queued again. The caller holds the trial-slot lock.

    Returns:
        The numbers of the trials queued to be repeated.
    """
    from optuna.trial import TrialState

    repeated = {t.user_attrs.get(REPEAT_OF_ATTR) for t in study.get_trials(deepcopy=False)
                if t.state != TrialState.FAIL or not t.user_attrs.get(INTERRUPTED_ATTR)}
    ranked = _rankable(study)
    searched = sorted((t for t in ranked if not t.user_attrs.get(BASELINE_ATTR)),
                      key=lambda t: (-fitness_of(t), t.number))[:count]
    plain = [t for t in ranked if t.user_attrs.get(BASELINE_ATTR)][:1]
    queued = []
    for t in [*searched, *plain]:
        if t.number in repeated:
            continue
        kept = {k: v for k, v in t.user_attrs.items() if k in (BASELINE_ATTR, OUTSIDE_ATTR)}
        study.enqueue_trial(dict(t.params), user_attrs={**kept, REPEAT_OF_ATTR: t.number,
                                                        SEED_ATTR: seed})
        queued.append(t.number)
    return queued
