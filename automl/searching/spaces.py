"""Search spaces: YAML files validated into frozen, typed objects, turned into Optuna distributions here.

A space file looks like::

    description: what this space is for
    fixed:                  # ultralytics train args held constant for every trial (optional)
      optimizer: SGD
    params:                 # the keys the searcher varies, under their ultralytics names
      lr0: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
      momentum: {type: float, low: 0.6, high: 0.98, gain: 0.3}
      optimizer: {type: categorical, choices: [SGD, Adam, AdamW]}

`gain` (default 1.0) scales how strongly the GA mutates that key; 0 freezes it for the GA.
"""

from __future__ import annotations

import difflib
import importlib.resources
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from automl.errors import ConfigError, SearchSpaceError

KINDS = ("float", "int", "categorical")
_FIELDS = {
    "float": {"type", "low", "high", "log", "step", "gain"},
    "int": {"type", "low", "high", "log", "step", "gain"},
    "categorical": {"type", "choices", "gain"},
}
_TOP_LEVEL = {"description", "fixed", "params", "by_optimizer"}
# ultralytics' BaseTrainer.build_optimizer accepts these names and fails only once training starts,
# so they are checked here, before the first trial.
OPTIMIZERS = ("SGD", "MuSGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSprop", "auto")
# Args that are run plumbing, not hyperparameters: a space must not vary or fix them.
_RESERVED = {"data", "model", "epochs", "imgsz", "device", "project", "name", "exist_ok", "mode",
             "task", "resume", "save_dir", "fraction", "plots", "save", "val", "verbose"}
# what would make ultralytics read other labels than the check and the mini split read
_CHANGES_THE_DATA = {"single_cls", "classes"}
# ... but these two a space may search (under params, never fixed: --model and --imgsz fix them)
SEARCHABLE_RUN_KEYS = ("model", "imgsz")


@dataclass(frozen=True)
class Param:
    """One searchable ultralytics training argument."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    gain: float = 1.0

    def to_distribution(self):
        """The Optuna distribution for this param (the single place where that mapping lives)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def clip(self, value: Any) -> Any:
        """Bring a value into this param's domain: bounds, integer-ness and step grid."""
        if self.kind == "categorical":
            return value if value in self.choices else self.choices[0]
        value = min(max(float(value), self.low), self.high)
        if self.step:
            value = self.low + round((value - self.low) / self.step) * self.step
            value = min(float(f"{value:.10g}"), self.high)  # 0.9, not 0.8999999999999999
        if self.kind == "int":
            return int(round(value))
        return float(value)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: the params to vary and the args to hold fixed."""

    name: str
    source: str
    params: tuple[Param, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    # optimizer name -> params whose ranges replace those of `params` when that optimizer trains
    by_optimizer: Mapping[str, tuple[Param, ...]] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def for_optimizer(self, name: str) -> SearchSpace:
        """This space with the ranges its `by_optimizer` section gives for optimizer `name`."""
        override = {p.name: p for p in self.by_optimizer.get(name, ())}
        if not override:
            return self
        params = tuple(override.get(p.name, p) for p in self.params)
        return SearchSpace(name=self.name, source=self.source, params=params, fixed=self.fixed,
                           description=self.description, by_optimizer=self.by_optimizer)

    def __getitem__(self, key: str) -> Param:
        for p in self.params:
            if p.name == key:
                return p
        raise KeyError(key)

    def distributions(self) -> dict[str, Any]:
        """Optuna distributions keyed by ultralytics argument name."""
        return {p.name: p.to_distribution() for p in self.params}

    def gains(self) -> dict[str, float]:
        return {p.name: p.gain for p in self.params}


def builtin_dir() -> Path:
    """The folder holding the shipped spaces (top-level search_spaces/, packaged as automl.search_spaces)."""
    return Path(str(importlib.resources.files("automl.search_spaces")))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


@lru_cache(maxsize=1)
def ultralytics_defaults() -> dict[str, Any]:
    """Ultralytics' training defaults, read from its default.yaml without importing torch."""
    import importlib.util

    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise SearchSpaceError("ultralytics is not installed: pip install ultralytics")
    path = Path(spec.submodule_search_locations[0]) / "cfg" / "default.yaml"
    return yaml.safe_load(path.read_text())


def resolve_space_path(name_or_path: str | Path) -> Path:
    """A built-in space name (`lr_momentum`) or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"} or candidate.exists():
        if not candidate.is_file():
            raise SearchSpaceError(
                f"{candidate}: search space file not found; pass an existing YAML file "
                f"or one of the built-in names: {', '.join(builtin_names())}"
            )
        return candidate
    builtin = builtin_dir() / f"{name_or_path}.yaml"
    if not builtin.is_file():
        hint = difflib.get_close_matches(str(name_or_path), builtin_names(), n=1)
        did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise SearchSpaceError(
            f"--space {name_or_path}: no such built-in space{did_you_mean}; "
            f"choose one of {', '.join(builtin_names())} or pass a path to a YAML file"
        )
    return builtin


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Load and validate a search space by built-in name or path.

    Raises:
        SearchSpaceError: naming the file, the key and the fix, for any malformed entry.
    """
    path = resolve_space_path(name_or_path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError:
        raise SearchSpaceError(f"{path}: is not UTF-8 text; save it as UTF-8") from None
    except _DuplicateKey as e:
        raise SearchSpaceError(f"{path}: line {e.line}: {e.key} is given twice; keep one (YAML "
                               "would silently keep the last)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SearchSpaceError(f"{path}:{where} is not valid YAML ({e.__class__.__name__})") from e
    return parse_space(raw, source=str(path), name=path.stem)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(key)
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, refusing a mapping that gives one key twice."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _fail(source: str, key: str, msg: str) -> SearchSpaceError:
    return SearchSpaceError(f"{source}: {key}: {msg}")


def _check_known_key(source: str, key: str, *, searched: bool = False) -> None:
    defaults = ultralytics_defaults()
    if key in SEARCHABLE_RUN_KEYS and not searched:
        raise _fail(source, key, f"is fixed by automl's --{key} flag; list it under 'params' to "
                                 "search it")
    if key in _RESERVED and key not in SEARCHABLE_RUN_KEYS:
        raise _fail(source, key, "is set by automl's own flags, not by a search space; remove it")
    if key in _CHANGES_THE_DATA:
        raise _fail(source, key, "changes which labels the trials train on; give it as your "
                                 f"training setting instead (automl search ... {key}=...)")
    if key not in defaults:
        hint = difflib.get_close_matches(key, list(defaults), n=1)
        did_you_mean = f"did you mean '{hint[0]}'? " if hint else ""
        raise _fail(
            source, key, f"is not an ultralytics training argument; {did_you_mean}"
            "see ultralytics/cfg/default.yaml for the accepted keys"
        )


def _check_ultralytics_accepts(source: str, key: str, values: list[Any],
                               where: str | None = None) -> None:
    """Ask ultralytics' own argument checker whether each value is acceptable for `key`."""
    from ultralytics.cfg import check_cfg

    for value in values:
        if key == "optimizer" and value not in OPTIMIZERS:
            raise _fail(source, where or key,
                        f"unknown optimizer {value!r}; use one of {', '.join(OPTIMIZERS)}")
        try:
            check_cfg({key: value}, hard=True)
        except (TypeError, ValueError) as e:
            raise _fail(source, where or key, f"ultralytics rejects the value {value!r}: {e}") from None


def _number(source: str, key: str, spec: Mapping[str, Any], name: str) -> float:
    value = spec.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(source, key, f"'{name}' must be a finite number, got {value!r}")
    return value


def _parse_param(source: str, key: str, spec: Any, where: str | None = None) -> Param:
    where = where or key  # how errors name the entry
    if not isinstance(spec, Mapping):
        raise _fail(source, where, "must be a mapping such as {type: float, low: 0.0, high: 1.0}")
    kind = spec.get("type")
    if kind is None:  # infer the obvious cases so short files stay short
        if "choices" in spec:
            kind = "categorical"
        elif all(isinstance(spec.get(b), int) and not isinstance(spec.get(b), bool)
                 for b in ("low", "high")):
            kind = "int"
        else:
            kind = "float"
    if kind not in KINDS:
        raise _fail(source, where, f"type {kind!r} is not one of {', '.join(KINDS)}")
    unknown = set(spec) - _FIELDS[kind]
    if unknown:
        raise _fail(
            source, where,
            f"unknown field(s) {', '.join(sorted(unknown))} for type {kind}; "
            f"allowed: {', '.join(sorted(_FIELDS[kind]))}",
        )
    gain = spec.get("gain", 1.0)
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or gain < 0:
        raise _fail(source, where, f"gain must be a number >= 0, got {gain!r}")

    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise _fail(source, where, "choices must be a non-empty list, e.g. choices: [SGD, AdamW]")
        if len(set(map(repr, choices))) != len(choices):
            raise _fail(source, where, f"choices repeat a value: {choices}")
        if any(not isinstance(c, (str, int, float, bool)) and c is not None for c in choices):
            raise _fail(source, where, "choices must be strings, numbers, booleans or null")
        _check_ultralytics_accepts(source, key, choices, where)
        return Param(key, kind, choices=tuple(choices), gain=float(gain))

    low = _number(source, where, spec, "low")
    high = _number(source, where, spec, "high")
    log = spec.get("log", False)
    step = spec.get("step")
    if not isinstance(log, bool):
        raise _fail(source, where, f"log must be true or false, got {log!r}")
    if low > high:
        raise _fail(source, where, f"low > high ({low=}, {high=}); swap them")
    if log and low <= 0:
        raise _fail(source, where, f"log: true needs low > 0 ({low=}); raise low or drop log")
    if step is not None:
        step = _number(source, where, spec, "step")
        if step <= 0:
            raise _fail(source, where, f"step must be > 0 ({step=})")
        if log:
            raise _fail(source, where, "log and step cannot be combined; drop one of them")
    if kind == "int":
        for bound_name, bound in (("low", low), ("high", high), ("step", step)):
            if bound is not None and float(bound) != int(bound):
                raise _fail(source, where, f"type int needs whole numbers, {bound_name}={bound}")
        low, high = int(low), int(high)
        step = int(step) if step is not None else None
    else:
        low, high = float(low), float(high)
        step = float(step) if step is not None else None
    _check_ultralytics_accepts(source, key, [low, high], where)
    return Param(key, kind, low=low, high=high, log=log, step=step, gain=float(gain))


def parse_space(raw: Any, *, source: str = "<space>", name: str = "custom") -> SearchSpace:
    """Validate an already-loaded YAML mapping into a SearchSpace."""
    if not isinstance(raw, Mapping):
        raise SearchSpaceError(f"{source}: must be a mapping with a 'params' section")
    unknown = set(raw) - _TOP_LEVEL
    if unknown:
        raise SearchSpaceError(
            f"{source}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}; "
            f"allowed: {', '.join(sorted(_TOP_LEVEL))} (params go under 'params:')"
        )
    params_raw = raw.get("params")
    if not isinstance(params_raw, Mapping) or not params_raw:
        raise SearchSpaceError(f"{source}: 'params' must map at least one ultralytics key to a range")
    params = []
    for key, spec in params_raw.items():
        key = str(key)
        _check_known_key(source, key, searched=True)
        param = _parse_param(source, key, spec)
        if key in SEARCHABLE_RUN_KEYS:
            _check_run_key(source, param)
        params.append(param)

    fixed_raw = raw.get("fixed") or {}
    if not isinstance(fixed_raw, Mapping):
        raise SearchSpaceError(f"{source}: 'fixed' must be a mapping of ultralytics key: value")
    fixed = {}
    for key, value in fixed_raw.items():
        key = str(key)
        _check_known_key(source, key)
        if key in params_raw:
            raise _fail(source, key, "is both in 'fixed' and in 'params'; keep it in one of them")
        _check_ultralytics_accepts(source, key, [value])
        fixed[key] = value
    return SearchSpace(
        name=name,
        source=source,
        params=tuple(params),
        fixed=fixed,
        description=str(raw.get("description", "")),
        by_optimizer=_parse_by_optimizer(raw.get("by_optimizer"), source, params_raw),
    )


def _check_run_key(source: str, param: Param) -> None:
    """`model`: choices of model YAMLs or local .pt weights (each checked as --model is);
    `imgsz`: sizes of at least 32 px."""
    if param.name == "model":
        from automl.config import check_model
        from automl.data.tasks import model_task, refuse_unsupported

        if param.kind != "categorical" or not all(isinstance(c, str) for c in param.choices):
            raise _fail(source, "model", "must be choices of model files, e.g. choices: "
                                         "[yolo11n.yaml, yolo11s.yaml]")
        tasks = {}
        for choice in param.choices:
            try:
                check_model(choice)
                tasks[choice] = model_task(choice)
                refuse_unsupported(tasks[choice], choice)
            except ConfigError as e:
                raise _fail(source, "model", str(e).replace("--model ", "choice ")) from None
        if len(set(tasks.values())) > 1:  # one fitness measures every trial of a study
            trains = ", ".join(f"{c}: {t}" for c, t in tasks.items())
            raise _fail(source, "model", f"choices train different tasks ({trains}); search "
                                         "one task at a time")
        return
    values = param.choices if param.kind == "categorical" else (param.low, param.high)
    if param.kind == "float" or any(isinstance(v, bool) or not isinstance(v, int) or v < 32
                                    for v in values):
        raise _fail(source, "imgsz", "must be whole pixel sizes of at least 32, e.g. choices: "
                                     "[320, 480, 640] or {low: 320, high: 640, step: 32}")


def _parse_by_optimizer(raw: Any, source: str, params_raw: Mapping[str, Any]
                        ) -> dict[str, tuple[Param, ...]]:
    """`by_optimizer: {AdamW: {lr0: {...}}}`: per-optimizer ranges of keys listed under params."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SearchSpaceError(f"{source}: 'by_optimizer' must map an optimizer name to params, "
                               "e.g. by_optimizer: {SGD: {lr0: {low: 1.0e-3, high: 0.1}}}")
    out = {}
    for name, overrides in raw.items():
        if name not in OPTIMIZERS or name == "auto":
            raise SearchSpaceError(
                f"{source}: by_optimizer: {name}: not an optimizer; use one of "
                f"{', '.join(o for o in OPTIMIZERS if o != 'auto')}")
        if not isinstance(overrides, Mapping) or not overrides:
            raise SearchSpaceError(f"{source}: by_optimizer: {name}: must map keys to ranges")
        for key in overrides:
            if str(key) not in params_raw:
                raise SearchSpaceError(
                    f"{source}: by_optimizer: {name}: {key}: not under 'params'; list it there "
                    "first (by_optimizer only changes the range of a searched key)")
        out[str(name)] = tuple(_parse_param(source, str(key), spec, f"by_optimizer: {name}: {key}")
                               for key, spec in overrides.items())
    return out
