"""What a trained model costs on a device: its weights' size and its CPU latency at batch 1.

One home for both measurements: `automl deploy` measures its artifacts (.pt, ONNX, OpenVINO)
with them, and a search that caps or minimises size or latency (`--max-size-mb`,
`--max-latency-ms`, `--objectives`) measures every trial's own trained weights with them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# a trial's latency: timed forward passes after untimed warm-up ones (deploy takes more)
TRIAL_RUNS, TRIAL_WARMUP = 30, 5


def size_mb(path: Path) -> float:
    """A file's size, or a folder's (OpenVINO's .xml + .bin), in MB (10^6 bytes)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
    return path.stat().st_size / 1e6


def _runner(path: Path, imgsz: int, threads: int) -> Callable[[], Any]:
    """One batch-1 forward pass of the artifact on the CPU with `threads` threads."""
    import numpy as np

    image = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    if path.suffix == ".pt":
        import torch
        from ultralytics.nn.autobackend import AutoBackend

        torch.set_num_threads(threads)
        backend = AutoBackend(str(path), device=torch.device("cpu"), fuse=True, verbose=False)
        backend.eval()
        tensor = torch.from_numpy(image)

        def run() -> Any:
            with torch.inference_mode():
                return backend(tensor)
        return run
    if path.suffix == ".onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda: session.run(None, {name: image})
    import openvino as ov  # an OpenVINO model folder

    core = ov.Core()
    xml = next(path.glob("*.xml"))
    compiled = core.compile_model(core.read_model(xml), "CPU",
                                  {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1})
    request = compiled.create_infer_request()
    return lambda: request.infer({0: image})


def latency(path: Path, imgsz: int, *, threads: int, runs: int, warmup: int) -> tuple[float, float]:
    """Median and p90 milliseconds of a batch-1 forward pass after `warmup` untimed ones."""
    import numpy as np

    run = _runner(Path(path), imgsz, threads)
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)), float(np.percentile(times, 90))


def measure_checkpoint(checkpoint: Path, imgsz: int, *, threads: int) -> tuple[float, float]:
    """Size (MB) and median CPU latency (ms) of a training checkpoint as it would be deployed.

    The checkpoint (ultralytics' last.pt, optimizer state included) is stripped to inference
    weights in a temporary copy, as ultralytics strips best.pt at the end of a training: the
    size is that file's, the latency that file's through ultralytics' AutoBackend (fused).
    """
    import shutil
    import tempfile

    from ultralytics.utils import LOGGER
    from ultralytics.utils.torch_utils import strip_optimizer

    with tempfile.TemporaryDirectory(prefix="automl-footprint-") as tmp:
        stripped = Path(tmp) / "weights.pt"
        shutil.copyfile(checkpoint, stripped)
        level = LOGGER.level
        LOGGER.setLevel(40)  # its "Optimizer stripped ..." line, once per trial
        try:
            stripped_ok = strip_optimizer(stripped)
        finally:
            LOGGER.setLevel(level)
        if not stripped_ok:  # ultralytics only warns (hidden above) and leaves the file as is
            raise ValueError(f"{checkpoint}: not an ultralytics checkpoint")
        median, _ = latency(stripped, imgsz, threads=threads, runs=TRIAL_RUNS,
                            warmup=TRIAL_WARMUP)
        return size_mb(stripped), median
