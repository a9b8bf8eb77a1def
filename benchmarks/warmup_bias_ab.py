"""A/B: does auto's `warmup_bias_lr=0` hurt the AdamW trainings a search runs on small data?

ultralytics' `optimizer=auto` sets `warmup_bias_lr` to 0 with the AdamW it picks; the peer's
`model.tune()` names AdamW itself and so trains with the default 0.1. This trains one
configuration (ultralytics' default lr0/lrf/momentum with AdamW) both ways on the small regime,
several data draws x training seeds, two plain ultralytics trainings at a time (1 thread each).

    python benchmarks/warmup_bias_ab.py --data-seeds 0 1 2 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import mean

from vs_ultralytics_tune import RETRAIN

CONFIG = {"optimizer": "AdamW", "lr0": 0.01, "lrf": 0.01, "momentum": 0.937}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--values", type=float, nargs="+", default=[0.0, 0.1])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from automl.data.demo import SMALL_TRAINING, make_small_dataset

    with tempfile.TemporaryDirectory(prefix="automl-wbl-") as tmp:
        root = Path(tmp)
        script = root / "train.py"
        script.write_text(RETRAIN % SMALL_TRAINING)
        data = {d: make_small_dataset(root / f"data{d}", seed=d) for d in args.data_seeds}

        def train(job):
            d, seed, value = job
            params = json.dumps({**CONFIG, "warmup_bias_lr": value, "workers": 0})
            out = subprocess.run([sys.executable, str(script), str(data[d]),
                                  tempfile.mkdtemp(dir=root), str(seed), params,
                                  "yolo11n.yaml"], check=True,
                                 capture_output=True, text=True, cwd=root).stdout
            return job, float(out.split("MAP50_95")[-1].split()[0])

        jobs = [(d, s, v) for d in args.data_seeds for s in args.seeds for v in args.values]
        with ThreadPoolExecutor(args.workers) as pool:
            results = dict(pool.map(train, jobs))
    print(f"{CONFIG}, small regime, final-epoch mAP50-95")
    print(f"{'data seed':>9} {'train seed':>10} " + " ".join(f"{'wbl ' + str(v):>9}" for v in args.values))
    for d in args.data_seeds:
        for s in args.seeds:
            print(f"{d:>9} {s:>10} " + " ".join(f"{results[(d, s, v)]:>9.4f}" for v in args.values))
    print(f"{'mean':>20} " + " ".join(
        f"{mean(results[(d, s, v)] for d in args.data_seeds for s in args.seeds):>9.4f}"
        for v in args.values))
    wins = sum(results[(d, s, args.values[1])] > results[(d, s, args.values[0])]
               for d in args.data_seeds for s in args.seeds)
    print(f"{args.values[1]} beats {args.values[0]} in {wins} of "
          f"{len(args.data_seeds) * len(args.seeds)} pairs")


if __name__ == "__main__":
    main()
