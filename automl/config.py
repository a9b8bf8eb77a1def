"""Typed configuration: the flags of a search, what a study records, what one training gets.

- `SearchFlags`: what the user asked for (CLI flags / keyword arguments), defaults from
  `automl.defaults` (`automl.searching.planning.resolve_search` turns them into a plan).
- `StudyConfig`: what a study measures, stored on it as a dict (`to_dict`/`from_dict`; studies
  written by earlier releases load too) and checked when a search continues it.
- `RunSpec`: everything one training needs besides its params (trials, promotions).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, make_dataclass, replace
from pathlib import Path
from typing import Any

from automl import defaults as D
from automl.errors import ConfigError


@dataclass(frozen=True)
class RunSpec:
    """One ultralytics training's settings, besides the hyperparameters it tries.

    Attributes:
        data: data.yaml to train on (for a trial: the mini split's).
        model: model YAML or local .pt weights.
        fixed: args held constant (a space's fixed args, auto resolved; run-level batch/nbs).
        baseline_fixed: the plain training's own args (the baseline trial trains with these).
        project: folder the ultralytics run folders go to.
        threads: torch CPU threads of the training (None: ultralytics' own choice).
        save, final_eval: write best.pt/last.pt every epoch; re-validate best.pt at the end
            (off for trials, on for promotions).
        workers: dataloader workers (None: ultralytics' default).
        replay: a record of learning curves (automl.execution.replay): trials replay it, nothing trains.
        keep_weights: which trials keep their weights once finished: all, best (the study's best
            COMPLETE trial only), none.
        min_batch: the smallest batch an out-of-memory retry trains with (automl.execution.memory).
        measure: after the final epoch, measure the trained weights' size and CPU latency
            (automl.execution.footprint) and report them with that epoch (a search with caps or
            objectives on them, automl.objectives).
    """

    data: str
    model: str
    epochs: int
    imgsz: int
    batch: int | None
    fitness: str | None = None
    device: str | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    baseline_fixed: Mapping[str, Any] = field(default_factory=dict)
    project: str = "runs"
    threads: int | None = None
    save: bool = False
    final_eval: bool = False
    workers: int | None = None
    replay: str | None = None
    keep_weights: str = D.KEEP_WEIGHTS
    measure: bool = False  # size and CPU latency of the final weights (a cap or objective needs them)
    replay_neighbours: int = 1  # a replay blends this many nearest recorded configurations
    replay_bandwidth: float = 0.0  # ... or, > 0, all of them by a Gaussian kernel this wide
    replay_epoch_seconds: float = 0.0  # a replayed epoch takes this long (scale benchmarks)
    # .pt path -> SHA-256 of the bytes the driver checked: a trial loads those bytes or nothing
    weights_sha256: Mapping[str, str] = field(default_factory=dict)
    min_batch: int = D.MIN_BATCH

    def for_baseline(self) -> RunSpec:
        """The same run training the plain training's args instead of the space's fixed ones."""
        return replace(self, fixed=dict(self.baseline_fixed))


# What a study measures: continuing it with other values would mix incomparable trials.
DEFINING = ("space_keys", "settings", "fixed", "fitness", "data", "model", "epochs", "imgsz", "fraction",
            "batch")
# ... and what it optimises: another objective or cap changes which trials count (and a
# multi-objective study cannot become a single-objective one)
GOAL_FIELDS = ("objectives", "max_size_mb", "max_latency_ms")


@dataclass(frozen=True)
class StudyConfig:
    """The search settings a study records (user attr `automl:config`).

    Fields that earlier releases did not write are None when such a study is loaded.
    """

    space: str
    space_keys: tuple[str, ...]
    fixed: Mapping[str, Any]
    fitness: str
    data: str
    model: str
    epochs: int
    imgsz: int
    fraction: float
    batch: int | None = None
    searcher: str | None = None
    seed: int | None = None
    pruner: str | None = None
    space_source: str | None = None
    baseline_fixed: Mapping[str, Any] | None = None  # the plain training's args (trial #0)
    auto_optimizer: Mapping[str, Any] | None = None  # what optimizer=auto resolved to, and why
    # automl.objectives.Goals: None for a single-objective study without caps (older studies too)
    objectives: tuple[str, ...] | None = None
    max_size_mb: float | None = None
    max_latency_ms: float | None = None
    # the user's own training settings (KEY=VALUE, --cfg), ultralytics' defaults left out
    settings: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["space_keys"] = list(self.space_keys)
        if self.objectives is not None:
            out["objectives"] = list(self.objectives)
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> StudyConfig:
        """A stored config (unknown keys ignored, missing optional ones None)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["space_keys"] = tuple(values.get("space_keys") or ())
        if values.get("objectives") is not None:
            values["objectives"] = tuple(values["objectives"])
        values.setdefault("fixed", {})
        for name in ("space", "fitness", "data", "model"):
            values.setdefault(name, "")
        for name in ("epochs", "imgsz"):
            values.setdefault(name, 0)
        values.setdefault("fraction", 1.0)
        return cls(**values)

    @property
    def goals(self):
        """The study's objectives and caps (automl.objectives.Goals)."""
        from automl.objectives import Goals

        return Goals.from_dict({"objectives": self.objectives, "max_size_mb": self.max_size_mb,
                                "max_latency_ms": self.max_latency_ms})

    def conflict(self, stored: Mapping[str, Any]) -> str | None:
        """The first defining setting where a stored config differs from this one, as a message."""
        mine = self.to_dict()
        for key in (*DEFINING, *GOAL_FIELDS):
            # a goal missing from a stored config is its absence (no cap, fitness alone)
            if (key in stored or key in GOAL_FIELDS) and stored.get(key) != mine.get(key):
                if key == "settings":
                    return (f"was created with the training settings {_pairs(stored[key])}, not "
                            f"{_pairs(mine.get(key))}; give the original KEY=VALUE settings to "
                            "resume, or a new --study NAME")
                return (f"was created with {key}={stored.get(key)!r}, not {mine.get(key)!r}; use "
                        "the original value to resume, or a new --study NAME")
        return None


def _pairs(settings: Mapping[str, Any] | None) -> str:
    return " ".join(f"{k}={v}" for k, v in (settings or {}).items()) or "(none)"


def _demo(self) -> bool:
    """The built-in demo data (and its profile): no --data, and no replay (a replay's data is
    its record's, trained with ultralytics' own nominal batch)."""
    return self.data is None and self.replay is None


def _search_flags():
    from automl.options import SEARCH

    flags = make_dataclass(
        "SearchFlags",
        [(o.name, o.api_annotation(), field(default=o.default)) for o in SEARCH.options],
        frozen=True,
        namespace={"demo": property(_demo), "__doc__": (
            "`automl search`'s flags with their defaults: a field per option automl.options.SEARCH "
            "declares (its help is automl.search's docstring).")})
    flags.__module__ = __name__  # pickles as automl.config.SearchFlags
    return flags


# made from the one declaration of the search's options; `automl.search` takes the same keywords
SearchFlags = _search_flags()


def check_model(model: str) -> None:
    """Fail early, offline-safe: a .pt must exist locally; a .yaml must be one ultralytics can build.

    Raises:
        ConfigError: naming the flag and what to pass instead.
    """
    path = Path(model)
    if path.suffix == ".pt":
        if not path.is_file():
            raise ConfigError(
                f"--model {model}: weights file not found (nothing is downloaded); pass a local "
                "path, or a model YAML such as yolo11n.yaml to train from scratch"
            )
        from automl.weights import check_weights

        check_weights(path, "--model")  # every trial unpickles it: a crafted file must not run
        return
    if path.suffix not in {".yaml", ".yml"}:
        raise ConfigError(f"--model {model}: expected a .yaml model config or local .pt weights")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.nn.tasks import yaml_model_load

    try:
        yaml_model_load(model)
    except (FileNotFoundError, OSError) as e:
        raise ConfigError(
            f"--model {model}: no such model YAML, locally or in ultralytics' cfg/models "
            "(e.g. yolo11n.yaml, yolov8s.yaml)"
        ) from e


def training_profile(flags: SearchFlags) -> tuple[int, int, int]:
    """Epochs, imgsz and batch: the flags', else the demo profile's or the defaults."""
    profile = D.DEMO_PROFILE if flags.demo else {"epochs": D.EPOCHS, "imgsz": D.IMGSZ,
                                                 "batch": D.BATCH}
    return (flags.epochs if flags.epochs is not None else profile["epochs"],
            flags.imgsz if flags.imgsz is not None else profile["imgsz"],
            flags.batch if flags.batch is not None else profile["batch"])
