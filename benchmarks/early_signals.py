"""What does an early epoch say about a trial's final fitness? (ASHA's first rung decides on it.)

Trains N configurations of the lr_momentum space (the defaults, then uniform draws, lr0 on its
linear scale) to the end, one after another, with automl's own trial code (`train_once`), and
records every epoch's metrics plus the summed train and validation losses. Then, for each
epoch r before the last, it ranks the trials by each candidate signal at epoch r and compares
with their final fitness (the best epoch's, as a trial's value in the study):

- rho: Spearman rank correlation between the signal at r and the final fitness;
- top-k kept: how many of the final top third are also in the signal's top third at r (what an
  ASHA rung with reduction factor 3 keeps when the trials arrive together).

    python benchmarks/early_signals.py --configs 24 --epochs 10
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--images", type=int, default=80, help="train images (val: 40%%)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="draws of the configurations")
    parser.add_argument("--fitness", default="map50_95")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    import automl.execution.trainer as trainer_module
    from automl.data.demo import make_demo_dataset

    rng = np.random.default_rng(args.seed)
    configs = [{"lr0": 0.01, "lrf": 0.01, "momentum": 0.937}]
    while len(configs) < args.configs:
        configs.append({"lr0": float(rng.uniform(1e-5, 0.1)), "lrf": float(rng.uniform(0.01, 1.0)),
                        "momentum": float(rng.uniform(0.6, 0.98))})

    # the summed train loss of the epoch, read where the validation loss is read
    train_losses: list[float] = []
    read_val_loss = trainer_module.validation_loss

    def validation_loss(trainer) -> float:
        # the epoch's running mean per loss: a dict in ultralytics 8.4, one tensor before
        tloss = getattr(trainer, "tloss", None)
        parts = [] if tloss is None else tloss.values() if isinstance(tloss, dict) else [tloss]
        train_losses.append(sum(float(v.sum() if hasattr(v, "sum") else v) for v in parts)
                            if parts else math.nan)
        return read_val_loss(trainer)

    trainer_module.validation_loss = validation_loss

    rows = []
    with tempfile.TemporaryDirectory(prefix="automl-signals-") as tmp:
        data = make_demo_dataset(Path(tmp) / "data", n_train=args.images,
                                 n_val=max(8, int(args.images * 0.4)), seed=0)
        run = {"data": str(data), "model": "yolo11n.yaml", "epochs": args.epochs,
               "imgsz": args.imgsz, "batch": args.batch, "device": "cpu",
               "fitness": args.fitness, "fixed": {"optimizer": "SGD", "nbs": args.batch},
               "project": str(Path(tmp) / "trials"), "threads": args.threads}
        for i, params in enumerate(configs):
            epochs: list[dict] = []
            train_losses.clear()
            start = time.perf_counter()
            outcome = trainer_module.train_once(params, run, name=f"c{i}", report=epochs.append)
            if "error" in outcome:
                raise SystemExit(f"configuration {i} failed: {outcome['error']}")
            final = max(e["fitness"] for e in epochs)
            print(f"{i:>3} {time.perf_counter() - start:5.1f} s  final {final:.4f}  "
                  + " ".join(f"{k}={v:.4g}" for k, v in params.items()), flush=True)
            for e, tl in zip(epochs, train_losses, strict=True):
                rows.append({"config": i, "epoch": e["epoch"], "final": final,
                             "fitness": e["fitness"], "map50": e["map50"], "recall": e["recall"],
                             "precision": e["precision"], "-val_loss": -e["val_loss"],
                             "-train_loss": -tl,
                             # what automl's schedulers compared until issue 14 (fitness since)
                             "fitness-1e-6*val_loss": e["fitness"] - 1e-6 * e["val_loss"]})

    df = pd.DataFrame(rows)
    signals = ["fitness", "map50", "recall", "precision", "-val_loss", "-train_loss",
               "fitness-1e-6*val_loss"]
    final = df.groupby("config")["final"].first()
    top = max(1, round(len(final) / 3))
    true_top = set(final.sort_values(ascending=False).index[:top])
    print(f"\n{len(configs)} configurations x {args.epochs} epochs, {args.images} train images at "
          f"{args.imgsz} px, fitness {args.fitness}; final = the best epoch's fitness")
    print(f"rho: Spearman correlation with the final fitness; kept: of the final top {top}, "
          f"how many the signal's top {top} holds")
    print(f"{'epoch':>5}  " + "  ".join(f"{s:>18}" for s in signals))
    for epoch in range(1, args.epochs):
        at = df[df.epoch == epoch].set_index("config")
        cells = []
        for s in signals:
            rho = at[s].rank().corr(final.rank())
            kept = len(true_top & set(at[s].sort_values(ascending=False).index[:top]))
            cells.append(f"{rho:>+8.2f} {kept:>3}/{top:<3}  ")
        zero = int((at["fitness"] <= 0).sum())
        print(f"{epoch:>5}  " + "  ".join(f"{c:>18}" for c in cells)
              + f"  ({zero} at fitness 0)")


if __name__ == "__main__":
    main()
