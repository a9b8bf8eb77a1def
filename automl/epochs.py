"""What a trial reports after every epoch: one typed record, the contract between its parts.

The trainer makes an `EpochReport` per validated epoch, the Ray runner sends it through
`tune.report` (as `as_dict()`: Ray wants a dict) and reads it back with `from_result`, and the
study records its values (intermediate values per epoch; the best epoch's metrics as user attrs).
Test fakes report the same record, so a field renamed here is renamed everywhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from automl.fitness import ALL_METRICS, METRICS, f1_score

FITNESS = "fitness"
EPOCH = "epoch"
ERROR = "error"
# how a training used memory (automl.execution.memory); a replay records none of them
GPU_FIELDS = ("gpu_peak_allocated_mb", "gpu_peak_reserved_mb", "gpu_total_mb", "gpu_share")
MEMORY_FIELDS = ("batch", "requested_batch", *GPU_FIELDS)


@dataclass(frozen=True)
class EpochReport:
    """One epoch of one trial.

    Attributes:
        epoch: 1-based epoch number.
        fitness: the study's fitness of this epoch's metrics (NaN when a metric is missing).
        precision, recall, map50, map75, map50_95, f1: the validation metrics (METRICS).
        mask_precision, ..., mask_f1: a segmentation model's mask metrics (MASK_METRICS); NaN
            for other tasks.
        pose_precision, ..., pose_f1: a pose model's keypoint metrics (POSE_METRICS); NaN for
            other tasks.
        top1, top5: a classification model's top-1 and top-5 accuracy (CLS_METRICS), its only
            metrics (the box metrics stay NaN); NaN for other tasks.
        val_loss: summed validation losses (box + cls + dfl for detection), NaN when unknown.
        train_seconds: seconds since the training started (model build included).
        node: the Ray node the trial runs on ("" outside Ray).
        device: the torch device the training runs on ("cpu", "cuda:0"; "" when unknown, e.g.
            a replayed epoch).
        size_mb, latency_ms: the trained weights' size and median CPU latency at batch 1
            (automl.execution.footprint), on the final epoch of a run that measures them (RunSpec.measure);
            NaN on every other epoch.
        batch: the batch this epoch trained with (0 when unknown, e.g. a replay); smaller than
            `requested_batch` after an out-of-memory retry (automl.execution.memory).
        requested_batch: the batch the training asked for (0 when not a number of images).
        gpu_peak_allocated_mb, gpu_peak_reserved_mb, gpu_total_mb: torch's peak CUDA memory
            counters since the training began and the device's total (NaN off CUDA).
        gpu_share: the fraction of a GPU the trial was given (NaN outside Ray or without one).
    """

    epoch: int
    fitness: float
    precision: float = math.nan
    recall: float = math.nan
    map50: float = math.nan
    map75: float = math.nan
    map50_95: float = math.nan
    f1: float = math.nan
    mask_precision: float = math.nan
    mask_recall: float = math.nan
    mask_map50: float = math.nan
    mask_map75: float = math.nan
    mask_map50_95: float = math.nan
    mask_f1: float = math.nan
    pose_precision: float = math.nan
    pose_recall: float = math.nan
    pose_map50: float = math.nan
    pose_map75: float = math.nan
    pose_map50_95: float = math.nan
    pose_f1: float = math.nan
    top1: float = math.nan
    top5: float = math.nan
    val_loss: float = math.nan
    train_seconds: float = math.nan
    node: str = ""
    device: str = ""
    size_mb: float = math.nan
    latency_ms: float = math.nan
    # why the training ended after this epoch, before its last: "patience" (ultralytics' own
    # early stopping, as in yolo train); "" when it goes on or ends at its last epoch
    stopped_by: str = ""
    batch: int = 0  # the batch the training runs (AutoBatch's pick with batch=-1); 0: unknown
    requested_batch: int = 0
    gpu_peak_allocated_mb: float = math.nan
    gpu_peak_reserved_mb: float = math.nan
    gpu_total_mb: float = math.nan
    gpu_share: float = math.nan

    def metrics(self) -> dict[str, float]:
        """The validation metrics by canonical name (METRICS, a task's own where measured; a
        classification model's CLS_METRICS alone)."""
        # a classification model measures no boxes: its box metrics are left out, not NaN
        boxes = (not math.isfinite(self.top1)
                 or any(math.isfinite(getattr(self, name)) for name in METRICS))
        return {name: getattr(self, name) for name in ALL_METRICS
                if (name in METRICS and boxes) or math.isfinite(getattr(self, name))}

    def measured(self) -> dict[str, float]:
        """size_mb and latency_ms, where measured."""
        return {k: getattr(self, k) for k in ("size_mb", "latency_ms")
                if math.isfinite(getattr(self, k))}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_result(cls, result: dict[str, Any]) -> EpochReport | None:
        """The record inside a Ray Tune result (which adds keys of its own), or None when the
        result is not an epoch report (an error report, Ray's own bookkeeping)."""
        if EPOCH not in result or ERROR in result:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in result.items() if k in known})


def error_report(message: str) -> dict[str, Any]:
    """What a trial reports instead of epochs when its training failed (the study marks it FAIL)."""
    return {FITNESS: math.nan, ERROR: message}


def box_metrics(box, prefix: str = "") -> dict[str, float]:
    """ultralytics' box metrics (`validator.metrics.box`) under automl's metric names (METRICS);
    with prefix "mask_", its mask metrics (`validator.metrics.seg`, MASK_METRICS)."""
    p, r = float(box.mp), float(box.mr)
    values = {"precision": p, "recall": r, "map50": float(box.map50), "map75": float(box.map75),
              "map50_95": float(box.map), "f1": f1_score(p, r)}
    return {prefix + k: v for k, v in values.items()}


# The validator's metrics of one task's own outputs, by the prefix of their names (TASK_METRICS).
_TASK_PARTS = {"mask_": "seg", "pose_": "pose"}


def task_metrics(metrics) -> dict[str, float]:
    """A validator's metrics under automl's names: boxes, and masks where the model segments,
    keypoints where it estimates pose; top-1 and top-5 where it classifies."""
    if not hasattr(metrics, "box"):  # ultralytics' ClassifyMetrics
        return {"top1": float(metrics.top1), "top5": float(metrics.top5)}
    values = box_metrics(metrics.box)
    for prefix, part in _TASK_PARTS.items():
        if getattr(metrics, part, None) is not None:
            values.update(box_metrics(getattr(metrics, part), prefix))
    return values
