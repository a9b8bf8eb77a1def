"""Time the README's main job: `automl search --space lr_momentum` on the demo data.

Runs the real command in a fresh temporary folder with an empty data cache (so demo-data
generation is included), then reads the study back and prints one table row per run.

    python benchmarks/default_search.py                      # the default command
    python benchmarks/default_search.py -- --concurrency 2   # extra flags go to automl search
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="flags passed on to automl search (after --)")
    args = parser.parse_args()

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="automl-bench-") as tmp:
            env = dict(os.environ, AUTOML_CACHE_DIR=str(Path(tmp) / "cache"))
            cmd = [sys.executable, "-m", "automl", "search", "--space", "lr_momentum", *args.extra]
            start = time.perf_counter()
            subprocess.run(cmd, cwd=tmp, env=env, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            study = optuna.load_study(
                study_name="demo-lr_momentum",
                storage=f"sqlite:///{Path(tmp) / 'studies' / 'demo-lr_momentum.db'}",
            )
            done = [t for t in study.trials if t.state.name == "COMPLETE"]
            best = max(done, key=lambda t: t.value)
            rows.append({
                "trials": len(done),
                "wall_s": wall,
                "trial_s_median": statistics.median(
                    (t.datetime_complete - t.datetime_start).total_seconds() for t in done),
                "best_fitness": best.value,
                "best_map50": best.user_attrs["map50"],
                "best_map50_95": best.user_attrs["map50_95"],
            })
    print(f"automl search --space lr_momentum {' '.join(args.extra)}".strip())
    print(f"{'run':>3} {'trials':>6} {'wall s':>7} {'trial s (median)':>16} {'best fitness':>12} "
          f"{'best mAP50':>10} {'best mAP50-95':>13}")
    for i, r in enumerate(rows, 1):
        print(f"{i:>3} {r['trials']:>6} {r['wall_s']:>7.1f} {r['trial_s_median']:>16.1f} "
              f"{r['best_fitness']:>12.4f} {r['best_map50']:>10.3f} {r['best_map50_95']:>13.3f}")


if __name__ == "__main__":
    main()
