"""A search's progress as it runs: a line per finished trial, the live table of running trials,
and `automl status` read from the storage alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from automl.console import (
    RUNNING_COLUMNS,
    duration,
    epochs_left,
    measured_text,
    metrics_text,
    running_cells,
    text_table,
)


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
                + (f", ETA {duration(eta)}" if eta is not None else "")
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
        lines[0] += f", ETA {duration(left * per_epoch / concurrency)}"
    if rows:
        lines.append(text_table(list(RUNNING_COLUMNS), rows))
    return "\n".join(lines)
