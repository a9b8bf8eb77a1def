"""Memory of one training: out-of-memory errors, the smaller batch a retry trains with, and the
peak GPU memory a trial used against the share of the GPU it was given.

Kept free of torch at import time; the counters are read from `torch.cuda` (or a stand-in with
the same four functions, which the tests pass).
"""

from __future__ import annotations

import math
from typing import Any

from automl.epochs import GPU_FIELDS

MB = 2**20

# what torch and its libraries say when an allocation fails (ultralytics treats the cuBLAS one as
# memory too); torch.OutOfMemoryError is a RuntimeError whose class name says it
_OUT_OF_MEMORY_TEXTS = ("out of memory", "cublas_status_alloc_failed")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocation that did not fit (torch.OutOfMemoryError, CUDA or MPS)."""
    text = str(error).lower()
    return "OutOfMemory" in type(error).__name__ or any(t in text for t in _OUT_OF_MEMORY_TEXTS)


def retry_batch(batch: int, floor: int) -> int | None:
    """The batch a training that ran out of memory at `batch` tries next: half of it, or None
    when half is below `floor` (or the batch is not a number of images, e.g. -1 for autobatch)."""
    half = int(batch) // 2
    return half if batch >= 1 and half >= floor else None


def below_floor_message(batch: int, floor: int, where: str) -> str:
    """The one line a trial fails with when even its smallest batch does not fit."""
    return (f"out of memory at batch {batch} ({where}), and half of it is below --min-batch "
            f"{floor}: lower imgsz, search a smaller model, or give each trial more of the GPU "
            "(--gpus-per-trial, --concurrency)")


def retried_note(requested: int, trained: int) -> str | None:
    """What a trial's record says when it trained at a smaller batch than it asked for."""
    if requested >= 1 and 1 <= trained < requested:
        return f"out of memory at batch {requested}: trained at batch {trained} (nbs kept)"
    return None


def reset_peak(device, cuda: Any = None) -> None:
    """Start torch's peak-memory counters of `device` afresh (CUDA only; nothing elsewhere)."""
    if getattr(device, "type", None) != "cuda":
        return
    cuda = cuda or _torch_cuda()
    cuda.reset_peak_memory_stats(device)


def peak_memory(device, cuda: Any = None) -> dict[str, float]:
    """Peak memory since `reset_peak` on a CUDA `device`, in MB: torch's allocated and reserved
    counters and the device's total; {} on any other device (CPU: nothing is recorded)."""
    if getattr(device, "type", None) != "cuda":
        return {}
    cuda = cuda or _torch_cuda()
    return {"gpu_peak_allocated_mb": cuda.max_memory_allocated(device) / MB,
            "gpu_peak_reserved_mb": cuda.max_memory_reserved(device) / MB,
            "gpu_total_mb": cuda.get_device_properties(device).total_memory / MB}


def over_share(peak_reserved_mb: float, total_mb: float, share: float) -> str | None:
    """A line when a trial's peak reserved GPU memory exceeds the share of the GPU it was given
    (share x the device's total), else None (also when any of them is unknown)."""
    if not all(math.isfinite(v) and v > 0 for v in (peak_reserved_mb, total_mb, share)):
        return None
    allowed = share * total_mb
    if peak_reserved_mb <= allowed:
        return None
    return (f"peak GPU memory {peak_reserved_mb / 1024:.2f} GB is over its share "
            f"({share:g} of {total_mb / 1024:.1f} GB = {allowed / 1024:.2f} GB): trials packed "
            "this tightly can run out of memory; raise --gpus-per-trial")


def _torch_cuda():
    import torch

    return torch.cuda



def memory_record(last) -> tuple[dict[str, Any], list[str]]:
    """What a trial's record keeps from its last EpochReport: user attrs (`batch` it trained
    with; `out_of_memory` after a retry; the GPU peaks and share; `over_gpu_share`) and the
    notes its progress line shows."""
    attrs: dict[str, Any] = {}
    if last.batch >= 1:
        attrs["batch"] = int(last.batch)
    retried = retried_note(last.requested_batch, last.batch)
    over = over_share(last.gpu_peak_reserved_mb, last.gpu_total_mb, last.gpu_share)
    attrs.update({k: float(getattr(last, k)) for k in GPU_FIELDS
                  if math.isfinite(getattr(last, k))})
    if retried:
        attrs["out_of_memory"] = retried
    if over:
        attrs["over_gpu_share"] = over
    return attrs, [n for n in (retried, over) if n]
