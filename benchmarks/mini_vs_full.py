"""Does a configuration's fitness on the mini split rank it as the full data does? (issue 14)

Trains the same configurations of the default space (the plain training first, then random
draws from `lr_momentum` as automl resolves it for the data) with automl's own trial code, on a
stratified mini split and on the full data, each with two training seeds, on the small-data
regime (120 train / 30 val images, 20 epochs at 96 px, batch 16, ultralytics' nbs 64).

Rank agreement is Spearman's rho between the mini fitness of one training seed and the full
fitness of the *other* seed (averaged over both pairings), so that training noise weighs on
every row alike; `full vs full` (seed 0 against seed 1 on the full data) is the ceiling noise
leaves. `--fractions 0.5 auto` compares the mini split of the default before issue 14 with
`--fraction auto` (all images on this data, so its rho is the noise ceiling itself).

    python benchmarks/mini_vs_full.py --configs 8 --fractions 0.5 auto
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=8, help="the plain training + random draws")
    parser.add_argument("--fractions", nargs="+", default=["0.5", "auto"])
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="draws the configurations")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("YOLO_VERBOSE", "False")  # ultralytics' per-batch lines, not ours

    import numpy as np
    import optuna
    from scipy.stats import spearmanr

    from automl.data.dataset import load_dataset
    from automl.data.demo import SMALL_TRAINING, make_small_dataset
    from automl.data.splits import make_mini_dataset
    from automl.execution.trainer import train_once
    from automl.searching.baseline import resolve_auto, trial_fixed
    from automl.searching.fraction import auto_fraction
    from automl.searching.spaces import load_space, ultralytics_defaults

    epochs, imgsz, batch = (SMALL_TRAINING[k] for k in ("epochs", "imgsz", "batch"))
    nbs = ultralytics_defaults()["nbs"]
    with tempfile.TemporaryDirectory(prefix="automl-mini-full-") as tmp:
        data = make_small_dataset(Path(tmp) / "data", seed=args.data_seed)
        dataset = load_dataset(data)
        auto = resolve_auto(n_images=len(dataset.train), epochs=epochs, batch=batch, nbs=nbs,
                            nc=dataset.nc)
        space = load_space("lr_momentum").for_optimizer(auto.optimizer)
        fixed = trial_fixed(space.fixed, space.keys, auto)
        sampler = optuna.samplers.RandomSampler(seed=args.seed)
        study = optuna.create_study(sampler=sampler, direction="maximize")
        configs = [{k: v for k, v in auto.as_args().items() if k in space.keys}
                   | {"lrf": ultralytics_defaults()["lrf"]}]
        while len(configs) < args.configs:
            trial = study.ask(space.distributions())
            configs.append(dict(trial.params))
            study.tell(trial, 0.0)

        splits = {"full": data}
        for flag in args.fractions:
            fraction = (auto_fraction(len(dataset.train), epochs=epochs, batch=batch, nbs=nbs)[0]
                        if flag == "auto" else float(flag))
            splits[f"mini {flag} ({fraction:g})"] = (
                data if fraction >= 1 else make_mini_dataset(dataset, fraction, Path(tmp) / flag))

        fitness: dict[tuple[str, int, int], float] = {}
        start = time.perf_counter()
        for i, params in enumerate(configs):
            for split, split_yaml in splits.items():
                for seed in (0, 1):
                    if split_yaml == data and split != "full":
                        fitness[(split, i, seed)] = fitness[("full", i, seed)]
                        continue
                    run = {"data": str(split_yaml), "model": "yolo11n.yaml", "epochs": epochs,
                           "imgsz": imgsz, "batch": batch, "device": "cpu", "fitness": "map50_95",
                           "fixed": {**fixed, "seed": seed}, "threads": args.threads,
                           "project": str(Path(tmp) / "runs")}
                    reports: list[dict] = []
                    outcome = train_once(params, run, name=f"c{i}", report=reports.append)
                    if "error" in outcome:
                        raise SystemExit(f"configuration {i} failed: {outcome['error']}")
                    fitness[(split, i, seed)] = reports[-1]["fitness"]  # the final epoch's
            shown = " ".join(f"{k}={v:.4g}" for k, v in params.items())
            cells = "  ".join(f"{split} {fitness[(split, i, 0)]:.3f}/{fitness[(split, i, 1)]:.3f}"
                              for split in splits)
            print(f"{i:>2} {shown:<46} {cells}  ({time.perf_counter() - start:.0f} s)", flush=True)

    def column(split: str, seed: int) -> np.ndarray:
        return np.array([fitness[(split, i, seed)] for i in range(len(configs))])

    def rho(a: np.ndarray, b: np.ndarray) -> float:
        return float(spearmanr(a, b).statistic) if a.std() > 0 and b.std() > 0 else float("nan")

    print(f"\n{len(configs)} configurations (#0 the plain training), small regime, data seed "
          f"{args.data_seed}, {epochs} epochs at {imgsz} px, batch {batch}, nbs {nbs}; fitness = "
          f"final-epoch mAP50-95; rho = Spearman, mini of one training seed vs full of the other")
    print(f"{'split':<22} {'rho (cross-seed)':>16} {'rho (same seed)':>15} {'at 0':>5} "
          f"{'mini winner on full':>20}")
    full_mean = (column("full", 0) + column("full", 1)) / 2
    for split in splits:
        cross = (rho(column(split, 0), column("full", 1)) + rho(column(split, 1), column("full", 0))) / 2
        same = (rho(column(split, 0), column("full", 0)) + rho(column(split, 1), column("full", 1))) / 2
        zeros = int(sum((column(split, s) == 0).sum() for s in (0, 1)))
        winner = int(np.argmax((column(split, 0) + column(split, 1)) / 2))
        place = int((full_mean > full_mean[winner]).sum()) + 1
        label = "full vs full" if split == "full" else split
        print(f"{label:<22} {cross:>16.2f} {same if split != 'full' else 1.0:>15.2f} "
              f"{zeros:>2}/{2 * len(configs):<2} {f'#{winner}, place {place}':>20}")


if __name__ == "__main__":
    main()
