"""automl: hyperparameter search for YOLO object-detection training."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["search", "validate", "promote", "deploy", "tune_thresholds", "export_study",
           "report", "fit", "SearchResult", "FitResult", "__version__"]


def __getattr__(name: str):
    # Lazy: `import automl` and `automl --help` stay instant (no torch, ray or ultralytics).
    if name in ("search", "validate", "promote", "deploy", "tune_thresholds", "export_study",
                "report", "fit", "SearchResult", "FitResult"):
        from automl import api

        return getattr(api, name)
    raise AttributeError(f"module 'automl' has no attribute {name!r}")
