"""Your training, tuned: a search that trains the user's own settings, against the user's plain
training with the same settings, in the same run.

The settings are not ultralytics' defaults: a trained start (a yolo11n checkpoint pretrained here
on the Roboflow cones-and-cubes export, cached as vs_ultralytics_tune.py's finetune regime caches
it), `freeze=10`, `cos_lr=True`, `close_mosaic=5`, fine-tuned on a subset of another real export
(CVAT meal trays, vs_ultralytics_tune.py's finetune data). automl's default search runs with them
(`automl search ... freeze=10 cos_lr=True close_mosaic=5`); its pick (the study's best trial) and
its trial #0 (the plain training: `yolo train` with the same settings) are then each trained
again with other training seeds, as plain ultralytics trainings, and compared by their final
epoch's mAP50-95.

    python benchmarks/your_settings.py --exports /work/datasets --seeds 1 2 --reeval-seeds 1 2

Each data seed is another subset of the export and another search seed; the table at the end
has a row per data seed and arm, and the mean over every retraining of each arm.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = ("freeze=10", "cos_lr=True")  # and close_mosaic=--close-mosaic


def search(data: Path, work: Path, args, seed: int) -> dict:
    """automl's default search with the user's settings; its pick and its plain training."""
    import optuna

    from automl.study import best_trial, trial_args

    cmd = [sys.executable, "-m", "automl", "search", "--data", str(data), "--model", args.model,
           "--trials", str(args.trials), "--epochs", str(args.epochs), "--imgsz",
           str(args.imgsz), "--batch", str(args.batch), "--seed", str(seed), "--study", "bench",
           *SETTINGS, f"close_mosaic={args.close_mosaic}"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=work, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="bench", storage=f"sqlite:///{work}/studies/bench.db")
    best = best_trial(study)
    return {"wall": wall, "trials": len(study.trials), "best_number": best.number,
            "pick": trial_args(study, best), "plain": trial_args(study, study.trials[0]),
            "settings": study.user_attrs["automl:config"]["settings"]}


def table(rows: list[dict], reeval_seeds: list[int]) -> str:
    """A row per data seed and arm (retrained mAP50-95 per training seed), then each arm's mean."""
    heads = ["data seed", "arm", *(f"train seed {s}" for s in reeval_seeds), "mean"]
    lines = ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
    every: dict[str, list[float]] = {"pick": [], "plain": []}
    for row in rows:
        for arm in every:
            values = row[f"{arm}_retrained"]
            every[arm] += values
            name = f"pick #{row['best_number']}" if arm == "pick" else "plain #0"
            lines.append(f"| {row['seed']} | {name} | "
                         + " | ".join(f"{v:.4f}" for v in values)
                         + f" | {sum(values) / len(values):.4f} |")
    for arm, values in every.items():
        lines.append(f"| all | {arm} | " + " | ".join("" for _ in reeval_seeds)
                     + f" | {sum(values) / len(values):.4f} |")
    return "\n".join(lines)


def main() -> None:
    import vs_ultralytics_tune as vs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exports", type=Path, default=Path("/work/datasets"),
                        help="where the real exports are (real_exports.py)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1],
                        help="data subsets and search seeds")
    parser.add_argument("--reeval-seeds", type=int, nargs="+", default=[1, 2],
                        help="training seeds each pick is trained again with")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--close-mosaic", type=int, default=5,
                        help="the user's close_mosaic= (epochs without mosaic at the end)")
    parser.add_argument("--pretrain-epochs", type=int, default=vs.PRETRAIN_EPOCHS)
    parser.add_argument("--pretrain-images", type=int, nargs=2, default=vs.PRETRAIN_IMAGES,
                        metavar=("TRAIN", "VAL"))
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    args.regime = "finetune"
    vs.PRETRAIN_EPOCHS, vs.PRETRAIN_IMAGES = args.pretrain_epochs, tuple(args.pretrain_images)
    args.model = vs.pretrained(args)
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="automl-settings-") as tmp:
            work = Path(tmp)
            data = vs.regime_data(args, seed, work)
            found = search(data, work, args, seed)
            cache: dict = {}
            row = {"seed": seed, **found}
            for arm in ("pick", "plain"):
                params = {k: v for k, v in found[arm].items() if k != "batch"}  # the script's own
                row[f"{arm}_retrained"] = [vs.retrain(data, work, args, params, s, cache)
                                           for s in args.reeval_seeds]
            rows.append(row)
            pick, plain = row["pick_retrained"], row["plain_retrained"]
            print(f"seed {seed}: pick #{row['best_number']} retrained "
                  f"{sum(pick) / len(pick):.4f} {pick}, plain training retrained "
                  f"{sum(plain) / len(plain):.4f} {plain} (seeds {args.reeval_seeds}); search "
                  f"{row['trials']} trials in {row['wall']:.0f} s; settings {row['settings']}",
                  flush=True)
    print(table(rows, args.reeval_seeds))
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
