"""One fitness for every searcher: a named preset or a weighted sum of validation metrics.

Expressions are parsed by a small grammar (`[weight*]metric (+ [weight*]metric)*`), never eval'd.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from automl.errors import FitnessError

# Canonical metric names, as stored in trial user attrs: the one list every part uses.
METRICS = ("precision", "recall", "map50", "map75", "map50_95", "f1")
# A segmentation model's mask metrics (ultralytics' "(M)" keys); a detection model has none.
MASK_METRICS = tuple(f"mask_{m}" for m in METRICS)
# How tables head them, in the order tables show them (f1 left out: P and R are there).
METRIC_LABELS = {"map50": "mAP50", "map50_95": "mAP50-95", "map75": "mAP75", "precision": "P",
                 "recall": "R"}
# A segmentation model's, shown beside them where a trial measured them.
MASK_LABELS = {"mask_map50": "mask mAP50", "mask_map50_95": "mask mAP50-95"}
# A pose model's keypoint metrics (ultralytics' "(P)" keys, by OKS) and how tables head them.
POSE_METRICS = tuple(f"pose_{m}" for m in METRICS)
POSE_LABELS = {"pose_map50": "pose mAP50", "pose_map50_95": "pose mAP50-95"}
# The metrics of one task only, with its prefix: where a trial measured them, they are shown.
TASK_METRICS = {"mask_": MASK_METRICS, "pose_": POSE_METRICS}
TASK_LABELS = {**MASK_LABELS, **POSE_LABELS}
# A classification model's metrics (ultralytics' top-1 and top-5 accuracy), and its only ones.
CLS_METRICS = ("top1", "top5")
CLS_LABELS = {"top1": "top-1", "top5": "top-5"}
# Every metric a trial may record, in the order records list them.
ALL_METRICS = (*METRICS, *MASK_METRICS, *POSE_METRICS, *CLS_METRICS)
_ALIASES = {
    "p": "precision", "precision": "precision",
    "r": "recall", "recall": "recall",
    "map50": "map50", "map@50": "map50", "map@0.5": "map50", "map_50": "map50",
    "map75": "map75", "map@75": "map75", "map@0.75": "map75", "map_75": "map75",
    "map50_95": "map50_95", "map50-95": "map50_95", "map": "map50_95", "map@50:95": "map50_95",
    "map@0.5:0.95": "map50_95",
    "f1": "f1",
}
_ALIASES.update({f"{task}{k}": f"{task}{v}" for task in TASK_METRICS for k, v in _ALIASES.items()})
_ALIASES.update({"top1": "top1", "top-1": "top1", "top5": "top5", "top-5": "top5"})
PRESETS: dict[str, dict[str, float]] = {
    "v5": {"map50": 0.1, "map50_95": 0.9},
    "map50_95": {"map50_95": 1.0},
    "map50": {"map50": 1.0},
    "map75": {"map75": 1.0},
    "f1": {"f1": 1.0},
    # ultralytics' own segment fitness: v5 of the boxes plus v5 of the masks
    "v5_seg": {"map50": 0.1, "map50_95": 0.9, "mask_map50": 0.1, "mask_map50_95": 0.9},
    "mask_map50_95": {"mask_map50_95": 1.0},
    # ultralytics' own pose fitness: v5 of the boxes plus v5 of the keypoints
    "v5_pose": {"map50": 0.1, "map50_95": 0.9, "pose_map50": 0.1, "pose_map50_95": 0.9},
    "pose_map50_95": {"pose_map50_95": 1.0},
    # ultralytics' own classify fitness: the mean of top-1 and top-5 accuracy
    "top1_top5": {"top1": 0.5, "top5": 0.5},
}
DEFAULT = "v5"
# The fitness a search of each task measures unless --fitness says otherwise.
# (obb: its box metrics are those of its rotated boxes)
DEFAULT_BY_TASK = {"detect": DEFAULT, "segment": "v5_seg", "obb": DEFAULT, "pose": "v5_pose",
                   "classify": "top1_top5"}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_TERM = re.compile(rf"^(?:(?P<w>{_NUMBER})\s*\*\s*)?(?P<m>[A-Za-z][\w@.:\-]*)$")


@dataclass(frozen=True)
class Fitness:
    """A weighted sum over canonical metric names."""

    weights: tuple[tuple[str, float], ...]
    spec: str

    def __call__(self, metrics: Mapping[str, float]) -> float:
        total = 0.0
        for name, weight in self.weights:
            value = metrics.get(name)
            if value is None or not math.isfinite(float(value)):
                return float("nan")
            total += weight * float(value)
        return total

    def describe(self) -> str:
        return " + ".join(f"{w:g}*{m}" for m, w in self.weights)


def f1_score(precision: float, recall: float) -> float:
    """Harmonic mean of precision and recall (0 when both are 0)."""
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def parse_fitness(spec: str | None) -> Fitness:
    """A preset name (`v5`, `map50_95`, `map50`, `map75`, `f1`) or a sum like `0.2*map50+0.8*map75`.

    Raises:
        FitnessError: with the offending term and the accepted metric names.
    """
    spec = (spec or DEFAULT).strip()
    key = spec.lower()
    if key in PRESETS:
        return Fitness(tuple(PRESETS[key].items()), spec)
    if key in _ALIASES:
        return Fitness(((_ALIASES[key], 1.0),), spec)
    if not key:
        raise FitnessError("--fitness is empty; use a preset such as v5 or a sum like 0.5*map50+0.5*f1")
    weights: dict[str, float] = {}
    for term in key.replace(" ", "").split("+"):
        match = _TERM.match(term)
        if not match:
            raise FitnessError(
                f"--fitness {spec!r}: cannot read the term {term!r}; write terms as "
                "WEIGHT*METRIC joined by '+', e.g. 0.1*map50+0.9*map50_95"
            )
        metric = _ALIASES.get(match["m"])
        if metric is None:
            raise FitnessError(
                f"--fitness {spec!r}: unknown metric {match['m']!r}; "
                f"use one of {', '.join(ALL_METRICS)} (or a preset: "
                f"{', '.join(PRESETS)})"
            )
        weight = float(match["w"]) if match["w"] else 1.0
        weights[metric] = weights.get(metric, 0.0) + weight
    if not any(w > 0 for w in weights.values()):
        raise FitnessError(f"--fitness {spec!r}: at least one weight must be > 0")
    return Fitness(tuple(weights.items()), spec)
