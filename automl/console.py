"""What automl prints: text tables, the per-trial progress line, the closing summary.

Kept apart from the work itself so that every command formats the same way and the modules
that compute things (data, checks, thresholds, the study) never import the API layer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
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

    def line(self, event) -> str:
        from automl.study import best_trial, finished_trials, fitness_of

        done = len(finished_trials(self._study))
        best = best_trial(self._study)
        best_text = f"best {fitness_of(best):.4f} (#{best.number})" if best else "best -"
        if event.state == "COMPLETE":
            m = event.metrics
            outcome = f"fitness {event.value:.4f}  {metrics_text(m)}"
            if event.measured:
                outcome += "  " + measured_text(event.measured)
            if event.over_cap:
                outcome += f"  OVER THE CAP ({event.over_cap}): infeasible"
        elif event.state == "PRUNED":
            outcome = f"PRUNED after {event.epochs} epochs (fitness {event.value:.4f})"
        else:
            outcome = f"{event.state}: {event.error}"
        plain = " (plain training)" if event.baseline else ""
        if event.notes:
            outcome += "  [" + "; ".join(event.notes) + "]"
        return (f"trial {done}/{self._total}  #{event.number}{plain}  {outcome}  "
                f"({event.seconds:.1f}s)  |  {best_text}")

    def __call__(self, event) -> None:
        if hasattr(event, "state"):  # a finished trial (epoch events are the live view's)
            self._say(self.line(event))


@dataclass
class _Running:
    epoch: int
    epochs: int
    fitness: float
    seconds_per_epoch: float


class LiveProgress(TrialLines):
    """The search while it runs: per running trial its number, epoch e/E, latest fitness and
    seconds per epoch; for the search the trials done, the best so far and an ETA.

    On a terminal a rich table is redrawn in place (finished trials' lines print above it);
    elsewhere (logs, CI) the same is printed as plain lines, at most every `interval` seconds.
    The ETA divides the epochs left (the running trials' rest, plus the trials not started at
    the mean length of the finished ones, pruning included) by the epochs per second since the
    first trial's training began (the first epoch's time less its own training seconds: Ray's
    start and the search's setup are not a pace the trials keep).
    """

    def __init__(self, study, total: int, say: Callable[[str], None], *, live: bool,
                 interval: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(study, total, say)
        self._running: dict[int, _Running] = {}
        self._clock, self._interval = clock, interval
        self._start = clock()
        self._last_plain = self._start
        self._epochs_done = 0
        self._training_since: float | None = None  # when the first trial's training began
        self._finished_epochs: list[int] = []
        self._live = None
        if live:
            from rich.console import Console
            from rich.live import Live

            self._console = Console()
            self._live = Live(self._table(), console=self._console, refresh_per_second=2,
                              transient=True)
            self._live.start()

    def __call__(self, event) -> None:
        if hasattr(event, "state"):  # finished
            self._running.pop(event.number, None)
            self._finished_epochs.append(event.epochs)
            line = self.line(event)
            if self._live:
                self._console.print(line, highlight=False, markup=False)
            else:
                self._say(line)
        else:
            if self._training_since is None:
                began = self._clock() - (event.train_seconds if event.train_seconds > 0 else 0)
                self._training_since = max(self._start, began)
            self._epochs_done += 1
            per = event.train_seconds / max(event.epoch, 1)
            self._running[event.number] = _Running(event.epoch, event.epochs, event.fitness, per)
        if self._live:
            self._live.update(self._table())
        elif self._clock() - self._last_plain >= self._interval and self._running:
            self._last_plain = self._clock()
            self._say(self.status_line())

    def eta_seconds(self) -> float | None:
        """Seconds until the budget is spent, at the pace so far (None before any epoch)."""
        if not self._epochs_done or self._training_since is None:
            return None
        elapsed = self._clock() - self._training_since
        if elapsed <= 0:
            return None
        from automl.study import finished_trials

        per_trial = (sum(self._finished_epochs) / len(self._finished_epochs)
                     if self._finished_epochs else
                     max((r.epochs for r in self._running.values()), default=0))
        waiting = self._total - len(finished_trials(self._study)) - len(self._running)
        left = epochs_left(((r.epoch, r.epochs) for r in self._running.values()), waiting,
                           per_trial)
        return left / (self._epochs_done / elapsed)

    def status_line(self) -> str:
        from automl.study import best_trial, finished_trials, fitness_of

        best = best_trial(self._study)
        eta = self.eta_seconds()
        running = "; ".join(f"#{n} epoch {r.epoch}/{r.epochs} fitness {r.fitness:.4f} "
                            f"{r.seconds_per_epoch:.1f}s/epoch"
                            for n, r in sorted(self._running.items()))
        return (f"progress: {len(finished_trials(self._study))}/{self._total} trials done, best "
                + (f"{fitness_of(best):.4f} (#{best.number})" if best else "-")
                + (f", ETA {_duration(eta)}" if eta is not None else "")
                + (f"; running {running}" if running else ""))

    def _table(self):
        from rich.table import Table

        table = Table(title=self.status_line().split("; running")[0], title_justify="left")
        for column in RUNNING_COLUMNS:
            table.add_column(column, justify="right")
        for n, r in sorted(self._running.items()):
            table.add_row(*running_cells(n, r.epoch, r.epochs, r.fitness, r.seconds_per_epoch))
        return table

    def close(self) -> None:
        if self._live:
            self._live.stop()
            self._live = None


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


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def top_rows(study, n: int, metric: Callable[[Any], str] = lambda v: f"{v:.3f}",
             param: Callable[[Any], str] = fmt) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the top `n` COMPLETE trials: trial, fitness, metrics, params.

    The plain training is marked `#N plain`. `metric` and `param` format the cells.
    """
    from automl.study import top_trials

    return trial_rows(study, top_trials(study, n), metric, param)


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


def no_feasible_trial(study, goals) -> str | None:
    """One line when trials completed but none met the caps, naming the closest one."""
    from optuna.trial import TrialState

    from automl.objectives import feasible
    from automl.study import fitness_of

    if not goals.caps:
        return None
    measured = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.constraints]
    if not measured or any(feasible(t) for t in measured):
        return None
    caps = sorted(goals.caps.items())

    def excess(t) -> float:  # how far over its caps, relative to each cap
        return sum(max(0.0, t.constraints.get(k, 0.0)) / cap for k, cap in caps)

    closest = min(measured, key=lambda t: (excess(t), t.number))
    limits = " and ".join(f"{'--max-size-mb' if k == 'size_mb' else '--max-latency-ms'} {cap:g}"
                          for k, cap in caps)
    return (f"no trial met {limits}: {len(measured)} completed, all over; the closest is "
            f"#{closest.number} ({measured_text(closest.user_attrs)}, fitness "
            f"{fitness_of(closest):.4f}); raise the cap, or search smaller models or images "
            "(model and imgsz as keys of the space)")


def top_table(study, n: int = 5) -> str:
    """The top trials as a text table (fitness, metrics, params); the plain training marked."""
    header, rows = top_rows(study, n)
    if not rows:
        return "no COMPLETE trial yet"
    return f"top {len(rows)} trials of study '{study.study_name}':\n" + text_table(header, rows)


def plain_training(study):
    """The study's COMPLETE plain training (trial #0, its repeats aside), or None."""
    from optuna.trial import TrialState

    from automl.study import BASELINE_ATTR, REPEAT_OF_ATTR

    plain = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
             if t.user_attrs.get(BASELINE_ATTR) and REPEAT_OF_ATTR not in t.user_attrs]
    return plain[-1] if plain else None


def baseline_verdict(study) -> str | None:
    """One line: how much the best trial beats the plain training (trial #0), or that it does not."""
    from automl.objectives import feasible
    from automl.study import best_trial, fitness_of, repeat_means

    base, best = plain_training(study), best_trial(study)
    if base is None or best is None:
        return None
    if not feasible(base):
        return (f"the plain training (#{base.number}, fitness {fitness_of(base):.4f}) is over "
                f"a cap ({measured_text(base.user_attrs)}); best within the caps: "
                f"#{best.number} {fitness_of(best):.4f}")
    means = repeat_means(study)
    # with repeats, a trial is worth its mean; the plain training too when it was repeated
    best_value = means[best.number][0] if best.number in means else fitness_of(best)
    base_value = means[base.number][0] if base.number in means else fitness_of(base)
    what = "mean " if means else ""
    if best.number == base.number or best_value <= base_value:
        return (f"the plain training (#{base.number}, {what}fitness {base_value:.4f}) is the best: "
                "no searched configuration beat it; use its settings (or search longer)")
    gain = best_value - base_value
    if f"{gain:.4f}" == "0.0000":  # a gain the printed digits cannot show is no gain
        return (f"best #{best.number} ties the plain training #{base.number} at {what}fitness "
                f"{base_value:.4f}: the search found nothing better on its data; keep the "
                "plain settings (or search longer)")
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


def status_text(study) -> str:
    """`automl status`: a study's progress read from its storage alone (it may run elsewhere).

    Running trials: epoch e/E, latest fitness, seconds per epoch; the search: trials done of the
    latest run's budget, best so far, and an ETA from the finished trials' seconds per epoch and
    mean length (pruning included), shared by the run's concurrency.
    """
    from optuna.trial import TrialState

    from automl.fitness import ALL_METRICS
    from automl.study import (
        BUDGET_ATTR,
        LATEST_FITNESS_ATTR,
        best_trial,
        finished_trials,
        fitness_of,
        study_config,
        with_intermediate,
    )
    from automl.study.attrs import EPOCHS_ATTR, TRAIN_SECONDS_ATTR

    config = study_config(study)
    budget = study.user_attrs.get(BUDGET_ATTR) or {}
    total = int(budget.get("trials") or 0)
    concurrency = max(1, int(budget.get("concurrency") or 1))
    done = finished_trials(study)
    # their reports, read for them alone (`automl status` reads the study without them)
    running = with_intermediate(study, study.get_trials(deepcopy=False,
                                                        states=(TrialState.RUNNING,)))
    best = best_trial(study)
    # the best's own metrics (top-1 and top-5 of a classification study), where recorded
    measured = ({k: v for k, v in best.user_attrs.items() if k in ALL_METRICS} if best else {})
    lines = [f"study '{study.study_name}': {len(done)}/{total or '?'} trials done, "
             f"{len(running)} running, best "
             + (f"{fitness_of(best):.4f} (#{best.number}"
                + (f": {metrics_text(measured)})" if measured else ")") if best else "-")]
    timed = [t for t in done if t.user_attrs.get(EPOCHS_ATTR) and t.user_attrs.get(TRAIN_SECONDS_ATTR)]
    per_epoch = (sum(t.user_attrs[TRAIN_SECONDS_ATTR] for t in timed)
                 / sum(t.user_attrs[EPOCHS_ATTR] for t in timed)) if timed else None
    epochs = config.epochs or 0
    rows, at = [], []
    for t in sorted(running, key=lambda t: t.number):
        # the progress attrs are written every few seconds, the epochs' reports every epoch
        timed_at = int(t.user_attrs.get(EPOCHS_ATTR) or 0)
        e = max(timed_at, max(t.intermediate_values, default=0))
        seconds = t.user_attrs.get(TRAIN_SECONDS_ATTR)
        latest = (t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values
                  else t.user_attrs.get(LATEST_FITNESS_ATTR))
        rows.append(running_cells(t.number, e, epochs, latest,
                                  seconds / timed_at if seconds and timed_at else None))
        at.append((e, epochs))
    if total and per_epoch and timed:
        mean_length = sum(t.user_attrs[EPOCHS_ATTR] for t in timed) / len(timed)
        left = epochs_left(at, total - len(done) - len(running), mean_length)
        lines[0] += f", ETA {_duration(left * per_epoch / concurrency)}"
    if rows:
        lines.append(text_table(list(RUNNING_COLUMNS), rows))
    return "\n".join(lines)
