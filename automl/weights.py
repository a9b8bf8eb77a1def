"""Weights files are data until proven otherwise: a `.pt` is a pickle, and a crafted one runs
any code it likes when loaded the ordinary way (`YOLO(path)`, `torch.load(weights_only=False)`).

Every `.pt` automl or its trials load is read once into memory and checked there, in two gates:

1. A static reading of its pickle (nothing runs): every global it names must be one of the exact
   names in `automl.checkpoint_globals`, used only as that list allows (a model class may be
   created empty and filled, never called; only the listed callables are called, and only
   globals are). The first name outside the list, or used otherwise, refuses the file.
2. torch's restricted unpickler (`weights_only=True`) loads those bytes with exactly the names
   the file uses, resolved from the list.

What is loaded afterwards is those same bytes: the checkpoint in memory, or a private copy of
the bytes (a folder only this user can enter) that ultralytics loads; the user's path is never
opened again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import os
import pickletools
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl.checkpoint_globals import BUILT, CALLED, NAMED
from automl.errors import ConfigError


class UnsafeWeightsError(ConfigError):
    """A weights file would run code that no checkpoint needs when loaded."""


def _table(groups: dict[str, tuple[str, ...]], role: str) -> dict[tuple[str, str], str]:
    return {(module, name): role for module, names in groups.items() for name in names}


# (module, name) -> what a pickle may do with it: call it, create it empty, or only name it
ROLES = {**_table(NAMED, "named"), **_table(CALLED, "called"), **_table(BUILT, "built")}
_REFUSED_OPS = {"INST", "OBJ", "EXT1", "EXT2", "EXT4", "PERSID", "NEXT_BUFFER",
                "READONLY_BUFFER"}  # torch.save never writes them; each can call or import
_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
               "SHORT_BINUNICODE", "BINUNICODE8"}


@dataclass(frozen=True)
class Weights:
    """A weights file read once and checked: its bytes and the checkpoint loaded from them."""

    path: Path
    data: bytes
    checkpoint: Any

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class _Refused(Exception):
    """What the static reading found: the message's tail after 'its pickle'."""


def _scan_pickle(data: bytes) -> set[tuple[str, str]]:
    """The globals one pickle names, read without running it; each checked against ROLES.

    A small stack machine over pickletools' opcodes that tracks only what matters: which global
    (or string) each stack slot holds, so every call (REDUCE) and every creation (NEWOBJ) is
    known to apply to a listed name in its listed role.

    Raises:
        _Refused: the first name outside the list, a name used in another role, or an opcode
            torch.save never writes.
        ValueError: not a pickle (pickletools' own error).
    """
    from pickle import _compat_pickle  # the renames of protocol 0-2 files, as pickle applies them

    other = ("x", None)
    mark = ("mark", None)
    stack: list[tuple[str, Any]] = []
    memo: dict[int, tuple[str, Any]] = {}
    used: set[tuple[str, str]] = set()
    proto = 0

    def pop_mark() -> list:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is mark:
                items = stack[i + 1:]
                del stack[i:]
                return items
        raise _Refused("is malformed (no mark)")

    def name_of(module: str, name: str) -> tuple[str, str]:
        if proto < 3:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        key = (module, name)
        if key not in ROLES:
            raise _Refused(f"names {module}.{name}, which no ultralytics checkpoint needs")
        used.add(key)
        return key

    def target(slot, role: str, verb: str) -> tuple[str, str]:
        if slot[0] != "global":
            raise _Refused(f"{verb} an object it made while loading, which no checkpoint does")
        module, name = slot[1]
        if ROLES[slot[1]] != role:
            raise _Refused(f"{verb} {module}.{name}, which a checkpoint only "
                           f"{'creates empty and fills' if ROLES[slot[1]] == 'built' else 'names'}")
        return slot[1]

    for op, arg, _ in pickletools.genops(data):
        code = op.name
        if code in _REFUSED_OPS:
            raise _Refused(f"uses the opcode {code}, which torch.save never writes")
        if code == "PROTO":
            proto = int(arg)
        elif code == "GLOBAL":
            module, _, name = str(arg).partition(" ")
            stack.append(("global", name_of(module, name)))
        elif code == "STACK_GLOBAL":
            name, module = stack.pop(), stack.pop()
            if module[0] != "str" or name[0] != "str":
                raise _Refused("names a global it computes while loading")
            stack.append(("global", name_of(module[1], name[1])))
        elif code in _STRING_OPS:
            stack.append(("str", str(arg)))
        elif code == "MARK":
            stack.append(mark)
        elif code in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = stack[-1]
        elif code == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif code in ("GET", "BINGET", "LONG_BINGET"):
            if int(arg) not in memo:
                raise _Refused("is malformed (reads a memo it never wrote)")
            stack.append(memo[int(arg)])
        elif code == "REDUCE":
            stack.pop()
            stack.append(("made", target(stack.pop(), "called", "calls")))
        elif code in ("NEWOBJ", "NEWOBJ_EX"):
            del stack[-(2 if code == "NEWOBJ" else 3) + 1:]
            stack.append(("made", target(stack.pop(), "built", "creates")))
        elif code == "BUILD":
            stack.pop()
            if stack[-1][0] not in ("made", "x"):
                raise _Refused("sets the state of a global, which no checkpoint does")
        elif code in ("APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS"):
            if code in ("APPENDS", "SETITEMS", "ADDITEMS"):
                pop_mark()
            else:
                del stack[-(1 if code == "APPEND" else 2):]
            if stack[-1][0] not in ("made", "x"):
                raise _Refused("adds items to a global, which no checkpoint does")
        elif code == "DUP":
            stack.append(stack[-1])
        elif code == "POP":
            stack.pop()
        elif code == "STOP":
            break
        else:  # everything else only pushes values built from what it pops
            before = op.stack_before
            if pickletools.markobject in before:
                pop_mark()
                before = before[:before.index(pickletools.markobject)]
            if before:
                del stack[-len(before):]
            stack.extend(other for _ in op.stack_after)
    return used


def _pickles(data: bytes) -> list[bytes]:
    """The pickles torch could read: every .pkl record of a zip checkpoint (duplicate names
    included), else the bytes as one (a legacy or plain pickle, whose first pickle names its
    globals first). A zip as torch tells one: by its first bytes, not by a directory at its end."""
    if not data.startswith(b"PK\x03\x04"):
        return [data]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [archive.read(i) for i in archive.infolist() if i.filename.endswith(".pkl")]


def _resolve(key: tuple[str, str]):
    obj = importlib.import_module(key[0])
    for part in key[1].split("."):
        obj = getattr(obj, part)
    return obj


def read_weights(path: str | Path, flag: str = "--weights", *, sha256: str | None = None
                 ) -> Weights:
    """Read a .pt once and check those bytes (see the module's docstring); nothing of it runs.

    `sha256`: the bytes must be these (what another process checked before).

    Raises:
        UnsafeWeightsError: it names a global outside the list, or uses one otherwise (named
            in the message).
        ConfigError: the file is missing, cannot be read as a checkpoint, or is not `sha256`.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{_named(flag, path)}: cannot be read ({e.strerror or e}); pass a local .pt"
                          ) from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ConfigError(f"{_named(flag, path)}: changed since automl checked it; nothing of it was "
                          "loaded (run the command again to check the new file)")
    used: set[tuple[str, str]] = set()
    is_zip = data.startswith(b"PK\x03\x04")
    try:
        pickles = _pickles(data)
        for pickle_bytes in pickles:
            used |= _scan_pickle(pickle_bytes)
    except _Refused as e:
        raise UnsafeWeightsError(
            f"{_named(flag, path)}: refused: its pickle {e} (a crafted file runs code when loaded); "
            "nothing of it was loaded") from None
    except (ValueError, IndexError, zipfile.BadZipFile, EOFError) as e:
        raise _not_a_checkpoint(path, flag, _first_line(e) if is_zip else None) from None
    if not is_zip or not pickles:
        raise _not_a_checkpoint(path, flag, None)
    return Weights(path=path, data=data, checkpoint=_restricted_load(data, used, path, flag))


def _not_a_checkpoint(path: Path, flag: str, why: str | None) -> ConfigError:
    return ConfigError(f"{_named(flag, path)}: not an ultralytics YOLO checkpoint "
                       f"({why or 'not a zip file as torch.save writes'}); pass the best.pt or "
                       "last.pt of a training")


def _restricted_load(data: bytes, used: set[tuple[str, str]], path: Path, flag: str):
    """torch's weights_only load of `data`, allowing exactly the listed names it uses."""
    import pickle

    import torch

    entries = []
    for key in sorted(used):
        try:
            entries.append((_resolve(key), ".".join(key)))
        except (ImportError, AttributeError):
            raise ConfigError(f"{_named(flag, path)}: needs {'.'.join(key)}, which this installation "
                              "lacks (a checkpoint of another ultralytics version?)") from None
    try:
        with torch.serialization.safe_globals(entries):
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError, TypeError,
            AttributeError, KeyError, IndexError) as e:
        raise _not_a_checkpoint(path, flag, _first_line(e)) from None


def _named(flag: str, path: str | Path) -> str:
    """`--weights x.pt`, or `pretrained=x.pt` for a setting given as KEY=VALUE."""
    return f"{flag}{path}" if flag.endswith("=") else f"{flag} {path}"


def check_weights(path: str | Path, flag: str = "--weights") -> None:
    """Refuse a .pt that is not a plain ultralytics checkpoint (see read_weights)."""
    read_weights(path, flag)


@contextlib.contextmanager
def private_copy(weights: Weights) -> Iterator[Path]:
    """The checked bytes written to a file only this user can read, in a folder only this user
    can enter, under the original's name; removed on exit. What ultralytics then loads by path
    is the bytes that were checked."""
    folder = tempfile.mkdtemp(prefix="automl-weights-")  # mode 0700
    try:
        copy = Path(folder) / weights.path.name
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(weights.data)
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def checked_model(model: str | Path, flag: str = "--model", *, sha256: str | None = None
                  ) -> Iterator[str]:
    """The model path to hand ultralytics: a model YAML as is, a .pt as a private copy of its
    checked bytes (see private_copy); `sha256` as in read_weights."""
    if Path(model).suffix != ".pt":
        yield str(model)
        return
    with private_copy(read_weights(model, flag, sha256=sha256)) as copy:
        yield str(copy)


def pin_weights(models) -> dict[str, str]:
    """{path: SHA-256} of each .pt among `models`, read and checked now: what trials elsewhere
    (Ray workers, other nodes) must find at that path (see read_weights' `sha256`)."""
    return {str(m): read_weights(m, "--model").sha256 for m in dict.fromkeys(models)
            if isinstance(m, str | Path) and Path(m).suffix == ".pt"}


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def load_detection_model(weights: str | Path, purpose: str, *, nms: bool = False):
    """YOLO(weights) for a local detection checkpoint, loaded from its checked bytes.

    `purpose` ends the refusal of another task ("thresholds tunes", "deploy exports"); `nms`:
    refuse end-to-end (NMS-free) models too.

    Raises:
        ConfigError: the file is missing, is not an ultralytics checkpoint, or is not a detection
            (task 'detect') model (UnsafeWeightsError: it would run code when loaded).
    """
    with detection_weights(weights, purpose, nms=nms) as (model, _):
        return model


@contextlib.contextmanager
def detection_weights(weights: str | Path, purpose: str, *, nms: bool = False,
                      tasks: tuple[str, ...] = ("detect",)) -> Iterator[tuple[Any, Path]]:
    """The checked detection model (see load_detection_model; another of `tasks` too) and,
    inside the `with`, the private copy of the bytes it was loaded from, for what ultralytics
    reads by path (val, export)."""
    path = Path(weights)
    if not path.is_file():
        raise ConfigError(f"--weights {weights}: file not found; pass a trained .pt such as "
                          "runs/promote/NAME-trialN/weights/best.pt")
    if path.suffix != ".pt":
        raise ConfigError(f"--weights {weights}: expected PyTorch weights (.pt) from a YOLO training")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    with private_copy(read_weights(path)) as copy:
        try:
            model = YOLO(str(copy))
        except Exception as e:  # a checkpoint without an ultralytics model
            raise ConfigError(f"--weights {weights}: not an ultralytics YOLO checkpoint "
                              f"({type(e).__name__}); pass the best.pt or last.pt of a training"
                              ) from None
        if nms and model.task == "classify":
            raise ConfigError(f"--weights {weights}: a classification model; it has no NMS and "
                              "no confidence or IoU thresholds to tune (it names one class an "
                              "image, its top-1)")
        if model.task not in tasks:
            raise ConfigError(f"--weights {weights}: a '{model.task}' model, not a detection "
                              f"model; {purpose} detection (task 'detect') weights only")
        if nms and getattr(model.model, "end2end", False):
            raise ConfigError(f"--weights {weights}: an end-to-end (NMS-free) model; it has no "
                              "NMS IoU threshold to tune")
        yield model, copy


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
