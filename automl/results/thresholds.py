"""Tune the NMS IoU and confidence thresholds of trained weights for the metric that matters.

The model runs over the split ONCE, through ultralytics' own DetectionValidator (same letterbox,
rect batches, batch size, max_det, single_cls and matching as `model.val`), and its raw pre-NMS
outputs are cached on disk beside the weights. Every (IoU, conf) pair then re-runs only the
validator's NMS + matching + metrics on the cache. Anchors whose best class score is at or below
the smallest confidence of the grid can never survive NMS at any pair of the grid, so they are
dropped from the cache; what NMS sees for each pair is exactly what it sees in `model.val`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from automl.errors import ConfigError
from automl.fitness import parse_fitness
from automl.options import parse_grid
from automl.results.operating_point import (
    OPERATING_HINT,
    HeldOut,
    Matched,
    Metric,
    Rates,
    best_global,
    best_per_class,
    check_folds,
    folds,
    held_out,
    objective,
    parse_metric,
)
from automl.ultralytics_env import quiet_ultralytics
from automl.weights import check_classes, load_detection_model

# 10 x 10 by default: conf from ultralytics' val default (0.001) up to its predict default (0.25)
# and beyond; IoU around ultralytics' val default 0.7 (the seed project won with 0.68).
DEFAULT_CONF_GRID = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.35)
DEFAULT_IOU_GRID = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)
# The default judges the boxes a deployed model shows (docs/commands.md#thresholds says why).
DEFAULT_METRIC = "f1"
DEFAULT_FOLDS = 5
FOLD_SEED = 0
CACHE_VERSION = 1
# ultralytics' non_max_suppression default (the validator does not change it): candidates per
# image beyond this are cut by score before NMS.
_MAX_NMS = 30000
# Cached images sent through NMS at once: bounds memory (images x anchors kept x channels).
_REPLAY_CHUNK = 32


@dataclass
class ThresholdsResult:
    """The sweep: every pair's metrics, the chosen pair (and per-class confs), how the choice
    does on all images (in-sample) and on folds it did not see (held out), and the files written.

    A table cell holds ultralytics' metrics at that pair (precision and recall there are at
    the confidence of the best F1 above the threshold, as `model.val` reports them), the
    operating point of the boxes kept at the pair (`op_precision`, `op_recall`, `op_f1`), and
    the chosen metric's `score`.
    """

    metric: str
    iou_grid: tuple[float, ...]
    conf_grid: tuple[float, ...]
    table: dict[tuple[float, float], dict[str, float]]  # (iou, conf) -> metrics + "score"
    best_iou: float
    best_conf: float
    best_score: float
    ranked: bool = False  # a ranking (mAP-type) metric, not an operating point
    floor_met: bool = True  # precision@recall=R / recall@precision=P: some pair reaches it
    names: dict[int, str] = field(default_factory=dict)
    n_images: int = 0
    global_rates: Rates | None = None  # in-sample, at the chosen pair
    per_class_conf: np.ndarray | None = None  # with per_class: conf per class id
    per_class_rates: Rates | None = None  # in-sample, at the per-class confs
    held_out: HeldOut | None = None
    held_out_score: float | None = None  # a ranking metric's value on the held-out folds
    yaml_path: Path | None = None
    html_path: Path | None = None
    cache_path: Path | None = None
    cache_hit: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    def score(self, iou: float, conf: float) -> float:
        return self.table[(iou, conf)]["score"]

    @property
    def per_class(self) -> dict[str, float] | None:
        """Class name -> its confidence threshold (with per_class)."""
        if self.per_class_conf is None:
            return None
        return {self.names[i]: float(self.per_class_conf[i]) for i in sorted(self.names)}

    def as_dict(self) -> dict[str, Any]:
        best = self.table[(self.best_iou, self.best_conf)]
        out: dict[str, Any] = {
            "iou": self.best_iou, "conf": self.best_conf, "metric": self.metric,
            "value": round(self.best_score, 6),
            "metrics": {k: round(v, 6) for k, v in best.items()
                        if k != "score" and not k.startswith("op_")},
        }
        if self.global_rates is not None:
            out["in_sample"] = _rounded(self.global_rates.summary())
        if self.held_out is not None:
            h = self.held_out
            held = {"folds": h.k, "seed": h.seed, **_rounded(h.global_rates.summary())}
            if self.held_out_score is not None:
                held[self.metric] = round(self.held_out_score, 6)
            out["held_out"] = held
        if self.per_class is not None:
            out["per_class"] = self.per_class
            out["per_class_in_sample"] = _rounded(self.per_class_rates.summary())
            if self.held_out is not None and self.held_out.per_class_rates is not None:
                out["per_class_held_out"] = _rounded(self.held_out.per_class_rates.summary())
        return out


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 6) for k, v in d.items()}


def metric_fitness(metric: str):
    """The scoring function of a ranking --metric: a preset, 'fitness' (ultralytics'
    0.1*mAP50+0.9*mAP50-95), or any automl fitness expression."""
    return parse_fitness("v5" if metric.strip().lower() == "fitness" else metric)


def _cache_key(weights: Path, data: Path, split: str, images: Sequence[Path],
               imgsz: int | None, batch: int | None, device: str | None) -> dict[str, Any]:
    """What the cached predictions and ground truth depend on; a different key means recompute.

    Covers the weights, data.yaml's text and every image and label file of the split (path,
    size, mtime), so relabelling or swapping images behind an unchanged data.yaml is noticed.
    """
    import ultralytics

    from automl.data.dataset import files_fingerprint

    st = weights.stat()
    digest = hashlib.sha1(data.read_bytes()).hexdigest()[:16]
    return {
        "version": CACHE_VERSION, "ultralytics": ultralytics.__version__,
        "weights": str(weights.resolve()), "weights_size": st.st_size,
        "weights_mtime_ns": st.st_mtime_ns, "data": str(data.resolve()), "data_sha1": digest,
        "files": files_fingerprint(images),
        "split": split, "imgsz": imgsz, "batch": batch, "device": device,
    }


def cache_path_for(weights: Path, split: str) -> Path:
    """Where the raw predictions of `weights` on `split` are cached: beside the weights."""
    return weights.with_name(f"{weights.stem}.{split}.raw_preds.npz")


def _caching_validator_class():
    from ultralytics.models.yolo.detect import DetectionValidator

    class CachingValidator(DetectionValidator):
        """DetectionValidator that records raw predictions and prepared ground truth per image,
        and re-runs NMS + metrics from such records (a sweep)."""

        conf_floor = 0.0
        raw_records: list | None = None
        gt_records: list | None = None
        kept_stats: dict | None = None  # the per-image stats the last get_stats consumed

        def get_stats(self):
            self.kept_stats = {k: list(v) for k, v in self.metrics.stats.items()}
            return super().get_stats()

        def postprocess(self, preds):
            if self.raw_records is not None:  # the one inference pass (not a sweep)
                raw = preds[0] if isinstance(preds, (list, tuple)) else preds
                keep = raw[:, 4:].amax(1) > self.conf_floor  # (B, anchors); detect: all are classes
                for i in range(raw.shape[0]):
                    self.raw_records.append(raw[i][:, keep[i]].T.float().cpu().numpy())
            return super().postprocess(preds)

        def _prepare_batch(self, si, batch):
            if "cached" in batch:
                return batch["cached"][si]
            pbatch = super()._prepare_batch(si, batch)
            if self.gt_records is None:  # not caching: an operating point only
                return pbatch
            self.gt_records.append({
                "cls": pbatch["cls"].cpu().numpy(), "bboxes": pbatch["bboxes"].cpu().numpy(),
                "ori_shape": tuple(int(v) for v in pbatch["ori_shape"]),
                "imgsz": tuple(int(v) for v in pbatch["imgsz"]),
                "im_file": str(pbatch["im_file"]),
            })
            return pbatch

    return CachingValidator


@dataclass
class RawCache:
    """Raw predictions (rows of xywh + class scores, anchors above conf_floor) and ground truth."""

    preds: list[np.ndarray]
    gt: list[dict[str, Any]]
    names: dict[int, str]
    args: dict[str, Any]  # resolved validator args the sweep needs (max_det, single_cls, ...)
    conf_floor: float
    key: dict[str, Any]

    def save(self, path: Path) -> None:
        lengths = np.array([len(p) for p in self.preds], dtype=np.int64)
        n_channels = self.preds[0].shape[1] if self.preds else 4 + len(self.names)
        gt_lengths = np.array([len(g["cls"]) for g in self.gt], dtype=np.int64)
        meta = {"names": {str(k): v for k, v in self.names.items()}, "args": self.args,
                "conf_floor": self.conf_floor, "key": self.key,
                "ori_shape": [g["ori_shape"] for g in self.gt],
                "imgsz": [g["imgsz"] for g in self.gt], "im_file": [g["im_file"] for g in self.gt]}
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(
            tmp, meta=np.array(json.dumps(meta)), lengths=lengths, gt_lengths=gt_lengths,
            preds=np.concatenate(self.preds) if lengths.sum() else np.zeros((0, n_channels), np.float32),
            gt_cls=np.concatenate([g["cls"] for g in self.gt]) if self.gt else np.zeros(0, np.float32),
            gt_bboxes=(np.concatenate([g["bboxes"] for g in self.gt]).reshape(-1, 4)
                       if self.gt else np.zeros((0, 4), np.float32)),
        )
        os.replace(tmp, path)  # a crash mid-write never leaves a truncated cache

    @classmethod
    def load(cls, path: Path) -> RawCache | None:
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                preds = np.split(z["preds"], np.cumsum(z["lengths"])[:-1])
                cut = np.cumsum(z["gt_lengths"])[:-1]
                cls_ = np.split(z["gt_cls"], cut)
                boxes = np.split(z["gt_bboxes"], cut)
        except Exception:  # unreadable or from another version: recompute
            return None
        gt = [{"cls": c, "bboxes": b, "ori_shape": tuple(o), "imgsz": tuple(s), "im_file": f}
              for c, b, o, s, f in zip(cls_, boxes, meta["ori_shape"], meta["imgsz"],
                                       meta["im_file"], strict=True)]
        return cls(preds=list(preds), gt=gt, names={int(k): v for k, v in meta["names"].items()},
                   args=meta["args"], conf_floor=float(meta["conf_floor"]), key=meta["key"])


def compute_raw_cache(model, *, data: Path, split: str, conf_floor: float, imgsz: int | None,
                      batch: int | None, device: str | None, key: dict[str, Any]) -> RawCache:
    """One `model.val` pass through the caching validator (so preprocessing is ultralytics' own)."""
    holder = {}
    validator_class = _caching_validator_class()

    def make(args, _callbacks=None):
        v = validator_class(args=args, _callbacks=_callbacks)
        v.conf_floor, v.raw_records, v.gt_records = conf_floor, [], []
        holder["v"] = v
        return v

    kwargs: dict[str, Any] = {"data": str(data), "split": split, "conf": conf_floor,
                              "plots": False, "save_json": False, "verbose": False}
    for k, v in (("imgsz", imgsz), ("batch", batch), ("device", device)):
        if v not in (None, ""):
            kwargs[k] = v
    with tempfile.TemporaryDirectory(prefix="automl-thresholds-") as tmp:
        model.val(validator=make, project=tmp, name="val", **kwargs)
    v = holder["v"]
    args = {k: getattr(v.args, k) for k in ("max_det", "single_cls", "agnostic_nms", "task")}
    return RawCache(preds=v.raw_records, gt=v.gt_records, names=dict(v.names), args=args,
                    conf_floor=conf_floor, key=key)


@dataclass(frozen=True)
class AppliedThresholds:
    """The thresholds of a thresholds.yaml as a deployment applies them."""

    path: Path
    iou: float
    conf: np.ndarray  # per class id: its per_class value, else the global conf
    per_class: bool

    def describe(self) -> str:
        how = "per-class confs" if self.per_class else f"conf {float(self.conf[0]):g}"
        return f"{how}, iou {self.iou:g} ({self.path})"


def read_thresholds_file(path: str | Path, names: dict[int, str]) -> AppliedThresholds:
    """A thresholds.yaml that `automl thresholds` wrote, checked against the model's classes.

    Raises:
        ConfigError: an unreadable file, a value outside (0, 1), or a class the model lacks.
    """
    path = Path(path)
    fix = "run automl thresholds on these weights to write it again"
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"--thresholds {path}: cannot be read ({type(e).__name__}); {fix}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"--thresholds {path}: not a thresholds.yaml (no iou, conf); {fix}")
    values = {k: doc.get(k) for k in ("iou", "conf")}
    per = doc.get("per_class") or {}
    if not isinstance(per, dict):
        raise ConfigError(f"--thresholds {path}: per_class must map class names to confs; {fix}")
    for key, value in [*values.items(), *((f"per_class.{n}", v) for n, v in per.items())]:
        if not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ConfigError(f"--thresholds {path}: {key} is {value!r}, not a number in (0, 1); "
                              f"{fix}")
    ids = {name: i for i, name in names.items()}
    unknown = [n for n in per if n not in ids]
    if unknown:
        raise ConfigError(f"--thresholds {path}: per_class names {', '.join(map(repr, unknown))}, "
                          f"not classes of the weights; {fix}")
    conf = np.full(max(names, default=-1) + 1, float(values["conf"]))
    for name, value in per.items():
        conf[ids[name]] = float(value)
    return AppliedThresholds(path=path, iou=float(values["iou"]), conf=conf, per_class=bool(per))


def operating_point_of(model_path: Path, thresholds: AppliedThresholds, *, data: Path,
                       imgsz: int, batch: int = 1, device: str = "cpu") -> dict[str, float]:
    """Precision, recall and F1 of the boxes a model file (.pt or an export) keeps at
    `thresholds` on the val split: ultralytics' validator loading the file."""
    from ultralytics import YOLO

    holder = {}

    def make(args, _callbacks=None):
        holder["v"] = _caching_validator_class()(args=args, _callbacks=_callbacks)
        return holder["v"]

    with quiet_ultralytics(), tempfile.TemporaryDirectory(prefix="automl-op-") as tmp:
        YOLO(str(model_path), task="detect").val(
            validator=make, data=str(data), imgsz=imgsz, batch=batch, device=device, split="val",
            conf=float(thresholds.conf.min()), iou=thresholds.iou, plots=False, verbose=False,
            save_json=False, project=tmp, name="val")
    matched = Matched.from_stats(holder["v"].kept_stats, len(thresholds.conf))
    return Rates(*matched.counts(thresholds.conf)).summary()


class CachedSweep:
    """Re-runs only NMS, matching and metrics of ultralytics' DetectionValidator on a RawCache."""

    def __init__(self, cache: RawCache) -> None:
        import torch

        self._torch = torch
        self.cache = cache
        self._tmp = tempfile.TemporaryDirectory(prefix="automl-sweep-")
        v = _caching_validator_class()(
            save_dir=Path(self._tmp.name),
            args={**cache.args, "plots": False, "save_json": False, "save_txt": False,
                  "mode": "val", "verbose": False})
        v.device = torch.device("cpu")
        v.data = {"val": ""}
        # training=True only skips init_metrics' dataset scan for max_det: the cached args
        # already hold the max_det that scan settled on.
        v.training = True
        self.v = v
        self._base: dict[float, dict[str, list]] = {}  # per IoU: per-image stats at the lowest conf
        self.matched: dict[float, Matched] = {}
        self._model_stub = type("ModelStub", (), {"names": cache.names, "end2end": False})()
        n_channels = cache.preds[0].shape[1] if cache.preds else 4 + len(cache.names)
        self._gt = [{"cls": torch.from_numpy(g["cls"]), "bboxes": torch.from_numpy(g["bboxes"]),
                     "ori_shape": g["ori_shape"], "imgsz": g["imgsz"], "ratio_pad": None,
                     "im_file": g["im_file"]} for g in cache.gt]
        # Chunks of images padded to a common anchor count (zero rows never pass conf > 0), at
        # least 7 so NMS never mistakes a (B, 4+nc, 6) tensor for end-to-end output.
        self._chunks = []
        for start in range(0, len(cache.preds), _REPLAY_CHUNK):
            part = cache.preds[start:start + _REPLAY_CHUNK]
            width = max(7, max(len(p) for p in part))
            block = np.zeros((len(part), width, n_channels), dtype=np.float32)
            for i, p in enumerate(part):
                block[i, :len(p)] = p
            self._chunks.append((torch.from_numpy(block).transpose(1, 2), self._gt[start:start + len(part)]))

    def metrics(self, iou: float, conf: float) -> dict[str, float]:
        """Precision, recall, mAP50, mAP75, mAP50-95 and F1 exactly as `model.val(conf=, iou=)`."""
        self._run_nms_and_matching(iou, conf)
        return self._finish()

    def sweep(self, ious: Sequence[float], confs: Sequence[float]) -> dict[tuple[float, float],
                                                                        dict[str, float]]:
        """Metrics of every (iou, conf) pair; the same numbers as `metrics` for each pair.

        Per IoU, NMS and matching run once at the smallest conf, and each larger conf keeps the
        detections scoring above it. Exact, because greedy NMS visits boxes from the highest
        score down (a box is only ever suppressed by a higher-scoring kept one), max_det keeps
        the highest scores, and the validator's greedy matching visits detections in the same
        order: raising conf removes a tail, never changes what comes before it. When an image
        has more candidates than NMS's max_nms cap at the smallest conf, the cap could cut
        differently, and that IoU falls back to running NMS per pair (the operating points of
        `matched` still come from the smallest conf's run).

        Keeps each IoU's matched detections (`matched`, `ranking` use them).
        """
        confs = sorted(confs)
        capped = any(int((p[:, 4:] > confs[0]).sum()) > _MAX_NMS for p in self.cache.preds)
        table = {}
        for iou in ious:
            self._run_nms_and_matching(iou, confs[0])
            self._base[iou] = {k: list(v) for k, v in self.v.metrics.stats.items()}
            self.v.metrics.clear_stats()
            self.matched[iou] = Matched.from_stats(self._base[iou], len(self.cache.names))
            for conf in confs:
                table[(iou, conf)] = self.metrics(iou, conf) if capped else self.ranking(
                    [(iou, conf, None)])
        return table

    def ranking(self, parts: Sequence[tuple[float, float, np.ndarray | None]]) -> dict[str, float]:
        """ultralytics' metrics of the detections above conf after NMS at iou, on the images of
        each part (a mask; None: all), the parts' images pooled. Needs `sweep` to have run."""
        stats = self.v.metrics.stats
        for k in stats:
            stats[k].clear()
        for iou, conf, images in parts:
            base = self._base[iou]
            for i, c in enumerate(base["conf"]):
                if images is not None and not images[i]:
                    continue
                keep = c > conf
                for k in ("tp", "conf", "pred_cls"):
                    stats[k].append(base[k][i][keep])
                for k in ("target_cls", "target_img"):
                    stats[k].append(base[k][i])
        return self._finish()

    def _run_nms_and_matching(self, iou: float, conf: float) -> None:
        v = self.v
        v.args.conf, v.args.iou = conf, iou
        v.init_metrics(self._model_stub)
        for raw, gt in self._chunks:
            v.update_metrics(v.postprocess(raw), {"cached": gt})

    def _finish(self) -> dict[str, float]:
        from automl.epochs import box_metrics

        self.v.get_stats()  # ap_per_class over the collected stats, then clears them
        return box_metrics(self.v.metrics.box)

    def close(self) -> None:
        self._tmp.cleanup()


def tune_thresholds(
    *,
    weights: str | Path,
    data: str | Path,
    split: str = "val",
    metric: str = DEFAULT_METRIC,
    per_class: bool = False,
    folds: int = DEFAULT_FOLDS,
    conf_grid: Iterable[str | float] | None = None,
    iou_grid: Iterable[str | float] | None = None,
    imgsz: int | None = None,
    batch: int | None = None,
    device: str | None = None,
    write: bool = True,
    log: Callable[[str], None] | None = None,
) -> ThresholdsResult:
    """Sweep NMS IoU x confidence on cached raw predictions and pick the best pair for `metric`.

    Args:
        weights: a trained detection .pt; the cache, thresholds.yaml and the heatmap go beside it.
        data, split: the data.yaml and the split (val, test, train) to measure on.
        metric: what the model is for. Deployed: f1 (the default), precision@recall=R,
            recall@precision=P, judged on the boxes kept at the thresholds. Ranked: fitness
            (0.1*mAP50+0.9*mAP50-95), map50_95, map75, map50, or an automl fitness expression.
        per_class: also choose one conf per class (an operating-point metric only), at the
            chosen IoU; written to thresholds.yaml under per_class.
        folds: the split's images are dealt into this many folds (seeded); each fold is measured
            with thresholds chosen on the others: the held-out figures.
        conf_grid, iou_grid: values in (0, 1); defaults DEFAULT_CONF_GRID, DEFAULT_IOU_GRID.
        imgsz, batch, device: as for `model.val` (default: the weights' imgsz, batch 16, auto).
        write: write thresholds.yaml and thresholds.html beside the weights.
        log: where the table and progress go (default: stdout).

    Raises:
        ConfigError: a grid value outside (0, 1), an unknown metric or split, --per-class with a
            ranking metric, more folds than images, weights that are not a detection model, a
            data.yaml that cannot be read.
    """
    from automl.data.dataset import load_dataset, split_images
    from automl.options import check

    check("thresholds", locals())
    say = log or (lambda line: print(line, flush=True))
    confs = parse_grid(conf_grid, "--conf-grid", DEFAULT_CONF_GRID)
    ious = parse_grid(iou_grid, "--iou-grid", DEFAULT_IOU_GRID)
    chosen_metric = parse_metric(metric)
    check_per_class(chosen_metric, per_class)
    dataset = load_dataset(data)  # names the file and the fix when data.yaml is unusable
    if split == "test" and not (yaml.safe_load(Path(data).read_text()) or {}).get("test"):
        raise ConfigError(f"--split test: {data} has no 'test' entry; add one or use --split val")
    # the split's image files, resolved once (load_dataset has train and val already)
    images = split_images(data, split) if split == "test" else getattr(dataset, split)
    weights, data = Path(weights), Path(data)
    # the matching would pair the model's class ids with another data set's: every number of
    # the sweep would be about the wrong classes
    model = load_detection_model(weights, "thresholds tunes", nms=True)
    check_classes(model, dataset, data, weights, "tune the thresholds on")
    check_folds(folds, len(images), split)

    timings: dict[str, float] = {}
    key = _cache_key(weights, data, split, images, imgsz, batch, device)
    cache_file = cache_path_for(weights, split)
    cache = RawCache.load(cache_file) if cache_file.is_file() else None
    hit = cache is not None and cache.key == key and cache.conf_floor <= confs[0]
    with quiet_ultralytics():
        if not hit:
            t = time.perf_counter()
            say(f"running {weights} over {data} ({split}) once; raw predictions -> {cache_file}")
            cache = compute_raw_cache(model, data=data, split=split, conf_floor=confs[0],
                                      imgsz=imgsz, batch=batch, device=device, key=key)
            cache.save(cache_file)
            timings["inference"] = time.perf_counter() - t
        else:
            say(f"raw predictions from cache {cache_file}")
        t = time.perf_counter()
        sweeper = CachedSweep(cache)
        try:
            result = _choose(sweeper, chosen_metric, ious, confs, per_class, folds)
        finally:
            sweeper.close()
        timings["sweep"] = time.perf_counter() - t
    result.cache_path, result.cache_hit, result.seconds = cache_file, hit, timings

    say(format_table(result))
    say(f"best: iou {result.best_iou:g}, conf {result.best_conf:g} -> {result.metric} "
        f"{result.best_score:.4f} ({len(result.table)} pairs in {timings['sweep']:.2f}s from the "
        "cache)")
    for line in describe(result):
        say(line)
    if write:
        result.yaml_path = write_thresholds_yaml(result, weights, data, split)
        result.html_path = write_heatmap(result, weights.with_name("thresholds.html"))
        say(f"wrote {result.yaml_path} and {result.html_path}")
    return result


def check_per_class(metric: Metric, per_class: bool) -> None:
    """Per-class confs only for a metric of the boxes shown.

    Raises:
        ConfigError: --per-class with a ranking metric, naming the ones that go with it.
    """
    if per_class and not metric.operating:
        raise ConfigError(f"--per-class with --metric {metric.spec}: a ranking metric is best at "
                          f"the lowest conf for every class; use --metric {OPERATING_HINT}")


def _choose(sweeper: CachedSweep, metric: Metric, ious: Sequence[float],
            confs: Sequence[float], per_class: bool, k: int) -> ThresholdsResult:
    """The sweep's table, the pair (and per-class confs) chosen on all images, and the same
    choice made k times on k-1 folds and measured on the fold left out."""
    table = sweeper.sweep(ious, confs)
    matched = sweeper.matched
    score_of = None if metric.operating else metric_fitness(metric.spec)
    for (iou, conf), m in table.items():
        rates = Rates(*matched[iou].counts(conf))
        m.update({f"op_{name}": v for name, v in rates.summary().items()})
        if score_of is not None:
            value = score_of(m)
        else:
            met, value = objective(metric, m["op_precision"], m["op_recall"], m["op_f1"])
            value = float(value) if met else math.nan
        m["score"] = value if math.isfinite(value) else math.nan

    if metric.operating:
        best_iou, best_conf, met = best_global(metric, matched, confs)
    else:
        best_iou, best_conf = _best_ranked(table)
        met = True
    result = ThresholdsResult(
        metric=metric.spec, iou_grid=tuple(ious), conf_grid=tuple(confs), table=table,
        best_iou=best_iou, best_conf=best_conf, best_score=table[(best_iou, best_conf)]["score"],
        ranked=not metric.operating, floor_met=met, names=dict(sweeper.cache.names),
        n_images=matched[best_iou].n_images)
    if not met:  # the closest miss: its own value instead of nan (describe says the miss)
        result.best_score = table[(best_iou, best_conf)][f"op_{metric.kind}"]
    if per_class:
        result.per_class_conf, _ = best_per_class(metric, matched[best_iou], confs, best_conf)
        result.per_class_rates = Rates(*matched[best_iou].counts(result.per_class_conf))
    result.global_rates = Rates(*matched[best_iou].counts(best_conf))

    if metric.operating:
        result.held_out = held_out(metric, matched, confs, k, FOLD_SEED, per_class)
    else:
        fold_of = folds(matched[best_iou].n_images, k, FOLD_SEED)
        parts, total = [], None
        for f in range(k):
            inside = fold_of != f
            inner = {pair: {**m, "score": score_of(sweeper.ranking([(*pair, inside)]))}
                     for pair, m in table.items()}
            iou, conf = _best_ranked(inner)
            parts.append((iou, conf, fold_of == f))
            r = Rates(*matched[iou].counts(conf, fold_of == f))
            total = r if total is None else total + r
        result.held_out = HeldOut(k=k, seed=FOLD_SEED, global_rates=total, per_class_rates=None,
                                  picks=[(i, c) for i, c, _ in parts])
        result.held_out_score = score_of(sweeper.ranking(parts))
    return result


def _best_ranked(table: dict[tuple[float, float], dict[str, float]]) -> tuple[float, float]:
    """The pair of the highest score; ties: the lowest conf, then the highest IoU."""
    return max(table, key=lambda k: (_finite(table[k]["score"]), -k[1], k[0]))


def _finite(x: float) -> float:
    return x if math.isfinite(x) else -math.inf


def _prf(r: dict[str, float] | Rates) -> str:
    s = r.summary() if isinstance(r, Rates) else r
    return f"precision {s['precision']:.4f}, recall {s['recall']:.4f}, F1 {s['f1']:.4f}"


def describe(result: ThresholdsResult) -> list[str]:
    """The lines after the table: the chosen operating point in-sample and held out, the warning
    for a ranking metric at the grid's lowest conf, and the per-class confs."""
    n, h = result.n_images, result.held_out
    lines = []
    if not result.floor_met:
        floored = "recall" if result.metric.startswith("precision") else "precision"
        reached = result.table[(result.best_iou, result.best_conf)][f"op_{floored}"]
        lines.append(f"note: no pair of the grid meets {result.metric}; chose the closest, "
                     f"{floored} {reached:.4f}")
    lines.append(f"held out ({h.k} folds of the {n} images: thresholds chosen on the others, "
                 f"measured on each): {_prf(h.global_rates)}"
                 + (f", {result.metric} {result.held_out_score:.4f}"
                    if result.held_out_score is not None else "")
                 + "  <- what to expect on new images")
    lines.append(f"in-sample (chosen and measured on all {n} images): {_prf(result.global_rates)}")
    if result.ranked and result.best_conf == result.conf_grid[0]:
        lines.append(f"warning: {result.metric} drove conf to {result.best_conf:g}, the grid's "
                     "lowest: right to rank models, but a deployed model would show every box "
                     f"down to it; to deploy, pass --metric {OPERATING_HINT}")
    if result.per_class_conf is not None:
        from automl.console import text_table

        c = result.per_class_rates
        g_out, c_out = h.global_rates, h.per_class_rates
        rows = [[result.names[i], f"{c.n_gt[i]}", f"{result.per_class_conf[i]:g}",
                 f"{c.precision[i]:.3f}", f"{c.recall[i]:.3f}", f"{c.f1[i]:.3f}",
                 f"{g_out.f1[i]:.3f}", f"{c_out.f1[i]:.3f}"]
                for i in sorted(result.names) if i < len(c.n_gt)]
        lines.append(text_table(["class", "labels", "conf", "P", "R", "F1 (in-sample)",
                                 "F1 held out: global", "per class"], rows))
        lines.append(f"per-class confs at iou {result.best_iou:g}, held out: {_prf(c_out)} "
                     f"(global conf {result.best_conf:g}, held out: {_prf(g_out)})")
    return lines


def format_table(result: ThresholdsResult) -> str:
    """Rows IoU, columns conf, cells the metric (on all images; '-' below its floor); the best
    cell marked with *."""
    from automl.console import text_table

    header = [f"{result.metric} | iou \\ conf", *(f"{c:g}" for c in result.conf_grid)]
    rows = []
    for iou in result.iou_grid:
        row = [f"{iou:g}"]
        for conf in result.conf_grid:
            mark = "*" if (iou, conf) == (result.best_iou, result.best_conf) else " "
            value = result.score(iou, conf)
            row.append(f"{value:.4f}{mark}" if math.isfinite(value) else f"-{mark}")
        rows.append(row)
    return text_table(header, rows)


def write_thresholds_yaml(result: ThresholdsResult, weights: Path, data: Path, split: str) -> Path:
    path = weights.with_name("thresholds.yaml")
    doc = {
        **result.as_dict(),
        "weights": str(weights.resolve()), "data": str(data.resolve()), "split": split,
        "conf_grid": list(result.conf_grid), "iou_grid": list(result.iou_grid),
        "use": f"yolo predict model={weights.name} conf={result.best_conf:g} iou={result.best_iou:g}",
    }
    if result.per_class_conf is not None:
        doc["use_per_class"] = (f"predict at iou {result.best_iou:g} and conf "
                                f"{min(result.per_class.values()):g}, then keep each box whose "
                                "confidence is above its class's value in per_class")
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def write_heatmap(result: ThresholdsResult, path: Path) -> Path:
    """A plotly heatmap (IoU x conf) of the metric; plotly.js is embedded so it opens offline."""
    import plotly.graph_objects as go

    z = [[result.score(iou, conf) for conf in result.conf_grid] for iou in result.iou_grid]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"{c:g}" for c in result.conf_grid], y=[f"{i:g}" for i in result.iou_grid],
        colorscale="Viridis", colorbar={"title": result.metric},
        hovertemplate="iou %{y}, conf %{x}: %{z:.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[f"{result.best_conf:g}"], y=[f"{result.best_iou:g}"], mode="markers",
                             marker={"symbol": "x", "size": 14, "color": "red"}, name="best"))
    fig.update_layout(title=f"{result.metric} by NMS IoU and confidence threshold (best: iou "
                            f"{result.best_iou:g}, conf {result.best_conf:g}, "
                            f"{result.best_score:.4f})",
                      xaxis_title="confidence threshold", yaxis_title="NMS IoU threshold")
    fig.write_html(path, include_plotlyjs=True)
    return path
