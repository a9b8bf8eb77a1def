"""What automl prints: text tables, the per-trial progress line, the closing summary.

Kept apart from the work itself so that every command formats the same way and the modules
that compute things (data, checks, thresholds, the study) never import the API layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def text_table(header: list[str], rows: list[list[Any]], *, right: bool = True) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    pad = str.rjust if right else str.ljust
    return "\n".join("  ".join(pad(str(c), w) for c, w in zip(r, widths, strict=True))
                     for r in [header, *rows])


def fmt(value: Any) -> str:
    """A value as a table cell: floats to 5 significant digits."""
    return f"{value:.5g}" if isinstance(value, float) else str(value)


def shown(values: Mapping[str, Any]) -> str:
    """`key=value, ...` with floats to 5 significant digits."""
    return ", ".join(f"{k}={fmt(v)}" for k, v in values.items())


def ranges(params: Iterable) -> str:
    """A space's params in a few words: `lr0 0.0001..0.1 log, optimizer ['SGD', 'AdamW']`."""
    def one(p) -> str:
        if p.kind == "categorical":
            return f"{p.name} {list(p.choices)}"
        return f"{p.name} {p.low:g}..{p.high:g}{' log' if p.log else ''}"

    return ", ".join(one(p) for p in params)


class TrialLines:
    """Prints one line per finished trial: i/N, its outcome, and the best so far."""

    def __init__(self, study, total: int, say: Callable[[str], None]) -> None:
        self._study, self._total, self._say = study, total, say

    def __call__(self, event) -> None:
        from automl.study import best_trial, finished_trials

        done = len(finished_trials(self._study))
        best = best_trial(self._study)
        best_text = f"best {best.value:.4f} (#{best.number})" if best else "best -"
        if event.state == "COMPLETE":
            m = event.metrics
            outcome = (f"fitness {event.value:.4f}  mAP50 {m.get('map50', math.nan):.3f}  "
                       f"mAP50-95 {m.get('map50_95', math.nan):.3f}")
        elif event.state == "PRUNED":
            outcome = f"PRUNED after {event.epochs} epochs (fitness {event.value:.4f})"
        else:
            outcome = f"{event.state}: {event.error}"
        plain = " (plain training)" if event.baseline else ""
        self._say(f"trial {done}/{self._total}  #{event.number}{plain}  {outcome}  "
                  f"({event.seconds:.1f}s)  |  {best_text}")


def top_rows(study, n: int, metric: Callable[[Any], str] = lambda v: f"{v:.3f}",
             param: Callable[[Any], str] = fmt) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the top `n` COMPLETE trials: trial, fitness, metrics, params.

    The plain training is marked `#N plain`. `metric` and `param` format the cells.
    """
    from automl.fitness import METRIC_LABELS
    from automl.study import BASELINE_ATTR, repeat_means, top_trials

    top = top_trials(study, n)
    means = repeat_means(study)
    keys = list(dict.fromkeys(k for t in top for k in t.params))
    header = ["trial", "fitness", *(["mean (runs)"] if means else []), *METRIC_LABELS.values(),
              *keys]
    rows = [[f"#{t.number}" + (" plain" if t.user_attrs.get(BASELINE_ATTR) else ""),
             f"{t.value:.4f}",
             *([f"{means[t.number][0]:.4f} ({means[t.number][1]})" if t.number in means else "-"]
               if means else []),
             *(metric(t.user_attrs.get(k, math.nan)) for k in METRIC_LABELS),
             *(param(t.params.get(k)) for k in keys)] for t in top]
    return header, rows


def top_table(study, n: int = 5) -> str:
    """The top trials as a text table (fitness, metrics, params); the plain training marked."""
    header, rows = top_rows(study, n)
    if not rows:
        return "no COMPLETE trial yet"
    return f"top {len(rows)} trials of study '{study.study_name}':\n" + text_table(header, rows)


def baseline_verdict(study) -> str | None:
    """One line: how much the best trial beats the plain training (trial #0), or that it does not."""
    from optuna.trial import TrialState

    from automl.study import BASELINE_ATTR, REPEAT_OF_ATTR, best_trial, repeat_means

    plain = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
             if t.user_attrs.get(BASELINE_ATTR) and REPEAT_OF_ATTR not in t.user_attrs]
    best = best_trial(study)
    if not plain or best is None:
        return None
    base = plain[-1]
    means = repeat_means(study)
    # with repeats, a trial is worth its mean; the plain training too when it was repeated
    best_value = means[best.number][0] if best.number in means else best.value
    base_value = means[base.number][0] if base.number in means else base.value
    what = "mean " if means else ""
    if best.number == base.number or best_value <= base_value:
        return (f"the plain training (#{base.number}, {what}fitness {base_value:.4f}) is the best: "
                "no searched configuration beat it; use its settings (or search longer)")
    gain = best_value - base_value
    rel = f" ({gain / base_value:+.0%})" if base_value > 0 else ""
    return (f"best #{best.number} {what}{best_value:.4f} beats the plain training "
            f"#{base.number} {base_value:.4f} by {gain:+.4f}{rel} on the search's data")


def studies_table(rows: list[dict], promoted: Mapping[tuple[str, str], Any],
                  storage: str | None = None) -> str:
    """`automl studies`: every study with trial counts, best fitness and latest promotion.

    `promoted`: (storage, study) -> the study's latest promotion record (or None).
    """
    if not rows:
        return "no studies found" + ("" if storage else " under studies/")
    header = ["study", "trials", "complete", "pruned", "fail", "running", "best fitness",
              "best trial", "promoted", "storage"]
    body = [[r["study"], r["trials"], r["complete"], r["pruned"], r["fail"], r["running"],
             "-" if r["best_fitness"] is None else f"{r['best_fitness']:.4f}",
             "-" if r["best_trial"] is None else f"#{r['best_trial']}",
             _promoted_cell(promoted.get((r["storage"], r["study"]))), r["storage"]]
            for r in rows]
    return text_table(header, body, right=False)


def _promoted_cell(record: Mapping[str, Any] | None) -> str:
    """`#N 0.1234` (trial, full-data fitness) of a promotion record, '-' when none."""
    if not record:
        return "-"
    fitness = record.get("fitness")
    return f"#{record['trial']} " + ("?" if fitness is None else f"{fitness:.4f}")
