"""Engine overhead per trial: a trial's wall time in the study minus the training's own time.

A trial's wall time runs from the study's ask (datetime_start) to its tell (datetime_complete);
the training's own time is ultralytics' `model.train()` call, measured inside the trial
(user attr `train_seconds`). What remains is automl + Ray: scheduling, actor (re)use, building
the model object, result plumbing and study writes.

    python benchmarks/engine_overhead.py [--trials 8] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    import automl
    from automl.data.demo import make_demo_dataset

    with tempfile.TemporaryDirectory(prefix="automl-overhead-") as tmp:
        os.chdir(tmp)
        data = make_demo_dataset(Path(tmp) / "data", n_train=32, n_val=16, seed=0)
        result = automl.search(data=str(data), trials=args.trials, epochs=args.epochs, imgsz=64,
                               batch=8, seed=0, concurrency=args.concurrency, pruner="none",
                               study="overhead", log=lambda line: None)
        rows = []
        for t in result.study.trials:
            wall = (t.datetime_complete - t.datetime_start).total_seconds()
            train = t.user_attrs["train_seconds"]
            rows.append((t.number, wall, train, wall - train))
    print(f"engine overhead, {args.trials} trials of {args.epochs} epochs, "
          f"concurrency {args.concurrency}")
    print(f"{'trial':>5} {'wall s':>7} {'training s':>10} {'overhead s':>10}")
    for number, wall, train, overhead in rows:
        print(f"{number:>5} {wall:>7.2f} {train:>10.2f} {overhead:>10.2f}")
    print(f"median overhead: {statistics.median(r[3] for r in rows):.2f} s "
          f"(first trial includes starting the Ray worker and importing torch/ultralytics)")


if __name__ == "__main__":
    main()
