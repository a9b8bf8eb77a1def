"""The names automl stores on a study and its trials (user attrs), and where studies live."""

from __future__ import annotations

from pathlib import Path

STUDIES_DIR = Path("studies")


CONFIG_ATTR = "automl:config"


OWNER_ATTR = "automl:owner"          # host:pid of the process running a trial


INTERRUPTED_ATTR = "automl:interrupted"  # FAIL because the search process died or was stopped


RETRY_OF_ATTR = "automl:retry_of"    # number of the interrupted trial this one re-runs


LOSSES_ATTR = "automl:losses"        # times in a row its process or Ray node died, before it


DIED_ATTR = "automl:process_died"    # how many of them were its process dying on a live node


REPEAT_OF_ATTR = "automl:repeat_of"  # number of the trial this one trains again (--repeats)


SEED_ATTR = "automl:seed"            # the training seed of a repeat (others train with seed 0)


BUDGET_ATTR = "automl:budget"        # the latest run's --trials and --concurrency (status, ETA)


ERROR_ATTR = "error"


STOPPED_BY_ATTR = "stopped_by"  # why a COMPLETE trial ended where it did: patience, time


BASELINE_ATTR = "automl:baseline"    # the trial that trains the user's plain `yolo train`


OUTSIDE_ATTR = "automl:outside_space"  # why a baseline is not a point of the space (no GA parent)


PROMOTIONS_ATTR = "automl:promotions"  # {trial number: record} of `automl promote` runs


VALIDATES_ATTR = "automl:validates"  # on a trial of NAME-validate: the searched trial it trains


VALIDATION_ATTR = "automl:validation"  # on the searched study: `automl validate`'s verdict


# a running trial's latest fitness where the study takes no intermediate values (multi-objective)
LATEST_FITNESS_ATTR = "automl:latest_fitness"


DRIVERS_ATTR = "automl:drivers"  # how many search processes have driven the study so far

# what a trial's training recorded on it (besides its metrics, named as automl.fitness names them)
EPOCHS_ATTR = "epochs"                # the epochs it trained (while running: so far)
TRAIN_SECONDS_ATTR = "train_seconds"  # its training time (while running: so far)
BEST_EPOCH_ATTR = "best_epoch"        # the epoch its metrics are from
RAY_NODE_ATTR = "ray_node"            # the Ray node that ran it (clusters: --address)
DEVICE_ATTR = "device"                # the torch device that trained it ("cpu", "cuda:0")
BATCH_ATTR = "batch"                  # the batch AutoBatch picked (batch -1 only)
VAL_LOSS_ATTR = "val_loss"            # its last epoch's: a fingerprint of the weights
WEIGHTS_ATTR = "weights"              # the kept best.pt (--keep-weights)


def trial_folder(number: int) -> str:
    """The name of trial `number`'s ultralytics run folder, under the study's trials/."""
    return f"trial_{number:04d}"
