"""Does the mini-data winner win on the full data? `automl validate` on two regimes (issue 17).

For each regime, in a fresh working folder: the default search as a user runs it
(`automl.search` with its defaults, `--trials`, `--seed`; `--pruner none` unless told: every
trial then has a full-length mini fitness to rank), then `automl.validate` of that study
(its `--top` trials and the plain training, `--seeds` training seeds each, on the full data).
Prints each step's output, the verdict and the time each step took.

- demo: the built-in demo data (160 train / 64 val images, 10 epochs at 128 px, batch 8).
- small: the small-data regime of issue 14 (120 train / 30 val non-square images, 20 epochs at
  96 px, batch 16, ultralytics' own nbs 64).

    python benchmarks/validate_regimes.py --regimes demo small --trials 8 --top 5 --seeds 3 \\
        --concurrency 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regimes", nargs="+", default=["demo", "small"], choices=["demo", "small"])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="the search's seed")
    parser.add_argument("--pruner", default="none",
                        help="the search's pruner (default none: every trial trains its full "
                             "length, so each has a mini fitness to rank; asha would leave only "
                             "the few that pass its rungs)")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2, help="validation runs at once")
    parser.add_argument("--keep", default=None, help="work here (kept) instead of a temp folder")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_VERBOSE", "False")

    import automl
    from automl.data.demo import SMALL_TRAINING, make_small_dataset

    summary = []
    with tempfile.TemporaryDirectory(prefix="automl-validate-") as tmp:
        root = Path(args.keep or tmp).resolve()
        for regime in args.regimes:
            work = root / regime
            work.mkdir(parents=True, exist_ok=True)
            os.chdir(work)
            flags = {}
            if regime == "small":
                flags = {"data": str(make_small_dataset(work / "data", seed=0)), **SMALL_TRAINING}
            print(f"\n=== {regime}: automl search --trials {args.trials} --seed {args.seed} "
                  f"--pruner {args.pruner} "
                  f"({', '.join(f'{k}={v}' for k, v in flags.items()) or 'demo data'})", flush=True)
            start = time.perf_counter()
            result = automl.search(trials=args.trials, seed=args.seed, study=f"{regime}-v",
                                   pruner=args.pruner,
                                   log=lambda line: print(line, flush=True), **flags)
            searched = time.perf_counter() - start
            print(f"\n=== {regime}: automl validate --study {regime}-v --top {args.top} --seeds "
                  f"{args.seeds} --concurrency {args.concurrency}", flush=True)
            start = time.perf_counter()
            checked = automl.validate(study=result.study.study_name, top=args.top,
                                      seeds=args.seeds, concurrency=args.concurrency,
                                      log=lambda line: print(line, flush=True))
            validated = time.perf_counter() - start
            v = checked.verdict
            summary.append([regime, f"{searched:.0f}", f"{validated:.0f}", str(len(v.rows)),
                            f"{v.spearman:.2f} [{v.spearman_ci[0]:.2f}, {v.spearman_ci[1]:.2f}]",
                            f"{v.kendall:.2f} [{v.kendall_ci[0]:.2f}, {v.kendall_ci[1]:.2f}]",
                            f"#{v.mini_winner} / #{v.full_winner}",
                            f"{v.gain:+.4f} ({v.wins}/{v.compared})"])
    from automl.console import text_table

    print("\n" + text_table(["regime", "search s", "validate s", "configs", "Spearman [90%]",
                             "Kendall [90%]", "mini / full winner", "gain over plain (wins)"],
                            summary))


if __name__ == "__main__":
    main()
