"""Seconds per epoch: an automl trial against the same training run by plain ultralytics (issue 14).

The same data (the small-data regime), model, epochs, imgsz, batch and optimizer (ultralytics'
auto, which automl's plain-training trial #0 resolves to the same AdamW): once as a plain
`YOLO(...).train(...)` in its own process with ultralytics' own settings (its thread count,
dataloader workers, no caching, validation every epoch), once as `automl search --trials 1`
(the same trial #0), with automl's default threads and with `--cpus-per-trial 1`. Each is timed
the same way: from building the model to the end of the last epoch's validation, divided by
the epochs (process start and imports left out of both; dataset scan and dataloaders in both).

    python benchmarks/epoch_time.py --repeats 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PLAIN = """\
import json, os, sys, time
os.environ["YOLO_OFFLINE"] = "1"
from ultralytics import YOLO
import torch
start = time.perf_counter()
ends = []
model = YOLO("yolo11n.yaml")
model.add_callback("on_fit_epoch_end", lambda t: ends.append(time.perf_counter() - start))
model.train(data=sys.argv[1], epochs=int(sys.argv[2]), imgsz=int(sys.argv[3]),
            batch=int(sys.argv[4]), plots=False, project=sys.argv[5], name="plain", device="cpu")
epochs = int(sys.argv[2])
print("RESULT", json.dumps({"seconds": ends[epochs - 1], "threads": torch.get_num_threads(),
                            "workers": model.trainer.train_loader.num_workers}))
"""


def plain(data: Path, work: Path, args) -> dict:
    script = work / "plain.py"
    script.write_text(PLAIN)
    out = subprocess.run([sys.executable, str(script), str(data), str(args.epochs),
                          str(args.imgsz), str(args.batch), str(work)], check=True,
                         capture_output=True, text=True, cwd=work).stdout
    return json.loads(out.split("RESULT", 1)[1])


def automl_trial(data: Path, work: Path, args, *flags: str) -> dict:
    import optuna

    subprocess.run([sys.executable, "-m", "automl", "search", "--data", str(data), "--trials", "1",
                    "--epochs", str(args.epochs), "--imgsz", str(args.imgsz), "--batch",
                    str(args.batch), "--pruner", "none", "--device", "cpu", "--study", "t", *flags],
                   check=True, cwd=work, stdout=subprocess.DEVNULL)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{work}/studies/t.db")
    (trial,) = [t for t in study.trials if t.user_attrs.get("automl:baseline")]
    return {"seconds": trial.user_attrs["train_seconds"], "value": trial.value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    from automl.data.demo import SMALL_TRAINING, make_small_dataset

    for key, value in SMALL_TRAINING.items():
        setattr(args, key, value)
    rows = []
    with tempfile.TemporaryDirectory(prefix="automl-epoch-time-") as tmp:
        data = make_small_dataset(Path(tmp) / "data", seed=0)
        for r in range(args.repeats):
            for name, run in (
                ("plain ultralytics", lambda w: plain(data, w, args)),
                ("automl trial (default threads)", lambda w: automl_trial(data, w, args)),
                ("automl trial --cpus-per-trial 1", lambda w: automl_trial(data, w, args,
                                                                          "--cpus-per-trial", "1")),
            ):
                work = Path(tmp) / f"{r}-{len(rows)}"
                work.mkdir()
                result = run(work)
                rows.append((name, result))
                print(f"{name:<34} {result['seconds'] / args.epochs:6.2f} s/epoch  {result}",
                      flush=True)
    print(f"\n{args.epochs} epochs, 120 images at {args.imgsz} px, batch {args.batch}, 2-core CPU")
    print(f"{'training':<34} {'s/epoch (each run)':>24}")
    for name in dict.fromkeys(n for n, _ in rows):
        values = [r["seconds"] / args.epochs for n, r in rows if n == name]
        print(f"{name:<34} {' '.join(f'{v:6.2f}' for v in values):>24}")


if __name__ == "__main__":
    main()
