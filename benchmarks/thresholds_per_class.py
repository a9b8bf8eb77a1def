"""Global against per-class confidence thresholds on real exports, held out: per-class and macro
F1, and the time of automl's sweep against as many `model.val` calls.

For each export (a subset of it in its own layout, as benchmarks/real_exports.py builds them;
the exports are fetched under --root, outside the repository) a yolo11n is trained from scratch
(unless --work already holds its weights), then `automl thresholds --metric f1 --per-class`
runs on its val images: thresholds are chosen on 4 of 5 seeded folds and measured on the fifth,
in turn; the counts of the five measurements are added up (the held-out figures), and the
in-sample ones (chosen and measured on all images) are printed beside them. The sweep is timed
from an empty cache (one inference pass + 100 pairs + the folds), and `model.val` is timed on
--val-calls pairs of the same grid; with fewer calls than pairs the total is extrapolated (said).

    python benchmarks/thresholds_per_class.py --root /work/datasets --work /work/bench_thr \\
        --exports roboflow-conescubes cvat-mealtray
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# export -> (train images, val images) of the subset
SUBSETS = {"roboflow-conescubes": (600, 124), "cvat-mealtray": (400, 200)}


def train(name: str, root: Path, work: Path, epochs: int, imgsz: int) -> tuple[Path, Path]:
    """The subset's data.yaml and trained best.pt (trained here unless already under work)."""
    from real_exports import subset
    from ultralytics import YOLO

    weights = work / name / "train" / "weights" / "best.pt"
    data_dir = work / name / "data"
    n_train, n_val = SUBSETS[name]
    if weights.is_file():
        # the subset is rebuilt only when missing: its files are what the weights were judged on
        yaml_path = next(p for p in sorted(data_dir.rglob("data.yaml")))
        cwd = data_dir
        print(f"{name}: weights {weights} (trained earlier), data {yaml_path}", flush=True)
        return yaml_path, cwd
    yaml_path, cwd = subset(name, root, data_dir, n_train, n_val)
    os.chdir(cwd)
    start = time.perf_counter()
    YOLO("yolo11n.yaml").train(data=str(yaml_path), epochs=epochs, imgsz=imgsz, batch=16,
                               workers=0, seed=0, project=str(work / name), name="train",
                               exist_ok=True, plots=False)
    print(f"{name}: trained in {time.perf_counter() - start:.0f} s", flush=True)
    return yaml_path, cwd


def measure(name: str, data: Path, cwd: Path, weights: Path, metric: str, folds: int,
            val_calls: int) -> None:
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER

    from automl.results.threshold_cache import cache_path_for
    from automl.results.thresholds import DEFAULT_CONF_GRID, DEFAULT_IOU_GRID, tune_thresholds

    os.chdir(cwd)
    cache_path_for(weights, "val").unlink(missing_ok=True)
    start = time.perf_counter()
    result = tune_thresholds(weights=weights, data=data, metric=metric, per_class=True,
                             folds=folds, write=False, log=lambda line: None)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    tune_thresholds(weights=weights, data=data, metric=metric, per_class=True, folds=folds,
                    write=False, log=lambda line: None)
    warm = time.perf_counter() - start

    pairs = [(i, c) for i in DEFAULT_IOU_GRID for c in DEFAULT_CONF_GRID]
    step = max(1, len(pairs) // val_calls)
    sample = pairs[::step][:val_calls]
    model = YOLO(str(weights))
    LOGGER.setLevel(40)
    times = []
    with tempfile.TemporaryDirectory(prefix="automl-bench-pc-") as tmp:
        for iou, conf in sample:
            start = time.perf_counter()
            model.val(data=str(data), conf=conf, iou=iou, plots=False, verbose=False,
                      project=tmp, name="val")
            times.append(time.perf_counter() - start)
    val_total = statistics.mean(times) * len(pairs)

    h, names = result.held_out, result.names
    g_in, c_in = result.global_rates, result.per_class_rates
    g_out, c_out = h.global_rates, h.per_class_rates
    print(f"\n{name}: {result.n_images} val images, {len(names)} classes; metric {metric}; "
          f"chosen on all images: iou {result.best_iou:g}, conf {result.best_conf:g}; held out: "
          f"{h.k} folds (seed {h.seed}), fold picks {h.picks}")
    print(f"{'class':12s} {'labels':>6s} {'conf g':>7s} {'conf pc':>7s} {'F1 in g':>8s} "
          f"{'F1 in pc':>8s} {'F1 out g':>9s} {'F1 out pc':>9s}")
    for i in sorted(names):
        print(f"{names[i][:12]:12s} {g_in.n_gt[i]:6d} {result.best_conf:7g} "
              f"{result.per_class_conf[i]:7g} {g_in.f1[i]:8.4f} {c_in.f1[i]:8.4f} "
              f"{g_out.f1[i]:9.4f} {c_out.f1[i]:9.4f}")
    for label, g, c in (("in-sample", g_in, c_in), ("held out", g_out, c_out)):
        gs, cs = g.summary(), c.summary()
        print(f"{'macro ' + label:21s} global: P {gs['precision']:.4f} R {gs['recall']:.4f} "
              f"F1 {gs['f1']:.4f} | per class: P {cs['precision']:.4f} R {cs['recall']:.4f} "
              f"F1 {cs['f1']:.4f}")
    extrapolated = "" if len(sample) == len(pairs) else (
        f" (mean of {len(sample)} calls spread over the grid, x {len(pairs)})")
    print(f"time: automl sweep from an empty cache {cold:.1f} s (inference "
          f"{result.seconds.get('inference', 0):.1f} s), from the cache {warm:.1f} s; "
          f"{len(pairs)} x model.val {val_total:.0f} s{extrapolated}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/work/datasets"),
                        help="where the exports were fetched")
    parser.add_argument("--work", type=Path, default=Path("/tmp/thresholds_per_class"),
                        help="subsets and trainings (reused when present)")
    parser.add_argument("--exports", nargs="+", default=list(SUBSETS), choices=list(SUBSETS))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--metric", default="f1")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--val-calls", type=int, default=100,
                        help="model.val calls timed (fewer than the 100 pairs: extrapolated)")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    for name in args.exports:
        data, cwd = train(name, args.root, args.work.resolve(), args.epochs, args.imgsz)
        weights = args.work.resolve() / name / "train" / "weights" / "best.pt"
        measure(name, data, cwd, weights, args.metric, args.folds, args.val_calls)


if __name__ == "__main__":
    main()
