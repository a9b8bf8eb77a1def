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
from automl.execution.trainer import quiet_ultralytics
from automl.fitness import parse_fitness
from automl.options import parse_grid
from automl.weights import check_classes, load_detection_model

# 10 x 10 by default: conf from ultralytics' val default (0.001) up to its predict default (0.25)
# and beyond; IoU around ultralytics' val default 0.7 (the seed project won with 0.68).
DEFAULT_CONF_GRID = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.35)
DEFAULT_IOU_GRID = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)
METRIC_CHOICES = ("fitness", "map50_95", "map75", "map50", "f1")
CACHE_VERSION = 1
# ultralytics' non_max_suppression default (the validator does not change it): candidates per
# image beyond this are cut by score before NMS.
_MAX_NMS = 30000
# Cached images sent through NMS at once: bounds memory (images x anchors kept x channels).
_REPLAY_CHUNK = 32


@dataclass
class ThresholdsResult:
    """The sweep: every pair's metrics, the best pair, and the files written."""

    metric: str
    iou_grid: tuple[float, ...]
    conf_grid: tuple[float, ...]
    table: dict[tuple[float, float], dict[str, float]]  # (iou, conf) -> metrics + "score"
    best_iou: float
    best_conf: float
    best_score: float
    yaml_path: Path | None = None
    html_path: Path | None = None
    cache_path: Path | None = None
    cache_hit: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    def score(self, iou: float, conf: float) -> float:
        return self.table[(iou, conf)]["score"]

    def as_dict(self) -> dict[str, Any]:
        best = self.table[(self.best_iou, self.best_conf)]
        return {
            "iou": self.best_iou, "conf": self.best_conf, "metric": self.metric,
            "value": round(self.best_score, 6),
            "metrics": {k: round(v, 6) for k, v in best.items() if k != "score"},
        }


def metric_fitness(metric: str):
    """The scoring function of --metric: a preset, 'fitness' (ultralytics' 0.1*mAP50+0.9*mAP50-95),
    or any automl fitness expression."""
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
        differently, and that IoU falls back to running NMS per pair.
        """
        confs = sorted(confs)
        capped = any(int((p[:, 4:] > confs[0]).sum()) > _MAX_NMS for p in self.cache.preds)
        table = {}
        for iou in ious:
            if capped:
                for conf in confs:
                    table[(iou, conf)] = self.metrics(iou, conf)
                continue
            self._run_nms_and_matching(iou, confs[0])
            base = {k: list(v) for k, v in self.v.metrics.stats.items()}
            for conf in confs:
                stats = self.v.metrics.stats
                for k in ("tp", "conf", "pred_cls"):
                    stats[k][:] = [a[c > conf] for a, c in zip(base[k], base["conf"], strict=True)]
                for k in ("target_cls", "target_img"):
                    stats[k][:] = base[k]
                table[(iou, conf)] = self._finish()
        return table

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
    metric: str = "fitness",
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
        metric: fitness (0.1*mAP50+0.9*mAP50-95), map50_95, map75, map50, f1, or an expression.
        conf_grid, iou_grid: values in (0, 1); defaults DEFAULT_CONF_GRID, DEFAULT_IOU_GRID.
        imgsz, batch, device: as for `model.val` (default: the weights' imgsz, batch 16, auto).
        write: write thresholds.yaml and thresholds.html beside the weights.
        log: where the table and progress go (default: stdout).

    Raises:
        ConfigError: a grid value outside (0, 1), an unknown metric or split, weights that are
            not a detection model, a data.yaml that cannot be read.
    """
    from automl.data.dataset import load_dataset, split_images
    from automl.options import check

    check("thresholds", locals())
    say = log or (lambda line: print(line, flush=True))
    confs = parse_grid(conf_grid, "--conf-grid", DEFAULT_CONF_GRID)
    ious = parse_grid(iou_grid, "--iou-grid", DEFAULT_IOU_GRID)
    score_of = metric_fitness(metric)
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
        table: dict[tuple[float, float], dict[str, float]] = {}
        try:
            for pair, m in sweeper.sweep(ious, confs).items():
                value = score_of(m)
                m["score"] = value if math.isfinite(value) else float("nan")
                table[pair] = m
        finally:
            sweeper.close()
        timings["sweep"] = time.perf_counter() - t

    best_iou, best_conf = max(table, key=lambda k: (_finite(table[k]["score"]), -k[1], k[0]))
    result = ThresholdsResult(
        metric=score_of.spec if metric.strip().lower() != "fitness" else "fitness",
        iou_grid=ious, conf_grid=confs, table=table, best_iou=best_iou, best_conf=best_conf,
        best_score=table[(best_iou, best_conf)]["score"], cache_path=cache_file, cache_hit=hit,
        seconds=timings)
    say(format_table(result))
    say(f"best: iou {best_iou:g}, conf {best_conf:g} -> {result.metric} {result.best_score:.4f} "
        f"({len(table)} pairs in {timings['sweep']:.2f}s from the cache)")
    if write:
        result.yaml_path = write_thresholds_yaml(result, weights, data, split)
        result.html_path = write_heatmap(result, weights.with_name("thresholds.html"))
        say(f"wrote {result.yaml_path} and {result.html_path}")
    return result


def _finite(x: float) -> float:
    return x if math.isfinite(x) else -math.inf


def format_table(result: ThresholdsResult) -> str:
    """Rows IoU, columns conf, cells the metric; the best cell marked with *."""
    from automl.console import text_table

    header = [f"{result.metric} | iou \\ conf", *(f"{c:g}" for c in result.conf_grid)]
    rows = []
    for iou in result.iou_grid:
        row = [f"{iou:g}"]
        for conf in result.conf_grid:
            mark = "*" if (iou, conf) == (result.best_iou, result.best_conf) else " "
            row.append(f"{result.score(iou, conf):.4f}{mark}")
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
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
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
