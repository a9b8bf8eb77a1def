"""Every default in one place: the defaults of every command's options and the demo data's profile.

The CLI's help, the Python API's keyword defaults and the study's recorded config all read them
from here.
"""

from __future__ import annotations

AUTO = "auto"

SPACE = "lr_momentum"
SEARCHER = "tpe"
TRIALS = 8
MODEL = "yolo11n.yaml"
# ultralytics' own training defaults for data of your own (its default.yaml: epochs 100 is for a
# final training; a trial is shorter)
EPOCHS = 30
IMGSZ = 640
BATCH = 16
# the smallest batch an out-of-memory retry trains with (halving from the trial's batch): at 1,
# BatchNorm sees one value per channel and ultralytics refuses such a batch
MIN_BATCH = 2
FRACTION = AUTO  # see automl.searching.fraction.auto_fraction
GA_PARENT = "single"  # the GA's parent selection when --ga-parent is left out
GA_PARENT_MODES = ("single", "weighted")
KEEP_WEIGHTS = "best"  # which finished trials keep their weights when --keep-weights is left out
KEEP_WEIGHTS_MODES = ("best", "all", "none")
FULL_DATA = "train"  # what a promotion or validation trains on when --full-data is left out
FULL_DATA_MODES = ("train", "train+val")

# automl validate: the top trials it trains again on the full data, and the seeds each
VALIDATE_TOP = 5
VALIDATE_SEEDS = 2
# automl thresholds (and promote --tune-thresholds): what the pair is chosen for, and the folds
# its held-out figures come from
THRESHOLD_METRIC = "f1"
THRESHOLD_FOLDS = 5

# The built-in demo data (160 + 64 images of 128 px) trains with its own profile, so that the
# default search fits in minutes on a laptop CPU. Flags the user passes always win.
# nbs = batch: ultralytics' nominal batch of 64 would accumulate 8 of the demo's batches into one
# optimizer step, too few steps for a trial to learn (docs/measured.md#provenance-not-recorded).
DEMO_PROFILE = {"epochs": 10, "imgsz": 128, "batch": 8}
