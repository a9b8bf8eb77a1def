"""A search sized to a time budget: measured seconds per epoch in, trials and epochs out.

`plan_budget` is a pure function: the budget, what is already spent, the measured seconds of one
epoch, the data's size and the machine's trial slots in; the trials, epochs per trial, mini-split
share, trials at once and pruner that fit out. A running search then checks the plan against its
trials' own epoch times (automl.execution.budget) and launches no trial that would overrun.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from automl.durations import duration_text
from automl.errors import ConfigError

# A budgeted search plans to end by this share of the budget short of it: a measured epoch time
# varies between trials (another trial's data loading, a slower configuration).
MARGIN = 0.05
# The plain training and one more trial: less than this is no search.
MIN_TRIALS = 2
# Enough trials for the searcher to learn from: below it, shorter trials are worth more trials.
ENOUGH_TRIALS = 8
# Whole trials a multi-fidelity plan (ASHA's rungs) must hold even if ASHA stops none: below
# it, shorter trials are planned instead.
SURE_UNDER_ASHA = 4
# Trials shorter than this rank learning-rate warmup noise (ultralytics warms up for 3 epochs).
MIN_EPOCHS = 4
# The smallest mini-split share a budget may shrink an automatic share to.
MIN_FRACTION = 0.1
# Trials when --trials is left out: the budget decides, this only bounds the study's size.
MAX_TRIALS = 200


@dataclass(frozen=True)
class BudgetPlan:
    """What fits a budget (see `plan_budget`).

    Attributes:
        budget_s: the whole budget, from the command's start.
        trials: trials to launch at most (pruned trials leave room for more than `sure`).
        sure: trials that fit if none is stopped early.
        epochs, fraction, concurrency: each trial's epochs, its mini-split share, trials at once.
        epoch_s: seconds of one epoch at `fraction` (the probe's, scaled by the share).
        trial_s: seconds of one whole trial (its epochs and its start).
        pruner, rungs: the early stopping the plan counts on (asha at those epochs, or none).
        eta_s: when the `sure` trials end, from the command's start.
        why: what the plan gave up to fit, in a few words ("" when nothing).
        reserve_s: seconds kept after the search for full-data trainings (`automl fit`'s
            promotions); the search plans to end that much earlier.
    """

    budget_s: float
    trials: int
    sure: int
    epochs: int
    fraction: float
    concurrency: int
    epoch_s: float
    trial_s: float
    pruner: str
    rungs: tuple[int, ...]
    eta_s: float
    why: str = ""
    reserve_s: float = 0.0

    def describe(self) -> str:
        """The plan in one line (the search prints it before its first trial)."""
        more = f" (up to {self.trials} when ASHA stops some early)" if self.trials > self.sure \
            else ""
        return (f"budget {duration_text(self.budget_s)}: {self.sure} trials{more} of "
                f"{self.epochs} epochs on a {self.fraction:g} share, {self.concurrency} at a time, "
                f"~{self.epoch_s:.3g} s an epoch, ~{duration_text(self.trial_s)} a trial; ETA "
                f"{duration_text(self.eta_s)} of {duration_text(self.budget_s)}"
                + (f", then ~{duration_text(self.reserve_s)} kept for the full-data trainings"
                   if self.reserve_s else "")
                + (f"; {self.why}" if self.why else ""))


def check_budget(flags) -> None:
    """What --budget cannot go with (SearchFlags; the duration itself: automl.options).

    Raises:
        ConfigError: one line naming the flags and the fix.
    """
    if flags.timeout is not None:
        raise ConfigError(f"--timeout {flags.timeout:g}: --budget {flags.budget} already ends "
                          "the search in time; leave one of them out")
    if flags.repeats:
        raise ConfigError(f"--repeats {flags.repeats}: not with --budget (the budget decides "
                          "the trials); leave one of them out")
    if flags.replay and not flags.replay_epoch_seconds:
        raise ConfigError(f"--budget {flags.budget} with --replay: a replayed epoch takes no "
                          "time; give it some with --replay-epoch-seconds (e.g. 0.5)")


def asha_epochs(epochs: int, rungs: tuple[int, ...], reduction_factor: int) -> float:
    """Expected epochs of one trial under ASHA: all reach the first rung, 1/rf of them the
    next, and so on to the end."""
    bounds = [*rungs, epochs]
    total, previous = 0.0, 0
    for k, bound in enumerate(bounds):
        total += (bound - previous) / reduction_factor**k
        previous = bound
    return total


def plan_budget(*, budget_s: float, spent_s: float, epoch_s: float, fraction: float,
                fraction_fixed: bool, epochs: int, epochs_fixed: bool, trials_cap: int | None,
                concurrency: Callable[[int], int], trial_overhead_s: float,
                startup_s: float, resumed: bool = False, after: int = 0,
                after_s: float = 0.0, asha: bool = True) -> BudgetPlan:
    """The trials, epochs, share and concurrency that fit a budget.

    Pure: reads only its arguments.

    Args:
        budget_s: the budget in seconds, from the command's start.
        spent_s: seconds already spent (checks, data, the probe).
        epoch_s: measured seconds of one epoch of a trial at `fraction`.
        fraction: the mini-split share `epoch_s` was measured at.
        fraction_fixed: the user chose the share (--fraction): the plan keeps it.
        epochs: epochs per trial at most (the user's --epochs, else the default).
        epochs_fixed: the trials must have `epochs` epochs (a replay's record).
        trials_cap: --trials (a cap), or None.
        concurrency: trials at once for a study of n trials (the machine's rule).
        trial_overhead_s: seconds a trial takes besides its epochs (its process, its start).
        startup_s: seconds the search takes besides its trials (Ray's start, the summary).
        resumed: the study goes on (its plain training is done): one more trial suffices.
        after: full-data trainings of a trial's epochs to keep time for after the search (their
            epoch extrapolated from `epoch_s`: the whole data is 1/`fraction` times the share).
        after_s: seconds more to keep after the search (thresholds, exports, the report).
        asha: the search may stop weak trials at ASHA's rungs (False: another --pruner). Then,
            where the epochs allow rungs, the plan is multi-fidelity: it keeps the epochs and
            launches more trials than fit whole when shorter trials would otherwise be planned
            and SURE_UNDER_ASHA whole ones still fit.

    Raises:
        ConfigError: the budget does not hold the plain training and one more trial; the
            message names the smallest budget that does.
    """
    from automl.searching.schedulers import REDUCTION_FACTOR, asha_rungs, default_pruner

    def reserve(e: int) -> float:
        """Seconds kept after the search when trials have e epochs."""
        return after * (e * epoch_s / fraction + trial_overhead_s) + after_s

    usable = budget_s * (1 - MARGIN) - spent_s - startup_s
    cap = trials_cap if trials_cap is not None else MAX_TRIALS
    least = min(cap, 1 if resumed else MIN_TRIALS)

    def at(e: int, f: float, n: int) -> tuple[float, float]:
        """(seconds of a whole trial, wall seconds of n trials) at e epochs and share f."""
        per = e * epoch_s * f / fraction + trial_overhead_s
        return per, math.ceil(n / concurrency(n)) * per

    def fitting(e: int, f: float, cost: Callable[[int], float]) -> int:
        n = 0
        while n < cap and cost(n + 1) <= usable - reserve(e):
            n += 1
        return n

    shorter = sorted({max(MIN_EPOCHS, min(epochs, math.ceil(epochs * s)))
                      for s in (1, 2 / 3, 1 / 2, 1 / 3)} | {min(epochs, MIN_EPOCHS)},
                     reverse=True) if not epochs_fixed else [epochs]
    shares = [fraction] if fraction_fixed else sorted(
        {fraction, *(s for s in (fraction / 2, fraction / 4, MIN_FRACTION)
                     if MIN_FRACTION <= s < fraction)}, reverse=True)
    # more trials for fewer epochs down to half of them; shorter trials, then a smaller share
    # (fewer optimizer steps a trial: automl.searching.fraction.auto_fraction) only to fit at all
    roomy = [(e, fraction) for e in shorter if e >= math.ceil(epochs / 2)] or [(epochs, fraction)]
    last = [(e, fraction) for e in shorter if (e, fraction) not in roomy] + \
        [(shorter[-1], f) for f in shares[1:]]
    candidates = roomy + last

    def launched(e: int, f: float, sure: int) -> int:
        """Trials to launch at e epochs and share f: under ASHA, trials stopped at a rung leave
        room for more than the `sure` ones (its expected epochs a trial: asha_epochs)."""
        if not asha or default_pruner(e) != "asha":
            return sure
        per = at(e, f, 1)[0]
        cheaper = asha_epochs(e, asha_rungs(e), REDUCTION_FACTOR) * epoch_s * f / fraction \
            + trial_overhead_s
        return max(sure, fitting(e, f, lambda n: max(per, (per + (n - 1) * cheaper)
                                                     / concurrency(n))))

    best, multi_fidelity = None, False
    for e, f in roomy:
        sure = fitting(e, f, lambda n, e=e, f=f: at(e, f, n)[1])
        if best is None or sure > best[2]:
            best = (e, f, sure)
        if sure >= min(cap, ENOUGH_TRIALS):
            break
        # multi-fidelity (successive halving): enough trials once ASHA stops the weak ones at
        # its rungs, and enough whole ones even if it stops none: the full epochs are kept
        if sure >= min(cap, SURE_UNDER_ASHA) and launched(e, f, sure) >= min(cap, ENOUGH_TRIALS):
            best, multi_fidelity = (e, f, sure), True
            break
    for e, f in last if best[2] < least else ():
        sure = fitting(e, f, lambda n, e=e, f=f: at(e, f, n)[1])
        if sure >= least:
            best = (e, f, sure)
            break
    e, f, sure = best
    if sure < least:
        cheapest_e, cheapest_f = candidates[-1]
        need = (spent_s + startup_s + at(cheapest_e, cheapest_f, least)[1]
                + reserve(cheapest_e)) / (1 - MARGIN)
        also = " and the full-data trainings" if after else ""
        raise ConfigError(
            f"--budget {duration_text(budget_s)}: too small for the plain training and one more "
            f"trial{also} here ({cheapest_e} epochs at ~{epoch_s * cheapest_f / fraction:.3g} s each, "
            f"{spent_s:.0f} s already spent checking and measuring); the smallest budget that "
            f"fits is --budget {duration_text(need)}")
    pruner = default_pruner(e) if asha else "none"
    rungs = asha_rungs(e) if pruner == "asha" else ()
    per, eta = at(e, f, sure)
    trials = launched(e, f, sure)
    gave_up = [what for what, lost in ((f"{epochs} epochs", e < epochs),
                                       (f"the {fraction:g} share", f < fraction)) if lost]
    why = f"less than {' and '.join(gave_up)} to fit more trials" if gave_up else ""
    if multi_fidelity:
        why = (f"ASHA's rungs at epochs {', '.join(map(str, rungs))} make room for up to "
               f"{trials} trials of {e} epochs rather than more, shorter ones"
               + (f"; {why}" if why else ""))
    return BudgetPlan(budget_s=budget_s, trials=trials, sure=sure, epochs=e, fraction=f,
                      concurrency=concurrency(trials), epoch_s=epoch_s * f / fraction,
                      trial_s=per, pruner=pruner, rungs=rungs,
                      eta_s=spent_s + startup_s + eta, why=why, reserve_s=reserve(e))
