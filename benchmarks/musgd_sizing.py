"""What a regime where ultralytics' optimizer=auto picks MuSGD would cost (issue 28, item 1).

auto picks MuSGD (lr0 0.01, momentum 0.9) when a training's iterations exceed 10,000, counting
ceil(train images / max(batch, nbs)) x epochs with nbs 64 by default; below that it trains AdamW.
The smallest such training at a batch of 64 on N images needs ceil(10,001 / ceil(N / 64)) epochs.
This script trains a few epochs of the small regime's kind of data (generated scenes, 2 classes,
96 px) on N images at batch 64, with optimizer auto, on the device given, and prints the seconds
an epoch takes, the epochs auto needs to pick MuSGD, and what one such training and one seed of
the regime suite (1 plain + 8 peer + 8 automl trainings + 2 retrainings of 3 picks) would take:

    python benchmarks/musgd_sizing.py --images 1280 --epochs 4 --device 0
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import tempfile
import time
from pathlib import Path

TRAININGS_PER_SEED = 1 + 8 + 8 + 2 * 3  # plain, peer iterations, automl trials, retrainings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1280, help="train images")
    parser.add_argument("--epochs", type=int, default=4, help="epochs measured (the first is "
                        "left out of the rate)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--imgsz", type=int, default=96)
    parser.add_argument("--device", default="cpu", help="ultralytics' device: cpu, 0, ...")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    from automl.data.demo import SMALL_DATA, make_demo_dataset

    with tempfile.TemporaryDirectory() as tmp:
        data = make_demo_dataset(Path(tmp) / "data", seed=0, **{
            **SMALL_DATA, "n_train": args.images, "n_val": 60})
        model = YOLO("yolo11n.yaml")
        start = time.perf_counter()
        model.train(data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                    device=args.device, project=tmp, name="t", plots=False, verbose=False,
                    workers=4)
        seconds = time.perf_counter() - start
        optimizer = type(model.trainer.optimizer).__name__
        # results.csv's cumulative time: the epochs after the first (setup and warm-up left out)
        with open(Path(model.trainer.save_dir) / "results.csv") as f:
            times = [float(row["time"]) for row in csv.DictReader(f, skipinitialspace=True)]
    per_epoch = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else seconds
    batches = math.ceil(args.images / max(args.batch, 64))
    epochs_needed = math.ceil(10_001 / batches)
    one = per_epoch * epochs_needed
    print(f"| device | images | batch | imgsz | optimizer ({args.epochs} epochs) | s/epoch | "
          "epochs for MuSGD | one training | one regime seed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {args.device} | {args.images} | {args.batch} | {args.imgsz} | {optimizer} | "
          f"{per_epoch:.2f} | {epochs_needed} | {one / 60:.0f} min | "
          f"{one * TRAININGS_PER_SEED / 3600:.1f} h |")


if __name__ == "__main__":
    main()
