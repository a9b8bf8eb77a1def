"""Weights files are checked before ultralytics unpickles them: a `.pt` is a pickle, and a
crafted one runs any code it likes when loaded the ordinary way (`YOLO(path)`,
`torch.load(weights_only=False)`).

torch's `weights_only` loader runs only an allowlist of callables. An ultralytics checkpoint
needs more than torch's defaults (the model classes, its modules, a few containers), so the
check first lists the globals the file names (torch's static scan, nothing runs), allows those
that lie in a trusted package (torch, ultralytics, numpy, collections, ...), then loads the file
with `weights_only=True`; a global the scan could not see is judged the same way when torch
refuses it, and the load tried again. A global from anywhere else (`os.system`,
`builtins.eval`, `subprocess.Popen`) ends it: the file is refused with its name. Once the
check passes, the file holds nothing but calls of trusted callables, and loading it the
ordinary way runs only those.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from automl.errors import ConfigError

# Packages whose classes a checkpoint may rebuild (their constructors run no foreign code).
TRUSTED = ("torch.", "ultralytics.", "numpy.", "collections.", "argparse.Namespace",
           "types.SimpleNamespace", "pathlib.", "datetime.", "_codecs.encode",
           "builtins.set", "builtins.frozenset", "builtins.slice", "builtins.range",
           "builtins.complex", "builtins.bytearray")
# callables of trusted packages that can still run code given the right arguments
_NEVER = ("torch.load", "torch.hub.", "torch.jit.", "torch.package.", "torch._dynamo.",
          "numpy.load", "numpy.lib.npyio", "torch.ops.", "torch._ops.")
_GLOBAL = re.compile(r"(?:GLOBAL|global) ([\w.]+)")


class UnsafeWeightsError(ConfigError):
    """A weights file would run code that no checkpoint needs when loaded."""


def _allowed(name: str) -> bool:
    return name.startswith(TRUSTED) and not name.startswith(_NEVER)


def _resolve(name: str):
    module, _, attr = name.rpartition(".")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def check_weights(path: str | Path, flag: str = "--weights") -> None:
    """Refuse a .pt whose pickle calls anything outside the trusted packages.

    Raises:
        UnsafeWeightsError: it calls an untrusted global (named in the message).
        ConfigError: the file cannot be read as a checkpoint.
    """
    import pickle

    import torch

    path = Path(path)
    try:  # the globals the file's pickles name, read without running any: one pass
        named = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint: the load below says what is wrong
        named = []
    allowed = [_trusted(name, path, flag) for name in named]
    for _ in range(500):  # globals the scan cannot see (pushed while unpickling): one per round
        try:
            with torch.serialization.safe_globals(allowed):
                torch.load(path, map_location="cpu", weights_only=True)
            return
        except pickle.UnpicklingError as e:
            match = _GLOBAL.search(str(e))
            if not match:
                raise ConfigError(f"{flag} {path}: cannot be read as weights ({_first_line(e)})"
                                  ) from None
            allowed.append(_trusted(match.group(1), path, flag))
        except (RuntimeError, OSError, EOFError, ValueError) as e:
            raise ConfigError(f"{flag} {path}: cannot be read as weights ({_first_line(e)})"
                              ) from None
    raise ConfigError(f"{flag} {path}: needs too many classes to check; refused")


def _trusted(name: str, path: Path, flag: str):
    """The callable `name` when a checkpoint may call it.

    Raises:
        UnsafeWeightsError: it is outside the trusted packages.
        ConfigError: this installation lacks it.
    """
    if not _allowed(name):
        raise UnsafeWeightsError(
            f"{flag} {path}: refused: loading it would call {name}, which no model "
            "checkpoint needs (a crafted file runs code when loaded); nothing was loaded")
    try:
        return _resolve(name)
    except (ImportError, AttributeError):
        raise ConfigError(f"{flag} {path}: needs {name}, which this installation lacks "
                          "(a checkpoint of another ultralytics version?)") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def load_detection_model(weights: str | Path, purpose: str, *, nms: bool = False):
    """YOLO(weights) for a local detection checkpoint, checked first (see check_weights).

    `purpose` ends the refusal of another task ("thresholds tunes", "deploy exports"); `nms`:
    refuse end-to-end (NMS-free) models too.

    Raises:
        ConfigError: the file is missing, is not an ultralytics checkpoint, or is not a detection
            (task 'detect') model.
    """
    import os

    path = Path(weights)
    if not path.is_file():
        raise ConfigError(f"--weights {weights}: file not found; pass a trained .pt such as "
                          "runs/promote/NAME-trialN/weights/best.pt")
    if path.suffix != ".pt":
        raise ConfigError(f"--weights {weights}: expected PyTorch weights (.pt) from a YOLO training")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    try:
        check_weights(path)  # a crafted pickle must not run its code
    except UnsafeWeightsError:
        raise
    except ConfigError:
        raise ConfigError(f"--weights {weights}: not an ultralytics YOLO checkpoint (not a torch "
                          "file); pass the best.pt or last.pt of a training") from None
    try:
        model = YOLO(str(path))
    except Exception as e:  # not a torch file, or a torch file without an ultralytics model
        raise ConfigError(f"--weights {weights}: not an ultralytics YOLO checkpoint "
                          f"({type(e).__name__}); pass the best.pt or last.pt of a training") from None
    if model.task != "detect":
        raise ConfigError(f"--weights {weights}: a '{model.task}' model, not a detection model; "
                          f"{purpose} detection (task 'detect') weights only")
    if nms and getattr(model.model, "end2end", False):
        raise ConfigError(f"--weights {weights}: an end-to-end (NMS-free) model; it has no NMS IoU "
                          "threshold to tune")
    return model


def check_classes(model, dataset, data: str | Path, weights: str | Path, fix: str) -> None:
    """Refuse a data set whose class names are not the model's (ids would pair wrongly).

    Raises:
        ConfigError: naming the data.yaml, both class lists, and `fix` (what to do on instead).
    """
    classes = tuple(str(v) for _, v in sorted(dict(model.names).items()))
    if classes != tuple(dataset.names):
        raise ConfigError(f"--data {data}: its classes {list(dataset.names)} are not "
                          f"the model's {list(classes)} ({weights}); {fix} the data the model "
                          "was trained for")
