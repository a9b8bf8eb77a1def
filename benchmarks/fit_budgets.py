"""`automl fit` on the demo data at several budgets: planned against spent, and the final model
against the plain training on the full data, two training seeds each, in the same run.

For each budget, in a fresh working folder: `automl.fit(budget=B)` on the built-in demo data as a
user runs it (its search planned from a timed epoch, the promotions reserved), its wall seconds
measured around the call; then `automl.validate(top=1, seeds=2)` of the same study: the search's
best trial and the plain training, each trained on the full data with training seeds 0 and 1
(the fit's own promotion is seed 0 of the first). Prints a table: the budget, the plan, what the
fit spent, the trials it ran, and fitness / mAP50-95 of both on the full data, mean of the seeds.

    python benchmarks/fit_budgets.py --budgets 5m 6m 8m --epochs 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", nargs="+", default=["5m", "6m", "8m"])
    parser.add_argument("--epochs", type=int, default=None,
                        help="a cap on the trials' epochs (default: the demo profile's 10)")
    parser.add_argument("--seed", type=int, default=0, help="the search's seed")
    parser.add_argument("--keep", default=None, help="work here (kept) instead of a temp folder")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_VERBOSE", "False")

    import automl
    from automl.durations import parse_duration
    from automl.errors import ConfigError
    from automl.study import open_study

    rows = []
    with tempfile.TemporaryDirectory(prefix="automl-fit-") as tmp:
        root = Path(args.keep or tmp).resolve()
        for budget in args.budgets:
            work = root / budget
            work.mkdir(parents=True, exist_ok=True)
            os.chdir(work)
            study = f"fit-{budget}"
            print(f"\n=== automl fit --budget {budget} --seed {args.seed}"
                  + (f" --epochs {args.epochs}" if args.epochs else ""), flush=True)
            started = time.perf_counter()
            try:
                result = automl.fit(budget=budget, study=study, seed=args.seed,
                                    epochs=args.epochs, out=work / "fit")
            except ConfigError as e:  # a budget too small: the row says so
                rows.append((budget, "refused", str(e).rsplit("; ", 1)[-1], *["-"] * 5))
                continue
            wall = time.perf_counter() - started
            s = result.summary
            print(f"\n=== automl validate --study {study} --top 1 --seeds 2", flush=True)
            checked = automl.validate(study=study, top=1, seeds=2, project=work / "validate",
                                      live=False).verdict
            full = {row.number: row for row in checked.rows}
            best = next((n for n in full if not full[n].baseline), checked.baseline)
            trials = open_study(study, None, create=False).trials

            rows.append((budget, s["planned"], f"{s['spent']} ({wall:.0f} s wall)",
                         str(len(trials)), f"#{s['trial']}", _mean(full.get(best)),
                         _mean(full.get(checked.baseline)),
                         f"{parse_duration(budget) * 1.05:.0f}"))
    header = ("budget", "planned", "spent", "trials", "final", "best trial, full data, fitness "
              "mean (seeds 0, 1)", "plain training, same", "budget +5% (s)")
    print("\n| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _mean(row) -> str:
    """A validation row's full-data fitness: the mean of its seeds, and each."""
    values = list(row.full.values()) if row else []
    return (f"{statistics.mean(values):.4f} ({', '.join(f'{v:.4f}' for v in values)})"
            if values else "-")


if __name__ == "__main__":
    main()
