"""The threshold tuner's cache: a model's raw pre-NMS outputs over a split, computed once through
ultralytics' own DetectionValidator and kept beside the weights, keyed by what they depend on."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CACHE_VERSION = 1


def cache_key(weights: Path, data: Path, split: str, images: Sequence[Path],
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


def caching_validator_class():
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
    validator_class = caching_validator_class()

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
