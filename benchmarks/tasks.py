"""Every ultralytics task: the default search against that task's plain training, on its demo.

For each task (detect, segment, pose, obb, classify) a small demo of that task is generated
(automl.data.demo, the same drawing as the built-in demos, fewer and smaller images), searched
with automl's defaults for that task (tpe over lr_momentum, the task's default fitness, trial
#0 the plain training), and then the search's pick and the plain training are trained again on
the full data with two training seeds (automl.validate --top 1 --seeds 2). Every task runs in
the same process, one after the other, so that their timings share one machine's load. One
table row per task.

    python benchmarks/tasks.py                          # every task
    python benchmarks/tasks.py --tasks classify pose    # some
    python benchmarks/tasks.py --trials 8 --epochs 10   # a longer run
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

# The model and the demo variant of each task (make_demo_dataset's keyword).
TASK_RUNS = {
    "detect": ("yolo11n.yaml", {}),
    "segment": ("yolo11n-seg.yaml", {"masks": True}),
    "pose": ("yolo11n-pose.yaml", {"keypoints": True}),
    "obb": ("yolo11n-obb.yaml", {"rotated": True}),
    "classify": ("yolo11n-cls.yaml", {"folders": True}),
}


def run_task(task: str, root: Path, args: argparse.Namespace) -> dict:
    """Search one task's demo, then train its pick and its plain training with two seeds."""
    import automl
    from automl.data.demo import make_demo_dataset
    from automl.study import study_config

    model, kind = TASK_RUNS[task]
    data = make_demo_dataset(root / f"data-{task}", n_train=args.n_train, n_val=args.n_val,
                             seed=args.seed, image_sizes=((args.size, args.size),), **kind)
    quiet = (lambda line: None) if args.quiet else None
    start = time.perf_counter()
    result = automl.search(data=str(data), model=model, trials=args.trials, epochs=args.epochs,
                           imgsz=args.imgsz, batch=args.batch, study=task, seed=args.seed,
                           concurrency=1, fraction=1.0, log=quiet)
    searched = time.perf_counter() - start
    study = result.study
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    plain = next(t for t in done if t.number == 0)
    best = max(done, key=lambda t: t.value)
    verdict = automl.validate(study=task, top=1, seeds=2, log=quiet, live=False).verdict
    rows = {r.number: r for r in verdict.rows}
    pick = rows.get(best.number)
    base = rows[plain.number]
    return {
        "task": task, "model": model, "fitness": study_config(study).fitness,
        "trials": len(done), "plain_mini": plain.value, "best": best.number,
        "best_mini": best.value,
        "plain_seeds": [base.full[s] for s in sorted(base.full)],
        "pick_seeds": [pick.full[s] for s in sorted(pick.full)] if pick else [],
        "search_s": searched, "total_s": time.perf_counter() - start,
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def table(rows: list[dict]) -> str:
    from automl.console import text_table

    header = ["task", "model", "fitness", "trials", "plain #0 (search)", "pick (search)",
              "plain, seeds 0/1", "pick, seeds 0/1", "pick - plain (mean)", "search s",
              "total s"]
    body = []
    for r in rows:
        same = r["best"] == 0
        pick = r["plain_seeds"] if same else r["pick_seeds"]
        body.append([
            r["task"], r["model"], r["fitness"], r["trials"], f"{r['plain_mini']:.4f}",
            f"#{r['best']} {r['best_mini']:.4f}" + (" (plain)" if same else ""),
            " / ".join(f"{v:.4f}" for v in r["plain_seeds"]),
            " / ".join(f"{v:.4f}" for v in pick),
            f"{_mean(pick) - _mean(r['plain_seeds']):+.4f}",
            f"{r['search_s']:.0f}", f"{r['total_s']:.0f}"])
    return text_table(header, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=list(TASK_RUNS), default=list(TASK_RUNS))
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--n-train", type=int, default=48)
    parser.add_argument("--n-val", type=int, default=16)
    parser.add_argument("--size", type=int, default=96, help="generated image side, px")
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="print the table only")
    args = parser.parse_args()

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory(prefix="automl-tasks-") as tmp:
        here = os.getcwd()
        os.chdir(tmp)  # studies/ and runs/ of every task go here
        try:
            for task in args.tasks:
                rows.append(run_task(task, Path(tmp), args))
                print(table(rows[-1:]), flush=True)
        finally:
            os.chdir(here)
    print(f"python benchmarks/tasks.py --tasks {' '.join(args.tasks)} --trials {args.trials} "
          f"--epochs {args.epochs} --n-train {args.n_train} --n-val {args.n_val} --size "
          f"{args.size} --imgsz {args.imgsz} --batch {args.batch} --seed {args.seed}")
    print(table(rows))


if __name__ == "__main__":
    main()
