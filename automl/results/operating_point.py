"""The operating point of a deployed detector: which boxes it shows at given thresholds, and how
good those are, overall and per class; thresholds chosen on some images and measured on others.

Everything here works on detections already matched to the ground truth (a box is right when
it overlaps an unclaimed label of its class by IoU 0.5 or more, ultralytics' own matching) and
is pure numpy: the sweep in automl.results.thresholds builds a `Matched` per NMS IoU once.
Precision, recall and F1 are per class, then averaged over the classes with labels in the
images measured (as ultralytics averages its P and R); a class the model never shows counts as
precision 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from automl.errors import ConfigError

OPERATING = ("f1", "precision", "recall")  # the kinds of Metric that judge the boxes shown
_FLOOR = re.compile(r"^(precision|recall)\s*@\s*(precision|recall)\s*=\s*(\S+)$")
# what each ranking metric says when it drove conf to the grid's bottom
OPERATING_HINT = "f1, precision@recall=R or recall@precision=P"


@dataclass(frozen=True)
class Metric:
    """What `--metric` asks for: a ranking metric (mAP-type, scored by automl.fitness) or an
    operating point (F1, precision at a recall floor, recall at a precision floor)."""

    spec: str  # as written back to the user: "f1", "precision@recall=0.9", "map75", ...
    kind: str  # "ranking", or one of OPERATING: what is maximised
    floor: float | None = None  # the other rate's floor, for precision/recall

    @property
    def operating(self) -> bool:
        return self.kind in OPERATING


def parse_metric(text: str) -> Metric:
    """`--metric`: f1, precision@recall=R, recall@precision=P, or a ranking metric.

    Raises:
        ConfigError: a malformed floor (naming the flag and the fix) or an unknown metric.
    """
    from automl.errors import FitnessError
    from automl.fitness import parse_fitness

    spec = str(text).strip().lower().replace(" ", "")
    if spec == "f1":
        return Metric("f1", "f1")
    match = _FLOOR.match(spec)
    if match:
        kind, other, value = match.groups()
        floor = _floor_value(value)
        if kind == other or floor is None:
            raise ConfigError(f"--metric {text}: write precision@recall=R or recall@precision=P "
                              "with R or P in (0, 1], e.g. precision@recall=0.9")
        return Metric(f"{kind}@{other}={floor:g}", kind, floor)
    if "@" in spec and ("=" in spec or spec.startswith(("precision", "recall"))):
        raise ConfigError(f"--metric {text}: write precision@recall=R or recall@precision=P "
                          "with R or P in (0, 1], e.g. precision@recall=0.9")
    try:
        fitness = parse_fitness("v5" if spec == "fitness" else text)
    except FitnessError as e:
        raise ConfigError(f"--metric {text}: {e}") from None
    return Metric("fitness" if spec == "fitness" else fitness.spec, "ranking")


def _floor_value(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value <= 1 else None


@dataclass
class Matched:
    """One NMS IoU's detections (from the grid's lowest conf up), matched to the labels.

    A larger confidence threshold keeps a tail-free prefix of each class's detections, and the
    matching visits detections from the highest confidence down, one class never claiming
    another's labels: so `tp` stays right for any confidence threshold per class.
    """

    det_img: np.ndarray  # (D,) image index of each detection
    det_cls: np.ndarray  # (D,) class id
    det_conf: np.ndarray  # (D,) confidence
    det_tp: np.ndarray  # (D,) bool: matched at IoU 0.5
    gt_img: np.ndarray  # (G,) image index of each label
    gt_cls: np.ndarray  # (G,) class id
    n_images: int
    n_classes: int

    @classmethod
    def from_stats(cls, stats: dict[str, list[np.ndarray]], n_classes: int) -> Matched:
        """From ultralytics' per-image validator stats (tp, conf, pred_cls, target_cls)."""
        n = len(stats["conf"])
        det_n = [len(c) for c in stats["conf"]]
        gt_n = [len(c) for c in stats["target_cls"]]
        # an image without detections has an empty tp (no IoU columns to take the first of)
        tp = [np.asarray(t).reshape(len(c), -1)[:, 0] if len(c) else np.zeros(0, bool)
              for t, c in zip(stats["tp"], stats["conf"], strict=True)]
        return cls(
            det_img=np.repeat(np.arange(n), det_n),
            det_cls=_cat(stats["pred_cls"], int), det_conf=_cat(stats["conf"], float),
            det_tp=_cat(tp, bool), gt_img=np.repeat(np.arange(n), gt_n),
            gt_cls=_cat(stats["target_cls"], int), n_images=n, n_classes=n_classes)

    def counts(self, conf: float | np.ndarray, images: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(right boxes, wrong boxes, labels) per class, for boxes with confidence > conf (one
        value, or one per class) on `images` (a boolean mask over images; None: all)."""
        per_class = np.broadcast_to(np.asarray(conf, dtype=float), (self.n_classes,))
        keep = self.det_conf > per_class[self.det_cls]
        labels = np.ones(len(self.gt_cls), bool)
        if images is not None:
            keep &= images[self.det_img]
            labels = images[self.gt_img]
        tp = np.bincount(self.det_cls[keep & self.det_tp], minlength=self.n_classes)
        fp = np.bincount(self.det_cls[keep & ~self.det_tp], minlength=self.n_classes)
        n_gt = np.bincount(self.gt_cls[labels], minlength=self.n_classes)
        return tp, fp, n_gt


def _cat(parts: Sequence[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate([np.asarray(p).ravel() for p in parts]).astype(dtype) if parts else \
        np.zeros(0, dtype)


@dataclass(frozen=True)
class Rates:
    """Per-class precision, recall and F1 from counts, and their means over the labelled classes."""

    tp: np.ndarray
    fp: np.ndarray
    n_gt: np.ndarray

    @property
    def labelled(self) -> np.ndarray:
        return self.n_gt > 0

    @property
    def precision(self) -> np.ndarray:
        shown = self.tp + self.fp
        return np.divide(self.tp, shown, out=np.zeros(len(shown)), where=shown > 0)

    @property
    def recall(self) -> np.ndarray:
        return np.divide(self.tp, self.n_gt, out=np.zeros(len(self.n_gt)), where=self.n_gt > 0)

    @property
    def f1(self) -> np.ndarray:
        p, r = self.precision, self.recall
        return np.divide(2 * p * r, p + r, out=np.zeros(len(p)), where=(p + r) > 0)

    def mean(self, name: str) -> float:
        """The mean of one rate over the classes that have labels (nan when none has)."""
        if not self.labelled.any():
            return float("nan")
        return float(getattr(self, name)[self.labelled].mean())

    def summary(self) -> dict[str, float]:
        return {k: self.mean(k) for k in ("precision", "recall", "f1")}

    def __add__(self, other: Rates) -> Rates:
        return Rates(self.tp + other.tp, self.fp + other.fp, self.n_gt + other.n_gt)


def objective(metric: Metric, precision, recall, f1):
    """(meets the floor, value): compared as a tuple, the better operating point is larger.

    Below the floor the value is the floored rate itself, so the closest miss wins when no
    threshold meets it. Works on floats or on arrays (one entry per class).
    """
    if metric.kind == "f1":
        return np.ones_like(np.asarray(f1), bool), np.asarray(f1)
    floored = recall if metric.kind == "precision" else precision
    chosen = precision if metric.kind == "precision" else recall
    met = np.asarray(floored) >= metric.floor - 1e-12
    return met, np.where(met, chosen, floored)


def best_global(metric: Metric, matched: dict[float, Matched], confs: Sequence[float],
                images: np.ndarray | None = None) -> tuple[float, float, bool]:
    """The (iou, conf) pair of the grid whose boxes on `images` score best; ties: the highest
    conf (fewer boxes shown for the same score), then the highest IoU. Also whether it meets
    the metric's floor."""
    best, key = None, None
    for iou, m in matched.items():
        for conf in confs:
            r = Rates(*m.counts(conf, images))
            met, value = objective(metric, r.mean("precision"), r.mean("recall"), r.mean("f1"))
            k = (bool(met), _finite(float(value)), conf, iou)
            if key is None or k > key:
                best, key = (iou, conf, bool(met)), k
    return best


def best_per_class(metric: Metric, matched: Matched, confs: Sequence[float], fallback: float,
                   images: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One conf per class, each the grid value that scores best for that class's own boxes on
    `images` (ties: the highest, so a class the model never gets right shows the fewest boxes);
    a class without labels there keeps `fallback`. Also whether each class meets the floor."""
    rates = [Rates(*matched.counts(conf, images)) for conf in confs]
    met = np.stack([objective(metric, r.precision, r.recall, r.f1)[0] for r in rates])
    value = np.stack([objective(metric, r.precision, r.recall, r.f1)[1] for r in rates])
    # per class, the best (meets the floor, value); the last (highest conf) on ties
    picked = np.zeros(matched.n_classes, int)
    for c in range(matched.n_classes):
        keys = list(zip(met[:, c], value[:, c], strict=True))
        picked[c] = max(range(len(confs)), key=lambda i, keys=keys: (keys[i], i))
    out = np.asarray(confs, float)[picked]
    labelled = rates[0].labelled
    out[~labelled] = fallback
    return out, met[picked, np.arange(matched.n_classes)] | ~labelled


def _finite(x: float) -> float:
    return x if np.isfinite(x) else -np.inf


def folds(n_images: int, k: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of each image: a seeded shuffle dealt round, so fold sizes differ by
    at most one."""
    order = np.random.default_rng(seed).permutation(n_images)
    out = np.empty(n_images, int)
    out[order] = np.arange(n_images) % k
    return out


def check_folds(k: int, n_images: int, split: str) -> None:
    """Each fold must hold an image, and each choice must see one.

    Raises:
        ConfigError: naming --folds, the split's image count and the fix.
    """
    if k < 2:
        raise ConfigError(f"--folds {k}: must be at least 2 (thresholds chosen on some images, "
                          "measured on the others)")
    if n_images < k:
        raise ConfigError(f"--folds {k}: the {split} split has {n_images} image(s); use "
                          f"--folds {max(n_images, 2)} or fewer, or add {split} images")


@dataclass
class HeldOut:
    """Thresholds chosen on k-1 folds and measured on the remaining one, each fold in turn; the
    counts of the k measurements added up (every image measured once, by thresholds that did
    not see it)."""

    k: int
    seed: int
    global_rates: Rates
    per_class_rates: Rates | None
    picks: list[tuple[float, float]]  # the (iou, conf) each fold's choice made


def held_out(metric: Metric, matched: dict[float, Matched], confs: Sequence[float], k: int,
             seed: int, per_class: bool) -> HeldOut:
    """Cross-validated operating point of the whole choice (global pair, then per-class confs at
    its IoU), for an operating-point metric."""
    some = next(iter(matched.values()))
    fold_of = folds(some.n_images, k, seed)
    total_g = total_c = None
    picks = []
    for f in range(k):
        inside, outside = fold_of != f, fold_of == f
        iou, conf, _ = best_global(metric, matched, confs, inside)
        picks.append((iou, conf))
        g = Rates(*matched[iou].counts(conf, outside))
        total_g = g if total_g is None else total_g + g
        if per_class:
            per, _ = best_per_class(metric, matched[iou], confs, conf, inside)
            c = Rates(*matched[iou].counts(per, outside))
            total_c = c if total_c is None else total_c + c
    return HeldOut(k=k, seed=seed, global_rates=total_g, per_class_rates=total_c, picks=picks)
