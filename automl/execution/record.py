"""A record of learning curves: its format, its reader, and the curves it gives a configuration.

A record (`benchmarks/records/*.npz`, written by `benchmarks/record_curves.py`) holds real
ultralytics trainings of many configurations of a space, each with several training seeds, and
every epoch's EpochReport. A configuration's curve is that of the nearest recorded configuration
(normalised distance in the space: log keys on a log scale, each range scaled to [0, 1]) for the
recorded seed the training seed picks, or a blend of the nearest (Record.blended_curve). Replayed
trials: automl.execution.replay.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from automl.epochs import MEMORY_FIELDS, EpochReport
from automl.errors import ConfigError
from automl.fitness import CLS_METRICS, TASK_METRICS

# EpochReport fields a record stores per epoch, in this order (node and device are not
# recorded, nor size and latency: a replayed search has no caps or objectives on them; nor
# why a training stopped early and the batch it ran: a record's trainings run their epochs at
# the batch its meta names; nor the memory a training used)
FIELDS = tuple(f.name for f in fields(EpochReport)
               if f.name not in ("epoch", "node", "device", "size_mb", "latency_ms",
                                 "stopped_by", *MEMORY_FIELDS))


# the metrics of one task only: a record of another task has none of them (NaN when replayed)
TASK_FIELDS = {*(m for names in TASK_METRICS.values() for m in names), *CLS_METRICS}


@dataclass(frozen=True)
class Record:
    """Recorded trainings: configurations x training seeds x epochs x FIELDS.

    Attributes:
        keys: the space's keys, the columns of `params`.
        params: (configs, keys) the recorded configurations.
        seeds: the training seeds, the second axis of `curves`.
        curves: (configs, seeds, epochs, FIELDS) float32, NaN where an epoch is missing.
        bounds: key -> (low, high, log): how distances are normalised.
        meta: what was recorded and how (regime, fixed args, cost, versions).
    """

    keys: tuple[str, ...]
    params: np.ndarray
    seeds: tuple[int, ...]
    curves: np.ndarray
    bounds: Mapping[str, tuple[float, float, bool]]
    meta: Mapping[str, Any]
    units: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", self.unit(self.params))

    @property
    def epochs(self) -> int:
        return self.curves.shape[2]

    def unit(self, params: np.ndarray) -> np.ndarray:
        """Configurations mapped into [0, 1] per key (log keys on a log scale)."""
        out = np.empty_like(params, dtype=float)
        for j, key in enumerate(self.keys):
            low, high, log = self.bounds[key]
            column = params[:, j].astype(float)
            if log:
                column, low, high = np.log(column), math.log(low), math.log(high)
            out[:, j] = (column - low) / (high - low) if high > low else 0.0
        return out

    def _distances(self, params: Mapping[str, Any]) -> np.ndarray:
        missing = [k for k in self.keys if k not in params]
        if missing:
            raise ConfigError(f"replay: the configuration lacks {', '.join(missing)}; the record "
                              f"covers the keys {', '.join(self.keys)}")
        point = self.unit(np.array([[float(params[k]) for k in self.keys]]))
        return np.sqrt(((self.units - point) ** 2).sum(axis=1))

    def nearest(self, params: Mapping[str, Any]) -> int:
        """Index of the recorded configuration closest to `params` (normalised distance)."""
        return int(self.neighbours(params)[0][0])

    def neighbours(self, params: Mapping[str, Any], k: int = 1,
                   bandwidth: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Which recorded configurations stand in for `params`, and their weights (summing to 1).

        - `bandwidth` > 0: every recorded configuration, weighted by a Gaussian kernel of that
          width in the normalised space (a smooth surrogate: any step, however small, changes
          the outcome a little, as in a real training; fit the width with
          `benchmarks/replay_searchers.py --fit-bandwidth`);
        - else `k` <= 1: the nearest one alone (a tabular replay);
        - else the `k` nearest by inverse squared distance (a recorded configuration itself gets
          all the weight).
        """
        distances = self._distances(params)
        if bandwidth > 0:
            weights = np.exp(-0.5 * (distances / bandwidth) ** 2)
            if weights.sum() <= 0:  # far from every point: the nearest one
                return np.array([int(np.argmin(distances))]), np.ones(1)
            return np.arange(len(distances)), weights / weights.sum()
        order = np.argsort(distances, kind="stable")[:max(1, k)]
        near = distances[order]
        if k <= 1 or near[0] < 1e-9:
            return order[:1], np.ones(1)
        weights = 1.0 / near**2
        return order, weights / weights.sum()

    def blended_curve(self, params: Mapping[str, Any], seed: int, k: int = 1,
                      bandwidth: float = 0.0) -> list[EpochReport]:
        """The epochs replayed for `params` and training seed `seed`: the recorded epochs of the
        configurations `neighbours` picks, their weighted mean epoch by epoch (seeds beyond the
        recorded ones wrap around)."""
        index, weights = self.neighbours(params, k, bandwidth)
        return _epochs(_blend(weights, self.curves[index, seed % len(self.seeds)].astype(float)))

    def worth(self, params: Mapping[str, Any], k: int = 1, fitness: str | None = None,
              bandwidth: float = 0.0) -> float:
        """What a configuration is worth in the record: the training seeds' mean final fitness
        of the configurations `neighbours` picks, blended as `blended_curve` blends them."""
        finals = np.nanmean(self.final(fitness), axis=1)
        index, weights = self.neighbours(params, k, bandwidth)
        return float(_blend(weights, finals[index]))

    def curve(self, index: int, seed: int) -> list[EpochReport]:
        """The recorded epochs of configuration `index` for training seed `seed` (seeds beyond
        the recorded ones wrap around)."""
        return _epochs(self.curves[index, seed % len(self.seeds)])

    def final(self, fitness: str | None = None) -> np.ndarray:
        """(configs, seeds) fitness at each training's last recorded epoch, under `fitness`
        (default: the recorded fitness)."""
        values = self._fitness(fitness)
        last = np.array([[int(np.nanmax(np.where(~np.isnan(values[i, s]),
                                                  np.arange(self.epochs), -1)))
                          for s in range(len(self.seeds))] for i in range(len(values))])
        return np.take_along_axis(values, last[..., None], axis=2)[..., 0]

    def _fitness(self, fitness: str | None) -> np.ndarray:
        if fitness is None:
            return self.curves[..., FIELDS.index("fitness")].astype(float)
        from automl.fitness import parse_fitness

        fit = parse_fitness(fitness)
        total = np.zeros(self.curves.shape[:3])
        for name, weight in fit.weights:
            total = total + weight * self.curves[..., FIELDS.index(name)]
        return total

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "keys": list(self.keys), "seeds": list(self.seeds),
                "fields": list(FIELDS), "bounds": {k: list(v) for k, v in self.bounds.items()}}
        np.savez_compressed(path, params=self.params, curves=self.curves.astype(np.float32),
                            meta=np.array(json.dumps(meta)))
        return path


def _epochs(rows: np.ndarray) -> list[EpochReport]:
    """EpochReports of one curve's rows, up to the first epoch the training did not reach."""
    out = []
    for epoch, row in enumerate(rows, start=1):
        values = dict(zip(FIELDS, (float(v) for v in row), strict=True))
        if math.isnan(values["fitness"]) and math.isnan(values["map50_95"]):
            break  # the training stopped (or failed) here
        out.append(EpochReport(epoch=epoch, **values))
    return out


def _blend(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The weighted mean over the first axis, NaN ignored (the weights of the values present
    renormalised); NaN only where every value is NaN (a neighbour whose training stopped early
    does not cut the blend short)."""
    present = ~np.isnan(values)
    w = np.where(present, weights.reshape((-1,) + (1,) * (values.ndim - 1)), 0.0)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (w * np.nan_to_num(values)).sum(axis=0) / total, np.nan)


def _with_fields(curves: np.ndarray, recorded: tuple[str, ...], path: Path) -> np.ndarray:
    """The record's curves over today's FIELDS: a metric added since it was recorded (another
    task's, NaN for the task it trained) gets a column of NaN; any other difference refuses it.

    Raises:
        ConfigError: a recorded field is gone, or a field other than another task's is missing.
    """
    if recorded == FIELDS:
        return curves
    missing = [f for f in FIELDS if f not in recorded]
    if set(recorded) - set(FIELDS) or any(f not in TASK_FIELDS for f in missing):
        raise ConfigError(f"replay: {path}: recorded fields {list(recorded)} are not "
                          f"{list(FIELDS)}; record it again")
    out = np.full(curves.shape[:-1] + (len(FIELDS),), np.nan, dtype=curves.dtype)
    for i, name in enumerate(recorded):
        out[..., FIELDS.index(name)] = curves[..., i]
    return out


@lru_cache(maxsize=4)
def load_record(path: str | Path) -> Record:
    """Read a record written by Record.save (cached per process: replay trials share it).

    Raises:
        ConfigError: the file is missing or is not a record.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"replay: {path}: no such record; make one with "
                          "benchmarks/record_curves.py")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            params, curves = z["params"], z["curves"]
    except (OSError, KeyError, ValueError) as e:
        raise ConfigError(f"replay: {path}: not a record of learning curves ({e})") from None
    curves = _with_fields(curves, tuple(meta.get("fields", ())), path)
    return Record(keys=tuple(meta["keys"]), params=params, seeds=tuple(meta["seeds"]),
                  curves=curves, bounds={k: (float(v[0]), float(v[1]), bool(v[2]))
                                         for k, v in meta["bounds"].items()},
                  meta=meta)


# fixed args a record may differ in without changing what a training measures
_BOOKKEEPING = frozenset({"batch"})


def check_record(record: Record, run) -> None:
    """Refuse a replay whose record was trained otherwise than this search's trials would be.

    A replayed trial reports what a recorded training measured: it stands in for this search's
    training only when the record has the same epochs and the same fixed args, for the searched
    trials and for the plain training (warmup_bias_lr, optimizer, ...). The fitness may differ:
    replayed epochs are scored under the search's fitness (replayed_epochs).

    Raises:
        ConfigError: one line naming the record, what differs, and the fix.
    """
    from automl.searching.spaces import ultralytics_defaults

    defaults = ultralytics_defaults()  # an arg left out trains at ultralytics' default
    flags = record.meta.get("flags", {})
    source = run.replay
    if "epochs" in flags and int(flags["epochs"]) != int(run.epochs):
        raise ConfigError(f"--replay {source}: recorded trainings of {flags['epochs']} epochs "
                          f"cannot stand in for {run.epochs}-epoch trials; use --epochs "
                          f"{flags['epochs']}")
    for what, recorded, searched in (
            ("searched trials", record.meta.get("fixed"), run.fixed),
            ("the plain training", record.meta.get("baseline_fixed"), run.baseline_fixed)):
        if recorded is None:
            continue
        keys = sorted((set(recorded) | set(searched)) - _BOOKKEEPING - set(record.keys))
        was = {k: recorded.get(k, defaults.get(k)) for k in keys}
        now = {k: searched.get(k, defaults.get(k)) for k in keys}
        differ = [k for k in keys if _differs(was[k], now[k])]
        if differ:
            was = ", ".join(f"{k}={was[k]}" for k in differ)
            now = ", ".join(f"{k}={now[k]}" for k in differ)
            raise ConfigError(
                f"--replay {source}: its {what} trained {was}, this search's would train {now}; "
                f"replay with a space whose fixed: gives {was} (automl.execution.record.record_space), or "
                "record the curves again")


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return not math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    return a != b


def recorded_space(record: Record) -> dict[str, Any]:
    """A space (as its YAML reads) over the record's keys and bounds, fixed as its searched
    trials were trained: what a search must look like for the record to stand in for them."""
    params = {k: {"type": "float", "low": lo, "high": hi, "log": bool(log)}
              for k, (lo, hi, log) in record.bounds.items()}
    fixed = {k: v for k, v in (record.meta.get("fixed") or {}).items()
             if k not in _BOOKKEEPING}
    plain = record.meta.get("baseline_fixed") or {}
    if "optimizer" in fixed and fixed["optimizer"] == plain.get("optimizer") and "lr0" in plain:
        # the optimizer ultralytics' auto picked, made explicit for the searched trials: written
        # as auto, a search resolves it again and its plain training trains auto's lr0 and
        # momentum, as the record's did (a space's fixed optimizer is the plain training's too)
        fixed["optimizer"] = "auto"
    return {"description": f"the space recorded in {record.meta.get('regime', 'a record')}: its "
                           "keys, bounds and fixed args", "fixed": fixed, "params": params}


def replay_space(record_path: str | Path, space: str | Path):
    """The space a replay searches: `space` as given, or the record's own (recorded_space) when
    `space` is left at its default: a search the record can stand in for as shipped."""
    from automl.defaults import SPACE
    from automl.searching.spaces import load_space, parse_space

    if str(space) != SPACE:
        return load_space(space)
    return parse_space(recorded_space(load_record(record_path)), source=f"--replay {record_path}",
                       name="recorded")


def record_space(record: Record, path: str | Path) -> Path:
    """Write the record's own space (recorded_space) as a space YAML."""
    import yaml

    path = Path(path)
    path.write_text(yaml.safe_dump(recorded_space(record)))
    return path


def record_dataset(record: Record):
    """A stand-in for the recorded data: the counts and names a search plan reads, no files."""
    from automl.data.dataset import Dataset

    info = record.meta["dataset"]
    return Dataset(yaml_path=Path(info["yaml"]), names=tuple(info["names"]),
                   train=tuple(Path(f"replayed/train/{i}") for i in range(info["n_train"])),
                   val=tuple(Path(f"replayed/val/{i}") for i in range(info["n_val"])))
