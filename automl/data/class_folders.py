"""Classification datasets: a folder of class folders, read as ultralytics' classification
trainer reads it (`yolo classify train data=DIR`).

DIR/train/CLASS/*.jpg and DIR/val/CLASS/*.jpg (or valid/, validation/; test/ when there is no
val): ultralytics' `check_cls_dataset` resolves the splits and names the classes (the train
folder's class folders, sorted), torchvision's ImageFolder (which ultralytics' dataset wraps)
lists the images, and ultralytics' `verify_image` decides which it leaves out. Splits of such
data are folders of class folders again, holding symbolic links to the images: nothing copied.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automl.errors import DataError

LAYOUT = "DIR/train/CLASS/*.jpg and DIR/val/CLASS/*.jpg"


def is_class_folders(data: str | Path) -> bool:
    """Whether `data` is a folder (a classification dataset), not a data.yaml."""
    return Path(data).is_dir()


def resolve_folders(root: str | Path) -> dict:
    """The splits and class names as ultralytics' `check_cls_dataset` resolves them.

    Raises:
        DataError: no train/ folder (ultralytics would split the folder itself, writing
            copies), no val/valid/validation/test folder, or ultralytics refuses the folder.
    """
    from automl.data.yolo_reader import _ultralytics
    from automl.ultralytics_env import quiet_ultralytics

    source = Path(root)
    if not source.is_dir():
        raise DataError(f"{source}: not a folder; a classification dataset is {LAYOUT}")
    if not (source / "train").is_dir():
        raise DataError(f"{source}: no train/ folder; arrange the images as {LAYOUT} "
                        "(automl split --folds 5 makes such folders from one)")
    data_utils = _ultralytics()
    try:
        with quiet_ultralytics():
            resolved = data_utils.check_cls_dataset(str(source), split="val")
    except Exception as e:  # FileNotFoundError (no training image), ...: its words
        reason = " ".join(str(e).replace("❌", "").split()) or type(e).__name__
        raise DataError(f"{source}: ultralytics cannot read it: {reason}") from None
    if resolved.get("val") is None:
        raise DataError(f"{source}: no val/ (or valid/, validation/, test/) folder; add one "
                        "with the same class folders as train/")
    return resolved


def _listed(split_dir: Path, names: tuple[str, ...], source: Path, key: str
            ) -> list[tuple[Path, int, str]]:
    """(image, class id, path inside its class folder) of one split, in ImageFolder's order."""
    import torchvision

    from automl.data.yolo_reader import image_suffixes

    suffixes = {s.lstrip(".").lower() for s in image_suffixes()}
    folder = torchvision.datasets.ImageFolder(
        root=str(split_dir), is_valid_file=lambda x: x.rpartition(".")[-1].lower() in suffixes,
        allow_empty=True)
    unknown = [c for c in folder.classes if c not in names]
    if unknown:
        raise DataError(f"{source}: {key}/{unknown[0]} is a class folder that train/ does not "
                        f"have (classes: {', '.join(names)}); rename or remove it")
    listed = []
    for file, target in folder.samples:
        cls = folder.classes[target]
        path = Path(os.path.abspath(file))
        listed.append((path, names.index(cls), str(path.relative_to(
            Path(os.path.abspath(split_dir)) / cls))))
    return listed


@dataclass(frozen=True)
class ClassFolders:
    """What a class-folder dataset holds (automl.data.dataset.Dataset is made of it)."""

    root: Path
    names: tuple[str, ...]
    train: tuple[Path, ...]
    val: tuple[Path, ...]
    members: dict[Path, tuple[int, str]]  # image -> (class id, its path inside its class folder)


def read_class_folders(root: str | Path) -> ClassFolders:
    """A class-folder dataset as ultralytics' classification trainer lists it.

    Raises:
        DataError: see resolve_folders; a val class folder train/ lacks; no image in train.
    """
    source = Path(root)
    resolved = resolve_folders(source)
    names = tuple(str(resolved["names"][i]) for i in range(len(resolved["names"])))
    if not names:
        raise DataError(f"{source}/train: no class folders; arrange the images as {LAYOUT}")
    members: dict[Path, tuple[int, str]] = {}
    splits = []
    for key in ("train", "val"):
        split_dir = Path(resolved[key])
        listed = _listed(split_dir, names, source, split_dir.name)
        if not listed:
            raise DataError(f"{source}/{split_dir.name}: no images in its class folders; "
                            f"arrange them as {LAYOUT}")
        members.update({image: (cls, inside) for image, cls, inside in listed})
        splits.append(tuple(image for image, _, _ in listed))
    return ClassFolders(source.resolve(), names, splits[0], splits[1], members)


def class_labels(dataset: Any, files: Sequence[Path]) -> np.ndarray:
    """One row per image of a class-folder Dataset: its class, one-hot (what a classification
    split stratifies on)."""
    out = np.zeros((len(files), dataset.nc), dtype=bool)
    for row, image in enumerate(files):
        out[row, dataset.members[image][0]] = True
    return out


def verify_images(images: Sequence[Path]) -> list[str]:
    """ultralytics' `verify_image` of each image: "" where it trains on it, else its reason."""
    from automl.data.yolo_reader import _read_only, _ultralytics

    data_utils = _ultralytics()
    with _read_only():
        results = [data_utils.verify_image(((str(image), 0), "")) for image in images]
    return ["" if found else " ".join(message.split(": ignoring corrupt image/label: ")[-1]
                                      .split()) or "rejected"
            for _, found, _, message in results]


def write_class_folders(out_dir: str | Path, dataset: Any, train: Sequence[Path],
                        val: Sequence[Path]) -> Path:
    """out_dir/train/CLASS/... and out_dir/val/CLASS/... of a class-folder Dataset: symbolic
    links to the images, each at
    its path inside its class folder (so ImageFolder lists them in the user's order); every
    class folder in both. Returns out_dir, what `yolo classify train data=` takes."""
    import shutil

    out = Path(out_dir)
    for key, images in (("train", train), ("val", val)):
        # written beside, then swapped in: a reader never sees half a split
        tmp = out / f".{key}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        for name in dataset.names:
            (tmp / name).mkdir(parents=True, exist_ok=True)
        for image in images:
            cls, inside = dataset.members[image]
            link = tmp / dataset.names[cls] / inside
            if os.path.lexists(link):  # the same name in train and val, pooled into one fold
                link = link.with_name(f"{len(list(link.parent.iterdir()))}-{link.name}")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(image)
        target = out / key
        old = out / f".{key}.{os.getpid()}.old"
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        Path(f"{target}.cache").unlink(missing_ok=True)  # ultralytics' scan of the old split
    return out
