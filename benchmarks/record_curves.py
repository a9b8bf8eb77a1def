"""Record real learning curves once, so that searchers can be judged on thousands of searches.

Trains, with automl's own trial code, the plain training, ultralytics' default values and
`--configs` more configurations of the default search's space (`lr_momentum` as automl
resolves it for the regime: the optimizer ultralytics' auto picks, its by_optimizer ranges),
drawn by a scrambled Sobol design over the space (log keys on a log scale), each with every
`--seeds` training seed, to the full epoch count on the data a trial of the default search
trains on. Every epoch's EpochReport (metrics, fitness, validation loss, seconds) goes into a
compressed record that `automl.execution.replay` reads (`automl.search(replay=...)`, the replay
benchmark, tests).

    python benchmarks/record_curves.py --regime small --configs 96 --seeds 0 1 --workers 2
    python benchmarks/record_curves.py --regime demo --configs 96 --seeds 0 1 --workers 2

`--set KEY=VALUE` trains every configuration with that training arg changed, and `--like
RECORD` trains that record's configurations (ultralytics' defaults and the first `--configs`
others that lie in the space as it is now) instead of a new design, so the two records pair up
(`compare_records.py`); the plain training, whose args are ultralytics' own, is then left out:

    python benchmarks/record_curves.py --like benchmarks/records/small.npz --configs 32 \
        --seeds 0 --set warmup_bias_lr=0.1 --out benchmarks/records/small_wb01.npz

Trainings run `--workers` at a time, each on `--threads` torch threads (the record is exact for
that thread count: CPU training repeats exactly at a fixed count). Finished trainings are kept
in OUT.partial.jsonl, so an interrupted recording continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

import yaml


def design(space, n: int, seed: int) -> list[dict]:
    """`n` configurations of `space` from a scrambled Sobol sequence (log keys on a log scale)."""
    from scipy.stats import qmc

    points = qmc.Sobol(d=len(space.params), scramble=True, seed=seed).random(n)
    configs = []
    for u in points:
        config = {}
        for p, x in zip(space.params, u, strict=True):
            if p.kind == "categorical":
                config[p.name] = p.choices[min(int(x * len(p.choices)), len(p.choices) - 1)]
            elif p.log:
                config[p.name] = p.clip(math.exp(math.log(p.low) + x * (math.log(p.high)
                                                                          - math.log(p.low))))
            else:
                config[p.name] = p.clip(p.low + x * (p.high - p.low))
            if p.kind == "float":
                config[p.name] = float(f"{config[p.name]:.6g}")
        configs.append(config)
    return configs


def _train(job: dict) -> dict:
    """One training in a worker process: its EpochReports as dicts, and its wall time."""
    os.environ.setdefault("YOLO_VERBOSE", "False")
    from automl.execution.trainer import train_once

    reports = []
    start = time.perf_counter()
    outcome = train_once(job["params"], job["run"], name=f"c{job['config']}s{job['seed']}",
                         report=reports.append)
    return {"config": job["config"], "seed": job["seed"], "error": outcome.get("error"),
            "epochs": [r.as_dict() for r in reports], "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regime", choices=("small", "demo"), default="small")
    parser.add_argument("--configs", type=int, default=96, help="Sobol configurations (+ 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--design-seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="default: benchmarks/records/REGIME.npz")
    parser.add_argument("--epochs", type=int, default=None, help="default: the regime's")
    parser.add_argument("--imgsz", type=int, default=None, help="default: the regime's")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a training arg every configuration trains with (not the plain "
                             "training, which is then left out)")
    parser.add_argument("--like", metavar="RECORD",
                        help="train this record's configurations (those in the space) instead")
    parser.add_argument("--no-train", action="store_true",
                        help="write the record from the trainings finished so far (configurations "
                             "with every seed) without training more: a partial record")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item}: write KEY=VALUE, e.g. --set warmup_bias_lr=0.1")
        overrides[key] = yaml.safe_load(value)
    os.environ.setdefault("YOLO_VERBOSE", "False")

    import numpy as np

    from automl.config import SearchFlags
    from automl.data.dataset import load_dataset
    from automl.data.demo import SMALL_TRAINING, make_demo_dataset, make_small_dataset
    from automl.data.splits import make_mini_dataset
    from automl.execution.record import FIELDS, Record, load_record
    from automl.searching.planning import resolve_search
    from automl.searching.spaces import load_space, ultralytics_defaults

    out = Path(args.out or Path(__file__).parent / "records" / f"{args.regime}.npz")
    partial = out.with_suffix(".partial.jsonl")
    with tempfile.TemporaryDirectory(prefix="automl-record-") as tmp:
        sizes = {k: v for k, v in (("epochs", args.epochs), ("imgsz", args.imgsz)) if v}
        if args.regime == "small":
            data = make_small_dataset(Path(tmp) / "data", seed=0)
            flags = SearchFlags(data=str(data), **{**SMALL_TRAINING, **sizes})
        else:
            data = make_demo_dataset(Path(tmp) / "data")  # the demo data, as the cache holds it
            flags = SearchFlags(**sizes)
        dataset = load_dataset(data)
        plan = resolve_search(flags, dataset=dataset, space=load_space("lr_momentum"),
                              ultralytics_defaults=ultralytics_defaults(), cpu_count=args.threads,
                              gpu_count=0, studies_dir=Path(tmp) / "studies")
        train_yaml = make_mini_dataset(dataset, plan.config.fraction, Path(tmp) / "mini", seed=0)
        run = replace(plan.run, data=str(train_yaml), project=str(Path(tmp) / "runs"),
                      threads=args.threads, device="cpu", fixed={**plan.run.fixed, **overrides})
        if args.like:  # #0 of a record is its plain training, #1 ultralytics' defaults
            like = load_record(args.like)
            inside = [dict(zip(like.keys, map(float, row), strict=True)) for row in like.params[2:]
                      if all(p.clip(v) == v for p, v in zip(plan.space.params, row, strict=True))]
            configs = [dict(plan.baseline), dict(plan.start), *inside[:args.configs]]
        else:
            configs = [dict(plan.baseline), dict(plan.start),
                       *design(plan.space, args.configs, args.design_seed)]
        # with --set the plain training (ultralytics' own args) is not one of these configurations
        first = 1 if overrides else 0
        done = {}
        if partial.is_file():  # an interrupted recording: keep what finished
            for line in partial.read_text().splitlines():
                row = json.loads(line)
                if row["params"] == configs[row["config"]] and not row["error"]:
                    done[(row["config"], row["seed"])] = row
        jobs = []
        for i, params in enumerate(configs[first:], start=first):
            for seed in args.seeds:
                if (i, seed) in done:
                    continue
                base = run.for_baseline() if i == 0 else run  # #0: the plain training itself
                job_run = replace(base, fixed={**base.fixed, "seed": seed})
                jobs.append({"config": i, "seed": seed, "run": job_run,
                             "params": {} if i == 0 else params})
        if args.no_train:
            jobs = []
        print(f"{args.regime}: {len(configs)} configurations x {len(args.seeds)} seeds, "
              f"{len(done)} trainings recorded before, {len(jobs)} to go; {run.epochs} epochs at "
              f"{run.imgsz} px on {plan.config.fraction:g} of {len(dataset.train)} images, "
              f"optimizer {run.fixed.get('optimizer')}, {args.workers} x {args.threads} threads",
              flush=True)
        start = time.perf_counter()
        partial.parent.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool, \
                partial.open("a") as log:
            futures = [pool.submit(_train, job) for job in jobs]
            for n, future in enumerate(as_completed(futures), start=1):
                row = future.result()
                row["params"] = configs[row["config"]]
                log.write(json.dumps(row) + "\n")
                log.flush()
                done[(row["config"], row["seed"])] = row
                final = row["epochs"][-1]["map50_95"] if row["epochs"] else float("nan")
                print(f"{n}/{len(jobs)}  config {row['config']} seed {row['seed']}: "
                      f"{row['error'] or f'final mAP50-95 {final:.4f}'}  ({row['seconds']:.0f} s, "
                      f"{time.perf_counter() - start:.0f} s in all)", flush=True)

    keys = plan.space.keys
    # configurations every seed trained (all of them once the recording is complete)
    kept = [i for i in range(len(configs)) if all((i, s) in done for s in args.seeds)]
    if not kept:
        raise SystemExit(f"{partial}: no configuration has every seed recorded yet")
    curves = np.full((len(kept), len(args.seeds), run.epochs, len(FIELDS)), np.nan, np.float32)
    seconds = 0.0
    for (i, seed), row in done.items():
        seconds += row["seconds"]
        if i not in kept:
            continue
        for e in row["epochs"]:
            if e["epoch"] <= run.epochs:
                curves[kept.index(i), args.seeds.index(seed), e["epoch"] - 1] = \
                    [e[f] for f in FIELDS]
    import ultralytics

    meta = {
        "regime": args.regime, "configs": ("" if overrides else "0: the plain training, ")
        + "1: ultralytics' default values, 2+: "
        + (f"those of {Path(args.like).name} in the space" if args.like
           else f"scrambled Sobol (seed {args.design_seed})"),
        "set": overrides,
        "recorded": f"{len(kept)} of {len(configs) - first} configurations"
        + ("" if len(kept) == len(configs) - first else " (partial: --no-train before the end)"),
        "flags": {k: v for k, v in flags.__dict__.items() if k in ("epochs", "imgsz", "batch")}
        | {"data": None if flags.demo else "data.yaml"},
        "dataset": {"yaml": "data.yaml", "names": list(dataset.names),
                    "n_train": len(dataset.train), "n_val": len(dataset.val)},
        "fraction": plan.config.fraction, "fixed": dict(run.fixed),
        "baseline_fixed": dict(run.baseline_fixed), "fitness": plan.config.fitness,
        "threads": args.threads, "workers": args.workers, "training_seconds": round(seconds),
        "ultralytics": ultralytics.__version__,
    }
    bounds = {p.name: (p.low, p.high, p.log) for p in plan.space.params}
    params = np.array([[float(configs[i][k]) for k in keys] for i in kept])
    path = Record(keys=tuple(keys), params=params, seeds=tuple(args.seeds), curves=curves,
                  bounds=bounds, meta=meta).save(out)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB): {meta['recorded']}, {len(done)} trainings, "
          f"{seconds / 3600:.2f} h of training")


if __name__ == "__main__":
    main()
