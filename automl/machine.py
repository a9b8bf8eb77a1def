"""What this machine has for trials: the cores this process may use, the GPUs torch sees."""

from __future__ import annotations


def machine_cpus() -> int:
    """CPU cores this process may use."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_gpus() -> int:
    """GPUs torch can use here (0 without torch's CUDA)."""
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0
