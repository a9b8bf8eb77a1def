"""`--fraction auto`: the mini split's share, decided from the data and the training."""

from __future__ import annotations

from automl.data.splits import mini_size
from automl.searching.baseline import optimizer_steps

# `--fraction auto`: half the data, unless half leaves a trial fewer optimizer steps than this:
# on small data a half split starves training, and trials that learn on the full data score
# nothing on it (docs/measured.md#mini-split).
MIN_TRIAL_STEPS = 100
AUTO_FRACTION = 0.5


def auto_fraction(n_train: int, *, epochs: int, batch: int, nbs: int) -> tuple[float, str]:
    """The mini split's share for `--fraction auto`, and why, in a few words.

    Half the data when that still gives a trial MIN_TRIAL_STEPS optimizer steps (one step per
    nominal batch of max(batch, nbs) images, as ultralytics accumulates); otherwise the
    smallest share that does, all images when none does.
    """
    def steps(fraction: float) -> int:
        return optimizer_steps(mini_size(n_train, fraction), epochs, batch, nbs)

    if steps(AUTO_FRACTION) >= MIN_TRIAL_STEPS:
        return AUTO_FRACTION, f"half the data keeps {steps(AUTO_FRACTION)} optimizer steps a trial"
    for percent in range(int(AUTO_FRACTION * 100) + 5, 100, 5):
        if steps(percent / 100) >= MIN_TRIAL_STEPS:
            return percent / 100, (f"the smallest share that keeps {MIN_TRIAL_STEPS}+ optimizer "
                                   f"steps a trial ({steps(percent / 100)})")
    return 1.0, (f"all images: a smaller share would leave fewer than {MIN_TRIAL_STEPS} optimizer "
                 f"steps a trial (all of them give {steps(1.0)})")
