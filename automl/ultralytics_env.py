"""How automl runs ultralytics: offline, and quiet where its info lines would flood the output."""

from __future__ import annotations

import os
from contextlib import contextmanager


def offline_env() -> dict[str, str]:
    """Environment that keeps ultralytics from reaching the network (set before it is imported)."""
    return {"YOLO_OFFLINE": "1", "YOLO_VERBOSE": os.environ.get("YOLO_VERBOSE", "False")}


@contextmanager
def quiet_ultralytics(level: int = 40):
    """ultralytics' logger held at `level` (ERROR) inside the block: its per-call info lines
    (the threshold replay's validator, "Optimizer stripped ...") would flood the output."""
    from ultralytics.utils import LOGGER

    before = LOGGER.level
    LOGGER.setLevel(level)
    try:
        yield
    finally:
        LOGGER.setLevel(before)
