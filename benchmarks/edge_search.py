"""Accuracy against latency on the demo data: a multi-objective search, its front, a deploy (issue 19).

A search over model (yolo11n, yolo11s) x imgsz x lr0 with `--objectives fitness,latency` under
the edge device's 100 MB weight cap (each trial's own trained weights measured after its final
epoch), then `automl promote` of a front member (the fittest one whose latency is at most the
front's median: a pick an edge user would make) and `automl deploy` of its weights to ONNX and
OpenVINO, fp32 and int8. Run it on a quiet machine: latency is a measurement of the machine.

    python benchmarks/edge_search.py --trials 12
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

SPACE = """\
description: edge search (benchmarks/edge_search.py)
params:
  model: {choices: [yolo11n.yaml, yolo11s.yaml]}
  imgsz: {choices: [96, 128, 160]}
  lr0: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--searcher", default="tpe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="default: a new temporary folder")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_VERBOSE", "False")
    import automl
    from automl.study import fitness_of, pareto_trials

    work = Path(args.workdir or tempfile.mkdtemp(prefix="automl-edge-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    space = work / "edge.yaml"
    space.write_text(SPACE)
    start = time.perf_counter()
    result = automl.search(space=str(space), searcher=args.searcher, trials=args.trials,
                           seed=args.seed, study="edge", objectives="fitness,latency",
                           max_size_mb=100.0, concurrency=1)
    searched = time.perf_counter() - start
    front = pareto_trials(result.study)
    median = statistics.median(t.user_attrs["latency_ms"] for t in front)
    pick = max((t for t in front if t.user_attrs["latency_ms"] <= median), key=fitness_of)
    print(f"\nsearch: {searched:.0f} s; front {[t.number for t in front]}; pick #{pick.number} "
          f"({pick.params}, fitness {fitness_of(pick):.4f}, {pick.user_attrs['latency_ms']:.1f} "
          f"ms, {pick.user_attrs['size_mb']:.2f} MB)\n", flush=True)
    start = time.perf_counter()
    promoted = automl.promote(study="edge", trial=pick.number)
    print(f"promote: {time.perf_counter() - start:.0f} s\n", flush=True)
    start = time.perf_counter()
    automl.deploy(weights=promoted.weights, formats="onnx,openvino", int8=True)
    print(f"deploy: {time.perf_counter() - start:.0f} s; work folder {work}")


if __name__ == "__main__":
    main()
