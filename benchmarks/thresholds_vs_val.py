"""A 10 x 10 (IoU x conf) threshold sweep: automl's cached sweep vs. one `model.val` per pair.

Both sides use the same weights, data and split, in one run. The cached side includes its one
inference pass (the cache file is deleted first); the reference calls ultralytics' `model.val`
100 times. Every pair's metrics are compared too (max abs difference).

    python benchmarks/thresholds_vs_val.py --weights runs/promote/X/weights/best.pt --data data.yaml
    python benchmarks/thresholds_vs_val.py        # trains a yolo11n on demo data first (minutes)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

METRICS = ("precision", "recall", "map50", "map75", "map50_95")


def _train_demo(root: Path, n_val: int) -> tuple[Path, Path]:
    from automl.data.demo import make_demo_dataset
    from automl.execution.trainer import train_once

    data = make_demo_dataset(root / "data", n_train=48, n_val=n_val, seed=3)
    run = {"data": str(data), "model": "yolo11n.yaml", "epochs": 10, "imgsz": 128, "batch": 4,
           "fixed": {"nbs": 4, "warmup_epochs": 1, "workers": 0}, "project": str(root / "runs"),
           "save": True, "threads": os.cpu_count() or 1}
    outcome = train_once({}, run, name="bench", report=lambda m: None)
    if "error" in outcome:
        sys.exit(f"training failed: {outcome['error']}")
    return root / "runs" / "bench" / "weights" / "best.pt", data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="detection .pt (default: train one on demo data)")
    parser.add_argument("--data", help="data.yaml (required with --weights)")
    parser.add_argument("--n-val", type=int, default=64, help="demo val images when training")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the cached side")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")

    from ultralytics import YOLO
    from ultralytics.utils import LOGGER

    from automl.results.threshold_cache import cache_path_for
    from automl.results.thresholds import DEFAULT_CONF_GRID, DEFAULT_IOU_GRID, tune_thresholds

    tmp = tempfile.TemporaryDirectory(prefix="automl-bench-thr-")
    if args.weights:
        weights, data = Path(args.weights), Path(args.data)
    else:
        weights, data = _train_demo(Path(tmp.name), args.n_val)
    pairs = [(i, c) for i in DEFAULT_IOU_GRID for c in DEFAULT_CONF_GRID]

    cached_times, result = [], None
    for _ in range(args.repeats):
        cache_path_for(weights, "val").unlink(missing_ok=True)
        start = time.perf_counter()
        result = tune_thresholds(weights=weights, data=data, write=False, log=lambda line: None)
        cached_times.append(time.perf_counter() - start)
    hit_start = time.perf_counter()
    tune_thresholds(weights=weights, data=data, write=False, log=lambda line: None)
    hit_time = time.perf_counter() - hit_start

    model = YOLO(str(weights))
    LOGGER.setLevel(40)
    max_diff = 0.0
    start = time.perf_counter()
    for iou, conf in pairs:
        box = model.val(data=str(data), conf=conf, iou=iou, plots=False, verbose=False,
                        project=tmp.name, name="val").box
        ref = {"precision": box.mp, "recall": box.mr, "map50": box.map50, "map75": box.map75,
               "map50_95": box.map}
        max_diff = max(max_diff, *(abs(result.table[(iou, conf)][k] - float(ref[k])) for k in METRICS))
    val_time = time.perf_counter() - start

    cached = statistics.median(cached_times)
    rows = [
        ("model.val per pair", len(pairs), val_time, 1.0),
        ("cache: 1 inference + sweep (median)", len(pairs), cached, val_time / cached),
        ("cache already on disk: sweep only", len(pairs), hit_time, val_time / hit_time),
    ]
    print(f"weights {weights}, data {data} (val), grid {len(DEFAULT_IOU_GRID)} IoU x "
          f"{len(DEFAULT_CONF_GRID)} conf; cached side repeated {args.repeats}x: "
          + ", ".join(f"{t:.2f}s" for t in cached_times))
    print(f"{'method':40s} {'pairs':>5s} {'seconds':>9s} {'s/pair':>8s} {'speedup':>8s}")
    for name, n, secs, speed in rows:
        print(f"{name:40s} {n:5d} {secs:9.2f} {secs / n:8.3f} {speed:7.1f}x")
    print(f"max |cache - model.val| over all {len(pairs)} pairs and {', '.join(METRICS)}: {max_diff:.2e}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
