"""The user's own `yolo train` settings: `KEY=VALUE` pairs and a `cfg=` file, read and checked by
ultralytics' own code (its CLI parser, `check_dict_alignment`, `check_cfg`).

They are the user's training: every trial trains with them, the plain training (trial #0)
included. Keys automl has a flag for become that flag; keys automl sets itself, or that the
space searches, are refused in one line naming what to do instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from automl.errors import AutoMLError, ConfigError

# `yolo train` keys that are automl flags: KEY=VALUE sets the flag
AS_FLAGS = ("data", "model", "epochs", "imgsz", "batch", "device")
# keys automl sets for every training itself, or that a search cannot take: what to do instead
OWNED = {
    "project": "trials go to studies/NAME/trials (automl promote --project sets a promotion's)",
    "name": "automl names each trial's run folder",
    "exist_ok": "automl names each trial's run folder",
    "save_dir": "trials go to studies/NAME/trials (automl promote --project sets a promotion's)",
    "resume": "run the same automl search command again to continue a study",
    "mode": "automl search trains",
    "task": "automl takes the task from --model and the data",
    "val": "every trial validates after each epoch: the search ranks trials on it",
    "plots": "trials draw no plots (automl report draws the study's)",
    "save": "automl keeps the weights of the trials --keep-weights names",
    "verbose": "automl prints one line per trial",
}
# keys that choose the images a training reads: the search reads the data with them (the check,
# the mini split), so a trial, whose lists hold those images already, trains without them
DATA_KEYS = ("fraction",)


def read_as_trained(data_yaml: str | Path, settings: Mapping[str, Any]):
    """The data.yaml's images as a training with these settings lists them: `fraction=` keeps
    the first images of each list, as ultralytics does (its `split=` for the validation's share).

    Raises:
        DataError: the data.yaml cannot be read; ConfigError: a share that selects no image.
    """
    from automl.data.dataset import load_dataset

    fraction = settings.get("fraction", 1.0)
    if Path(data_yaml).is_dir() and fraction != 1:
        raise ConfigError(f"fraction={fraction}: with class folders automl cannot yet list the "
                          "images that fraction= trains on; leave it out (--fraction takes a "
                          "stratified share for the trials)")
    try:
        return load_dataset(data_yaml, fraction=fraction,
                            val_split=str(settings.get("split", "val")))
    except AutoMLError:  # the data's own error, which names its file and fix
        raise
    except ValueError as e:  # ultralytics' own check of a [train, val, test] share
        raise ConfigError(f"fraction={fraction}: {e}") from None


def for_trials(args: Mapping[str, Any]) -> dict[str, Any]:
    """A training's args for a trial, whose data lists hold the images DATA_KEYS chose."""
    return {k: v for k, v in args.items() if k not in DATA_KEYS}


def _ultralytics_cfg():
    import os

    os.environ.setdefault("YOLO_OFFLINE", "1")
    import ultralytics.cfg as cfg

    return cfg


def _quiet_alignment(defaults: Mapping[str, Any], custom: dict[str, Any], where: str) -> None:
    """ultralytics' own key check (did-you-mean suggestions), as one line."""
    import logging

    cfg = _ultralytics_cfg()
    log = logging.getLogger("ultralytics")
    level, log.level = log.level, logging.WARNING  # it logs its whole CLI help first
    try:
        cfg.check_dict_alignment(defaults, custom)
    except SyntaxError as e:
        lines = [line.strip() for line in str(e.msg if e.msg else e).splitlines() if line.strip()]
        raise ConfigError(f"{where}: {' '.join(lines)} (ultralytics/cfg/default.yaml lists "
                          "every key)") from None
    finally:
        log.level = level


def _parse_pairs(pairs: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings as `yolo train` parses them; a bare boolean key means True."""
    cfg = _ultralytics_cfg()
    defaults = cfg.DEFAULT_CFG_DICT
    try:
        merged = cfg.merge_equals_args(list(pairs))
    except SyntaxError as e:
        raise ConfigError(f"{' '.join(pairs)}: {e}") from None
    out: dict[str, Any] = {}
    for pair in merged:
        if pair.startswith("-"):
            raise ConfigError(f"{pair}: not an option of this command (see its --help)")
        if "=" in pair:
            try:
                key, value = cfg.parse_key_value_pair(pair)
            except AssertionError:
                key = pair.split("=", 1)[0]
                raise ConfigError(f"{pair}: missing value; give {key}=VALUE") from None
        elif isinstance(defaults.get(pair), bool):
            key, value = pair, True  # as `yolo train cos_lr` does
        elif pair in defaults:
            raise ConfigError(f"{pair}: missing '='; give {pair}=VALUE (ultralytics' default: "
                              f"{pair}={defaults[pair]})")
        else:
            _quiet_alignment(defaults, {pair: ""}, pair)
            raise AssertionError("unreachable: an unknown key passes ultralytics' check")
        out[key] = value
    return out


def _read_cfg_file(path: str | Path, where: str) -> dict[str, Any]:
    from automl.options import plain_text

    if problem := plain_text(str(path)):  # empty, control characters, too long for a path
        raise ConfigError(f"{where}: {problem}")
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{where}: no such file; pass a yolo train cfg= YAML (e.g. a "
                          "best_hyperparameters.yaml automl wrote)")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: not a valid YAML file ({type(e).__name__})") from None
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a mapping of ultralytics train keys to values")
    return {str(k): v for k, v in raw.items()}


def read_settings(pairs: Sequence[str] | Mapping[str, Any] | None,
                  cfg: str | Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The user's training settings and the automl flags they set.

    `cfg` (and a `cfg=FILE` pair) is read first, the pairs over it, as `yolo train` does. Keys
    whose value is ultralytics' default change nothing and are dropped (a full copy of
    default.yaml works as a cfg file), but for those of AS_FLAGS: they set their flag.

    Returns:
        (settings, flags): ultralytics train args that differ from its defaults, and the values
        of AS_FLAGS keys, by flag name.

    Raises:
        ConfigError: an unknown key (ultralytics' suggestion), a wrong type or value (ultralytics'
            check), a key automl sets itself, or a missing cfg file; in one line.
    """
    ucfg = _ultralytics_cfg()
    defaults = ucfg.DEFAULT_CFG_DICT
    given = dict(pairs) if isinstance(pairs, Mapping) else _parse_pairs(pairs or ())
    merged: dict[str, Any] = {}
    from automl.options import shown

    files = [(cfg, f"--cfg {shown(cfg)}")] if cfg else []
    if given.get("cfg"):
        files.append((given["cfg"], f"cfg={shown(given['cfg'])}"))
    for path, where in files:
        from_file = _read_cfg_file(path, where)
        from_file.pop("cfg", None)
        _quiet_alignment(defaults, from_file, where)
        merged.update(from_file)
    given.pop("cfg", None)
    _quiet_alignment(defaults, given, " ".join(f"{k}={v}" for k, v in given.items()))
    merged.update(given)
    try:
        ucfg.check_cfg(merged, hard=True)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{e} (ultralytics' check of your training settings)") from None
    # a flag's key given is that flag, ultralytics' default value or not (epochs: 100 in a cfg
    # file trains 100 epochs, as yolo train would, not automl's default)
    flags = {k: merged.pop(k) for k in AS_FLAGS if merged.get(k) not in (None, "")}
    changed = {k: v for k, v in merged.items() if k not in AS_FLAGS and v != defaults.get(k)}
    if isinstance(changed.get("time"), int | float) and changed["time"] < 0:
        raise ConfigError(f"time={changed['time']}: hours of training, more than 0 (or leave "
                          "it out to train --epochs epochs)")
    for key in changed:
        if key in OWNED:
            raise ConfigError(f"{key}={changed[key]}: {OWNED[key]}; leave it out")
    return changed, flags


def merge_flags(current: Mapping[str, Any], from_settings: Mapping[str, Any],
                defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Flag values with those KEY=VALUE set; a key given both ways must agree.

    Args:
        current: the flags' values by name; defaults: each flag's value when left out.

    Raises:
        ConfigError: KEY=VALUE and --KEY given with different values.
    """
    out = {}
    for key, value in from_settings.items():
        own = current.get(key)
        if own is not None and own != defaults.get(key) and own != value:
            raise ConfigError(f"{key}={value} and --{key} {own} disagree; give one of them")
        out[key] = value
    return out


def check_against_space(settings: Mapping[str, Any], space) -> None:
    """Refuse a setting the space searches: a fixed value would stop the search of it.

    Raises:
        ConfigError: naming the key, the space and what to do instead.
    """
    for key in settings:
        if key in space.keys:
            raise ConfigError(
                f"{key}={settings[key]}: the space {space.name} searches {key}; leave {key} out "
                f"(trial #0 trains it at ultralytics' value), or use a space that does not search "
                f"{key} (a space YAML of your own: --space FILE)")


def differences(args: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The args whose value is not ultralytics' default (the header lists them)."""
    return {k: v for k, v in args.items() if k not in defaults or v != defaults[k]}


def check_pretrained(settings: Mapping[str, Any]) -> None:
    """`pretrained=FILE.pt`: the weights every trial starts from, checked as --model is.

    Raises:
        ConfigError: no such local file, or not weights that are safe to load.
    """
    value = settings.get("pretrained")
    if not isinstance(value, str):
        return
    if not Path(value).is_file():
        raise ConfigError(f"pretrained={value}: weights file not found (nothing is downloaded); "
                          "pass a local .pt, or pretrained=True to start from --model's weights")
    from automl.weights import check_weights

    check_weights(value, "pretrained=")


def describe_start(model: str, settings: Mapping[str, Any]) -> str:
    """What every trial, the plain training included, starts from, in a few words."""
    pretrained = settings.get("pretrained", True)
    freeze = settings.get("freeze")
    frozen = (f", its first {freeze} layers frozen" if isinstance(freeze, int) else
              f", layers {freeze} frozen" if freeze else "")
    if isinstance(pretrained, str):
        return f"every trial builds {model} and starts from the weights of {pretrained}{frozen}"
    if not str(model).endswith(".pt"):
        return f"every trial trains {model} from scratch{frozen}"
    if pretrained is False:
        return f"every trial trains the architecture of {model} from scratch (pretrained=False)"
    return (f"a trained start: every trial fine-tunes {model}{frozen}, the plain training "
            "included")


# ultralytics' experiment-tracker integrations (`yolo settings KEY=True`), and where a trial of
# project p named n logs with each (ultralytics' own naming: automl leaves them as they are)
TRACKERS = {
    "tensorboard": "TensorBoard: {p}/{n} (tensorboard --logdir {p})",
    "mlflow": "MLflow: experiment {p} (or $MLFLOW_EXPERIMENT_NAME), run {n}",
    "wandb": "W&B: project {p} (/ as -), run {n}",
    "clearml": "ClearML: project {p}, task {n}",
    "comet": "Comet: project {p}, experiment {n}",
    "dvc": "DVCLive: {p}/{n}",
}


def tracker_works(key: str) -> bool:
    """Whether ultralytics' integration `key` would log: its callbacks module finds its package
    (it has none when the package is missing, or under pytest)."""
    from importlib import import_module

    try:
        module = import_module(f"ultralytics.utils.callbacks.{'wb' if key == 'wandb' else key}")
    except Exception:  # an integration that fails to import logs nothing either
        return False
    return bool(getattr(module, "callbacks", None))


def trackers_text(settings: Mapping[str, Any], project: str,
                  works=tracker_works) -> str | None:
    """Which of ultralytics' experiment trackers `yolo settings` turns on (and whose package is
    there), and where each trial logs with them; None when none: automl turns none on."""
    on = [key for key in TRACKERS if settings.get(key) is True and works(key)]
    if not on:
        return None
    where = "; ".join(TRACKERS[key].format(p=project, n="trial_NNNN") for key in on)
    return f"your yolo settings turn on {', '.join(on)}: each trial logs as its own run ({where})"


def training_lines(settings: Mapping[str, Any], *, model: str, epochs: int, batch: int | None,
                   autobatch: bool, pruner: str, project: str | None) -> list[str]:
    """The search header's lines on the user's training: the trackers that log each trial (where
    trials train in `project`), AutoBatch, a trained start, ultralytics' early stopping."""
    lines = []
    if project is not None:
        from ultralytics.utils import SETTINGS

        tracked = trackers_text(SETTINGS, project)
        if tracked:
            lines.append(tracked)
    if autobatch:
        lines.append("batch -1: ultralytics' AutoBatch " + (
            f"falls back to batch {batch} on the CPU" if batch and batch > 0 else
            "picks each trial's batch on its GPU (recorded on the trial as batch)"))
    if model.endswith(".pt") or settings.get("freeze") or isinstance(settings.get("pretrained"),
                                                                     str):
        lines.append(describe_start(model, settings))
    from automl.searching.spaces import ultralytics_defaults

    hours = settings.get("time")
    if hours:
        lines.append(f"time={hours}: as in yolo train, each trial trains {hours:g} h (the mini "
                     f"split's epochs are quicker than the full data's): after its first epoch "
                     f"ultralytics re-estimates its epochs from its own speed, in place of "
                     f"{epochs}; trials end by time, COMPLETE, recorded with stopped_by=time and "
                     "the epochs they trained; no pruner")
    patience = int(settings.get("patience", ultralytics_defaults()["patience"]) or 0)
    # under time= a trial's epochs are its own: a patience you set may end it
    if 0 < patience and (patience < epochs or (hours and "patience" in settings)):
        lines.append(f"patience={patience}: as in yolo train, a trial whose fitness (ultralytics' "
                     f"own) has not improved for {patience} epochs stops early, COMPLETE and "
                     "recorded with stopped_by=patience" + (
                         f"; the pruner ({pruner}) stops weak trials besides (PRUNED)"
                         if pruner != "none" else ""))
    return lines
