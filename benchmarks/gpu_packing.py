"""On one GPU: a real out-of-memory recovered, and trials per hour with 1, 2, 4, 8 trials packed.

Part 1 (oom): one search trial of a large model at a large image size and batch (default
yolo11x.yaml, 1280 px, batch 128), which does not fit; the trial must end COMPLETE at a smaller
batch, its record saying so (user attrs `batch`, `out_of_memory`, peak GPU memory).
Part 2 (packing): the same search (random sampler, seed 0, lr_momentum, generated demo data) with
C trials at once and --gpus-per-trial 1/C, for C in --packing; TRIALS-PER-SLOT x C trials each.
Trials per hour: COMPLETE trials over the span from the first trial's start to the last one's end
(Ray's start left out; the call's wall time is shown too). Peak memory: torch's counters per
trial; "over share": trials whose peak reserved memory exceeded 1/C of the GPU.

Sized for a lent GPU's 8 minutes (H100 or H200; no network: weights are built from YAML):

    python benchmarks/gpu_packing.py [--out DIR]

Prints one table per part and writes gpu_packing.json to --out (default $OUT, else the cwd).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("OUT") or ".", help="where the JSON goes")
    p.add_argument("--parts", nargs="+", default=["oom", "packing"], choices=["oom", "packing"])
    p.add_argument("--oom-model", default="yolo11x.yaml")
    p.add_argument("--oom-imgsz", type=int, default=1280)
    p.add_argument("--oom-batch", type=int, default=128)
    p.add_argument("--packing", type=int, nargs="+", default=[1, 2, 4, 8],
                   help="trials at once on the one GPU, one search each")
    p.add_argument("--trials-per-slot", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-minutes", type=float, default=7.0,
                   help="no packing search starts a trial after this (from the script's start)")
    return p


def _search(data: Path, study: str, **kwargs):
    import automl

    return automl.search(data=str(data), space="lr_momentum", searcher="random", seed=0,
                         fraction=1, pruner="none", keep_weights="none", study=study,
                         log=lambda line: print(line, flush=True), **kwargs)


def _oom(args, data: Path) -> dict:
    """One trial that does not fit at the batch it asks for."""
    start = time.monotonic()
    result = _search(data, "oom", trials=1, epochs=1, imgsz=args.oom_imgsz,
                     batch=args.oom_batch, model=args.oom_model, concurrency=1,
                     gpus_per_trial=1)
    trial = result.study.trials[0]
    attrs = trial.user_attrs
    return {"model": args.oom_model, "imgsz": args.oom_imgsz, "asked batch": args.oom_batch,
            "state": trial.state.name, "trained batch": attrs.get("batch"),
            "note": attrs.get("out_of_memory") or attrs.get("error"),
            "peak reserved GB": round(attrs.get("gpu_peak_reserved_mb", 0) / 1024, 2),
            "GPU GB": round(attrs.get("gpu_total_mb", 0) / 1024, 1),
            "seconds": round(time.monotonic() - start, 1)}


def _packed(args, data: Path, concurrency: int, deadline: float) -> dict:
    """The same search with `concurrency` trials sharing the one GPU."""
    start = time.monotonic()
    result = _search(data, f"pack{concurrency}", trials=args.trials_per_slot * concurrency,
                     epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                     concurrency=concurrency, gpus_per_trial=1 / concurrency,
                     baseline=False, timeout=max(1.0, deadline - time.monotonic()))
    wall = time.monotonic() - start
    trials = [t for t in result.study.trials if t.datetime_complete]
    done = [t for t in trials if t.state.name == "COMPLETE"]
    span = ((max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials))
            .total_seconds() if trials else float("nan"))
    peaks = [t.user_attrs["gpu_peak_reserved_mb"] / 1024 for t in trials
             if "gpu_peak_reserved_mb" in t.user_attrs]
    return {"at once": concurrency, "gpus/trial": round(1 / concurrency, 3),
            "trials": len(trials), "complete": len(done),
            "trials/hour": round(len(done) / span * 3600, 1) if span > 0 else None,
            "span s": round(span, 1), "call s": round(wall, 1),
            "peak GB max": round(max(peaks), 2) if peaks else None,
            "over share": sum("over_gpu_share" in t.user_attrs for t in trials),
            "out of memory": sum("out_of_memory" in t.user_attrs for t in trials)}


def _table(rows: list[dict]) -> str:
    if not rows:
        return "(nothing ran)"
    keys = list(rows[0])
    cells = [[str(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True))
                     for row in [keys, *cells])


def main() -> None:
    args = _parser().parse_args()
    began = time.monotonic()
    deadline = began + args.max_minutes * 60

    import torch

    from automl.data.demo import make_demo_dataset

    if not torch.cuda.is_available():
        raise SystemExit("gpu_packing.py: torch sees no CUDA GPU; run it on a lent GPU machine")
    device = torch.cuda.get_device_name(0)
    out = Path(args.out).resolve()
    report: dict = {"device": device, "torch": torch.__version__, "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="automl-gpu-packing-") as tmp:
        os.chdir(tmp)
        data = make_demo_dataset(Path(tmp) / "data", seed=0)  # 160 train, 64 val images
        if "oom" in args.parts:
            report["oom"] = _oom(args, data)
            print(f"\nout of memory recovered? ({device})\n{_table([report['oom']])}", flush=True)
        rows = []
        if "packing" in args.parts:
            for c in args.packing:
                if time.monotonic() >= deadline:
                    print(f"--max-minutes reached: {c} at once not run", flush=True)
                    break
                rows.append(_packed(args, data, c, deadline))
                print(_table(rows[-1:]), flush=True)
            report["packing"] = rows
            print(f"\ntrials per hour on one {device} ({args.epochs} epochs at {args.imgsz} px, "
                  f"batch {args.batch}, 160 images)\n{_table(rows)}", flush=True)
    report["seconds"] = round(time.monotonic() - began, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_packing.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"\n{report['seconds']} s in all; {out / 'gpu_packing.json'}")


if __name__ == "__main__":
    main()
