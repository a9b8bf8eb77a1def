"""A YOLO dataset: its data.yaml read into a Dataset (images, names, the keys a training
reads), and where each image's labels are.

Stratification: automl.data.stratify; the mini split and folds written: automl.data.splits.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from automl.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """A detection dataset as ultralytics' detection trainer reads its data.yaml.

    `train` and `val` are the image files ultralytics lists (absolute paths). `boxes`, once the
    dataset is checked (automl.data.checks.usable), holds every image's boxes as ultralytics reads
    them, so that splits need not read the labels again, and `listed_train`/`listed_val` the
    images as listed, those ultralytics leaves out of training included.
    """

    yaml_path: Path
    names: tuple[str, ...]
    train: tuple[Path, ...]
    val: tuple[Path, ...]
    boxes: Mapping[Path, np.ndarray] | None = field(default=None, compare=False, repr=False)
    # as listed, the images ultralytics leaves out included (a checked dataset; else train, val)
    listed_train: tuple[Path, ...] | None = None
    listed_val: tuple[Path, ...] | None = None
    # data.yaml keys a training reads beyond the lists and names (KEPT_KEYS): a derived data.yaml
    # carries them, so that a trial trains what the user's would (channels: 1 stays 1)
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # a classification dataset (a folder of class folders, automl.data.class_folders): each
    # image's class id and its path inside its class folder; None for a data.yaml
    members: Mapping[Path, tuple[int, str]] | None = field(default=None, compare=False,
                                                           repr=False)

    @property
    def class_folders(self) -> bool:
        """A classification dataset: trained from class folders, not from a data.yaml."""
        return self.members is not None

    @property
    def left_out(self) -> tuple[Path, ...]:
        """Listed images ultralytics leaves out of training (automl check says why)."""
        kept = {*self.train, *self.val}
        listed = (*(self.listed_train or ()), *(self.listed_val or ()))
        return tuple(f for f in dict.fromkeys(listed) if f not in kept)

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def kpt_shape(self) -> tuple[int, int] | None:
        """A pose dataset's keypoints per object and values per keypoint; None for the others."""
        shape = self.extra.get("kpt_shape")
        return tuple(shape) if shape is not None else None


def as_trained(dataset: Dataset, *, classes: Sequence[int] | None = None,
               single_cls: bool = False) -> Dataset:
    """A checked dataset's boxes as a training with ultralytics' `classes` and `single_cls`
    reads them: only the boxes of `classes` (an image left without any is a background), every
    class 0 under `single_cls`. Splits drawn from it stratify on what the trials train on."""
    if dataset.boxes is None or (classes is None and not single_cls):
        return dataset
    if isinstance(classes, int):
        classes = [classes]
    keep = np.array(sorted({int(c) for c in classes})) if classes is not None else None
    boxes = {}
    for image, b in dataset.boxes.items():
        if keep is not None:
            b = b[np.isin(b[:, 0].astype(int), keep)]
        if single_cls and len(b):
            b = b.copy()
            b[:, 0] = 0
        boxes[image] = b
    return replace(dataset, boxes=boxes)


def label_path(image: Path | str) -> Path:
    """Where ultralytics looks for an image's labels (its img2label_paths)."""
    return Path(label_paths([image])[0])


def label_paths(images: Sequence[Path | str]) -> list[str]:
    """label_path of many images at once, as strings (ultralytics' img2label_paths)."""
    from automl.data.yolo_reader import label_files

    return label_files(images)


def _raw_yaml(source: Path) -> dict:
    """The data.yaml as a mapping, with the mistakes ultralytics would stumble on named here."""
    from automl.data.tasks import refuse_other_task_data

    if not source.is_file():
        raise DataError(f"{source}: data.yaml not found; pass --data path/to/data.yaml")
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DataError(f"{source}: is not valid YAML ({e.__class__.__name__})") from e
    if not isinstance(raw, dict):
        raise DataError(f"{source}: must be a mapping with train, val and names")
    refuse_other_task_data(source, raw)
    missing = [k for k in ("train", "val") if not raw.get(k) and not (k == "val"
                                                                      and raw.get("validation"))]
    if missing:
        raise DataError(f"{source}: missing {' and '.join(missing)}; add the image folder or list")
    names, nc = raw.get("names"), raw.get("nc")
    if names is None and nc is None:
        raise DataError(f"{source}: needs 'names' (a list or a mapping id: name)")
    if names is not None and (not isinstance(names, (list, dict)) or not names):
        raise DataError(f"{source}: 'names' must be a non-empty list or mapping")
    if names is not None and isinstance(nc, int) and nc != len(names):
        raise DataError(f"{source}: nc is {nc} but names has {len(names)} entries; make them agree")
    root = raw.get("path")
    if (isinstance(root, str) and os.sep == "/" and re.match(r"^(\\\\\?\\)?[A-Za-z]:[\\/]", root)
            and not os.path.exists(root)):  # exporters that ran on Windows write their own path
        raise DataError(f"{source}: path: {root} is a Windows folder, not one of this machine's; "
                        "delete the path: line (paths are then read from the data.yaml's "
                        "folder) or set it to the dataset's folder here")
    return raw


def _images_from(entry: str | list[str], source: Path, key: str,
                 share: float | int = 1.0) -> tuple[Path, ...]:
    """The images ultralytics lists for a resolved entry, as absolute paths (`share`: see
    yolo_reader.image_files)."""
    from automl.data.yolo_reader import image_files, image_suffixes, label_files

    for item in entry if isinstance(entry, list) else [entry]:
        if not os.path.exists(item):
            raise DataError(f"{source}: {key}: {item} does not exist; fix the path in data.yaml")
    try:
        listed = image_files(entry, share)
    except FileNotFoundError as e:
        cause = f"; {type(e.__cause__).__name__}: {e.__cause__}" if e.__cause__ else ""
        raise DataError(" ".join(
            f"{source}: {key}: no images found under {entry} (ultralytics reads the suffixes "
            f"{', '.join(image_suffixes())} in any case{cause})".split())) from None
    for f in listed:
        try:
            f.encode("utf-8")
        except UnicodeEncodeError:  # a file name in another encoding (surrogate-escaped bytes)
            raise DataError(f"{source}: {key}: the file name {os.fsencode(f)!r} is not UTF-8; "
                            "rename it (ultralytics reads image lists as UTF-8 text)") from None
    # a relative line of a list file is relative to the working directory, as for ultralytics:
    # made absolute here, so that trials (which run elsewhere) find the same file. Its label is
    # where ultralytics looks from the line as written; where that differs from the absolute
    # path's (an /images/ folder above the working directory, or a line that starts with
    # images/), no list a trial can get finds the labels `yolo train` finds
    files = [os.path.abspath(f) for f in listed]
    for line, written, absolute in zip(listed, label_files(listed), label_files(files),
                                       strict=True):
        if os.path.abspath(written) != absolute:
            raise DataError(
                f"{source}: {key}: the list line {line} is relative: ultralytics looks for its "
                f"label at {written} from the folder you run in, a list with absolute paths "
                f"at {absolute}; write the list's lines as absolute paths, or begin them with "
                "./ (relative to the list file)")
    return tuple(Path(f) for f in files)


# what a training reads of a data.yaml besides its lists and names (a pose training: its
# keypoints, and which of them swap places when an image is flipped)
KEPT_KEYS = ("channels", "kpt_shape", "flip_idx")


def load_dataset(data_yaml: str | Path, *, fraction: Any = 1.0, val_split: str = "val"
                 ) -> Dataset:
    """Read data.yaml and list its train/val images as ultralytics' detection trainer does; a
    folder is a classification dataset (automl.data.class_folders.read_class_folders).

    Args:
        fraction: a training's `fraction=` (a ratio, a count, or [train, val, test]): the
            images listed are those a training with it reads, the first of each list.
        val_split: the training's `split=` (the split its validation shares of `fraction`).

    Raises:
        DataError: missing file or keys, names/nc disagreeing, paths that do not exist, or
            anything ultralytics refuses (its reason in one line).
    """
    from automl.data.yolo_reader import resolve_yaml, split_share

    source = Path(data_yaml)
    if source.is_dir():
        from automl.data.class_folders import read_class_folders

        folders = read_class_folders(source)
        return Dataset(yaml_path=folders.root, names=folders.names, train=folders.train,
                       val=folders.val, members=folders.members)
    _raw_yaml(source)
    resolved = resolve_yaml(source)
    names = resolved["names"]
    return Dataset(
        yaml_path=source.resolve(),
        names=tuple(str(names[i]) for i in range(len(names))),
        train=_images_from(resolved["train"], source, "train", split_share(fraction, "train")),
        val=_images_from(resolved["val"], source, "val", split_share(fraction, val_split)),
        extra={k: resolved[k] for k in KEPT_KEYS if k in resolved},
    )


def split_images(data_yaml: str | Path, split: str) -> tuple[Path, ...]:
    """The image files of one split (train, val or test) of a data.yaml that load_dataset accepts.

    Raises:
        DataError: the split is missing or names paths that do not exist.
    """
    from automl.data.yolo_reader import resolve_yaml

    source = Path(data_yaml)
    _raw_yaml(source)
    resolved = resolve_yaml(source)
    if not resolved.get(split):
        raise DataError(f"{source}: has no '{split}' entry; add it or choose another split")
    return _images_from(resolved[split], source, split)


def files_fingerprint(images: tuple[Path, ...] | list[Path]) -> str:
    """A digest of the images and their label files as they are on disk (path, size, mtime).

    Changes when an image or label is edited, added, removed or replaced; costs two stat calls
    a file (~1 s at 100,000 images), nothing is read.
    """
    digest = hashlib.sha1()
    for image, label in zip(images, label_paths(images), strict=True):
        for f in (str(image), label):
            try:
                st = os.stat(f)
                digest.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{f}\0-\n".encode())
    return digest.hexdigest()[:16]


