"""How automl prints: text tables and the formatting of values, durations and footprints.

One place so that every command formats the same way; it reads no study (the tables and
verdicts of a study: automl.results.summary, automl.results.verdicts; a search's progress:
automl.results.progress).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
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


RUNNING_COLUMNS = ("trial", "epoch", "fitness", "s/epoch")


def running_cells(number: int, epoch: int, epochs: int | None, fitness: float | None,
                  seconds_per_epoch: float | None) -> list[str]:
    """A running trial's row under RUNNING_COLUMNS ('?' or '-' for what is not known yet)."""
    return [f"#{number}", f"{epoch}/{epochs or '?'}",
            "-" if fitness is None else f"{fitness:.4f}",
            "-" if seconds_per_epoch is None else f"{seconds_per_epoch:.1f}"]


def epochs_left(running: Iterable[tuple[int, int]], waiting: int, per_trial: float) -> float:
    """Epochs until a budget is spent: each running trial's rest (at epoch e of E), plus the
    `waiting` trials not started yet at `per_trial` epochs each (pruning included)."""
    return sum(max(0, total - e) for e, total in running) + max(0, waiting) * per_trial


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


MEASURED_LABELS = {"size_mb": "MB", "latency_ms": "CPU ms"}


def measured_text(measured: Mapping[str, float]) -> str:
    """`5.42 MB  3.1 ms` of a trial's measured footprint."""
    return "  ".join(f"{measured[k]:.2f} MB" if k == "size_mb" else f"{measured[k]:.1f} ms"
                     for k in MEASURED_LABELS if k in measured)


def metrics_text(metrics: Mapping[str, float]) -> str:
    """`mAP50 0.512  mAP50-95 0.301` (and the task's own where measured), or a classification
    model's `top-1 0.870  top-5 1.000`, for one line."""
    from automl.fitness import CLS_LABELS

    if "top1" in metrics:
        return "  ".join(f"{label} {metrics.get(k, math.nan):.3f}" for k, label in CLS_LABELS.items())
    return (f"mAP50 {metrics.get('map50', math.nan):.3f}  "
            f"mAP50-95 {metrics.get('map50_95', math.nan):.3f}" + task_text(metrics))


def task_text(metrics: Mapping[str, float]) -> str:
    """The mAP50-95 of a task's own outputs (masks, keypoints) where measured, for one line."""
    from automl.fitness import TASK_LABELS

    return "".join(f"  {label} {metrics[k]:.3f}" for k, label in TASK_LABELS.items()
                   if k.endswith("map50_95") and k in metrics)


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


