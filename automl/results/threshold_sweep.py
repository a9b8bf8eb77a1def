"""The threshold sweep: only NMS, matching and metrics of ultralytics' DetectionValidator re-run
on the cached raw outputs, for each (IoU, conf) pair."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from automl.results.operating_point import Matched
from automl.results.threshold_cache import RawCache, caching_validator_class

# ultralytics' non_max_suppression default (the validator does not change it): candidates per
# image beyond this are cut by score before NMS.
_MAX_NMS = 30000


# Cached images sent through NMS at once: bounds memory (images x anchors kept x channels).
_REPLAY_CHUNK = 32


class CachedSweep:
    """Re-runs only NMS, matching and metrics of ultralytics' DetectionValidator on a RawCache."""

    def __init__(self, cache: RawCache) -> None:
        import torch

        self._torch = torch
        self.cache = cache
        self._tmp = tempfile.TemporaryDirectory(prefix="automl-sweep-")
        v = caching_validator_class()(
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
