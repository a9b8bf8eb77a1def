"""What a search's study says, as text tables: its top trials and its Pareto front."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from automl.console import MEASURED_LABELS, fmt, text_table


def top_rows(study, n: int, metric: Callable[[Any], str] = lambda v: f"{v:.3f}",
             param: Callable[[Any], str] = fmt) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the top `n` COMPLETE trials: trial, fitness, metrics, params.

    The plain training is marked `#N plain`. `metric` and `param` format the cells.
    """
    from automl.study import top_trials

    return trial_rows(study, top_trials(study, n), metric, param)


def trial_rows(study, trials: list, metric: Callable[[Any], str] = lambda v: f"{v:.3f}",
               param: Callable[[Any], str] = fmt) -> tuple[list[str], list[list[str]]]:
    """Header and rows of `trials`: trial, fitness, metrics, measured size/latency, params."""
    from automl.fitness import CLS_LABELS, METRIC_LABELS, TASK_LABELS
    from automl.study import BASELINE_ATTR, fitness_of, repeat_means

    means = repeat_means(study)
    keys = list(dict.fromkeys(k for t in trials for k in t.params))
    measured = [k for k in MEASURED_LABELS if any(k in t.user_attrs for t in trials)]
    labels = {**METRIC_LABELS, **{k: v for k, v in TASK_LABELS.items()
                                  if any(k in t.user_attrs for t in trials)}}
    if any("top1" in t.user_attrs for t in trials):  # a classification study: no boxes
        labels = CLS_LABELS
    # the batch each trained with, once one ran out of memory and trained at a smaller one
    batch = ["batch"] if any("out_of_memory" in t.user_attrs for t in trials) else []
    header = ["trial", "fitness", *(["mean (runs)"] if means else []), *labels.values(),
              *(MEASURED_LABELS[k] for k in measured), *batch, *keys]
    rows = [[f"#{t.number}" + (" plain" if t.user_attrs.get(BASELINE_ATTR) else ""),
             f"{fitness_of(t):.4f}",
             *([f"{means[t.number][0]:.4f} ({means[t.number][1]})" if t.number in means else "-"]
               if means else []),
             *(metric(t.user_attrs.get(k, math.nan)) for k in labels),
             *(f"{t.user_attrs[k]:.2f}" if k in t.user_attrs else "-" for k in measured),
             *(str(t.user_attrs.get(k, "-")) for k in batch),
             *(param(t.params.get(k)) for k in keys)] for t in trials]
    return header, rows


def front_table(study, goals) -> str:
    """A multi-objective study's Pareto front (feasible trials only) as a text table."""
    from automl.study import pareto_trials

    front = pareto_trials(study)
    if not front:
        return "Pareto front: no COMPLETE trial yet"
    header, rows = trial_rows(study, front)
    return (f"Pareto front of study '{study.study_name}' ({goals.describe()}): {len(front)} "
            "trials no other beats on every objective; promote any with `automl promote --trial "
            "N`\n" + text_table(header, rows))


def top_table(study, n: int = 5) -> str:
    """The top trials as a text table (fitness, metrics, params); the plain training marked."""
    header, rows = top_rows(study, n)
    if not rows:
        return "no COMPLETE trial yet"
    return f"top {len(rows)} trials of study '{study.study_name}':\n" + text_table(header, rows)
