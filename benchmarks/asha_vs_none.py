"""Early stopping pays? ASHA against no pruning on the demo data, same trials, several seeds.

For each seed, the same searcher (random, so both runs propose the same configurations in the
same order) runs once with `--pruner none` and once with `--pruner asha`; the table gives the
best fitness and the total epochs trained (sum over trials of the epochs each one ran).

    python benchmarks/asha_vs_none.py --trials 12 --epochs 30 --seeds 0 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--searcher", default="random")
    parser.add_argument("--pruners", nargs="+", default=["none", "asha"])
    args = parser.parse_args()

    import automl
    from automl.searching.schedulers import asha_rungs

    rows = []
    for seed in args.seeds:
        for pruner in args.pruners:
            with tempfile.TemporaryDirectory(prefix="automl-asha-") as tmp:
                os.chdir(tmp)
                start = time.perf_counter()
                result = automl.search(trials=args.trials, epochs=args.epochs, seed=seed,
                                       searcher=args.searcher, pruner=pruner,
                                       study=f"{pruner}-{seed}", log=lambda line: None)
                wall = time.perf_counter() - start
                trials = result.study.trials
                epochs = sum(t.user_attrs.get("epochs", 0) for t in trials)
                pruned = sum(t.state.name == "PRUNED" for t in trials)
                best = result.best.value if result.best else float("nan")
                rows.append((seed, pruner, best, epochs, pruned, wall))
    print(f"demo data, {args.trials} trials x {args.epochs} epochs, searcher {args.searcher}; "
          f"ASHA rungs at {asha_rungs(args.epochs)}")
    print(f"{'seed':>4} {'pruner':>6} {'best fitness':>12} {'epochs':>7} {'pruned':>6} {'wall s':>7}")
    for seed, pruner, best, epochs, pruned, wall in rows:
        print(f"{seed:>4} {pruner:>6} {best:>12.4f} {epochs:>7} {pruned:>6} {wall:>7.0f}")


if __name__ == "__main__":
    main()
