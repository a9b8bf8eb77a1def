"""Splits written as image lists (no copies): the mini split a trial trains on (train AND
val), and k folds. A split is a pair of image-list files plus a derived data.yaml."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from automl.data.dataset import Dataset
from automl.data.stratify import (
    label_columns,
    read_labels,
    stratified_folds,
    stratified_subset,
)
from automl.errors import DataError


def mini_size(n: int, fraction: float) -> int:
    """How many of n images a fraction keeps (at least one)."""
    return n if fraction >= 1 else max(1, int(round(n * fraction)))


def write_split(
    out_dir: Path, names: tuple[str, ...], train: list[Path], val: list[Path],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write train.txt / val.txt (absolute image paths) and a data.yaml that points at them
    (with `extra`, the user's data.yaml keys a training reads: Dataset.extra)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(out_dir / "train.txt", "".join(f"{p}\n" for p in train))
    _write_atomic(out_dir / "val.txt", "".join(f"{p}\n" for p in val))
    data = {
        "train": str((out_dir / "train.txt").resolve()),
        "val": str((out_dir / "val.txt").resolve()),
        "nc": len(names),
        "names": dict(enumerate(names)),
        **(extra or {}),
    }
    path = out_dir / "data.yaml"
    _write_atomic(path, yaml.safe_dump(data, sort_keys=False))
    return path


def write_dataset(out_dir: Path, dataset: Dataset, train: Sequence[Path], val: Sequence[Path]
                  ) -> Path:
    """`train` and `val` of `dataset` as a training reads them: lists and a data.yaml
    (write_split), or for class folders folders of links (class_folders.write_class_folders).
    Returns what to pass as data=."""
    if dataset.class_folders:
        from automl.data.class_folders import write_class_folders

        return write_class_folders(out_dir, dataset, train, val)
    return write_split(out_dir, dataset.names, list(train), list(val), dataset.extra)


def _write_atomic(path: Path, text: str) -> None:
    # several search processes sharing a study write the same lists at the same moment; a
    # reader must never see a half-written file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def make_mini_dataset(
    dataset: Dataset,
    fraction: float,
    out_dir: str | Path,
    *,
    seed: int = 0,
    labels: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Stratified `fraction` of train and of val, written as lists + data.yaml under out_dir.

    At fraction 1 the lists are the images as the user's data.yaml lists them (in absolute form), those
    ultralytics leaves out included (it leaves them out again): its training consumes Python's
    global random state by the listed count (a read-speed check samples files before the corrupt
    ones go), so only the same list makes trial #0 the very training `yolo train` runs.

    Args:
        labels: the stratification labels of train and of val when the caller has them already.
    `fraction` is in (0, 1], as the options' checks leave it (automl.options).
    """
    if fraction >= 1:
        train = dataset.train if dataset.listed_train is None else dataset.listed_train
        val = dataset.val if dataset.listed_val is None else dataset.listed_val
        return write_dataset(Path(out_dir), dataset, train, val)
    parts = []
    for j, files in enumerate((dataset.train, dataset.val)):
        y = labels[j] if labels is not None else read_labels(dataset, files)
        keep = stratified_subset(y, mini_size(len(files), fraction), seed=seed)
        parts.append([files[i] for i in keep])
    return write_dataset(Path(out_dir), dataset, parts[0], parts[1])


@dataclass(frozen=True)
class FoldSplit:
    """Train and val pooled (each image once) and the stratified fold of every image."""

    names: tuple[str, ...]
    files: tuple[Path, ...]
    labels: np.ndarray  # stratification_labels of files
    folds: np.ndarray  # fold index of each file
    extra: Mapping[str, Any] = field(default_factory=dict)  # Dataset.extra
    members: Mapping[Path, tuple[int, str]] | None = None  # Dataset.members

    @property
    def k(self) -> int:
        return int(self.folds.max()) + 1

    def fold(self, i: int) -> tuple[Dataset, tuple[np.ndarray, np.ndarray]]:
        """Fold i as a Dataset (val = fold i, train = the rest) with the labels of each part."""
        val = self.folds == i
        train_files = tuple(f for f, v in zip(self.files, val, strict=True) if not v)
        val_files = tuple(f for f, v in zip(self.files, val, strict=True) if v)
        ds = Dataset(yaml_path=Path(), names=self.names, train=train_files, val=val_files,
                     extra=self.extra, members=self.members)
        return ds, (self.labels[~val], self.labels[val])


def kfold_split(dataset: Dataset, k: int, *, seed: int = 0) -> FoldSplit:
    """Stratified k folds over train and val together (an image listed in both counts once)."""
    files = tuple(dict.fromkeys((*dataset.train, *dataset.val)))
    labels = read_labels(dataset, files)
    return FoldSplit(dataset.names, files, labels, stratified_folds(labels, k, seed=seed),
                     dataset.extra, dataset.members)


def fold_table(split: FoldSplit) -> str:
    """Per label column: images in the whole pool and train/val per fold, and the val share range.

    A well stratified label has every fold's val share near 1/k.
    """
    from automl.console import text_table

    k = split.k
    header = ["label", "images", *(f"fold{i} train/val" for i in range(k)), "val share"]
    rows = []
    columns = [*(split.names if split.members is not None else label_columns(split.names)),
               "no boxes"]
    y = np.concatenate([split.labels, ~split.labels.any(axis=1, keepdims=True)], 1)
    for c, name in enumerate(columns):
        total = int(y[:, c].sum())
        if total == 0:
            continue
        per = [int(y[split.folds == i, c].sum()) for i in range(k)]
        shares = [p / total for p in per]
        rows.append([name, total, *(f"{total - p}/{p}" for p in per),
                     f"{min(shares):.1%}-{max(shares):.1%}"])
    per = [int((split.folds == i).sum()) for i in range(k)]
    n = len(split.files)
    rows.append(["all images", n, *(f"{n - p}/{p}" for p in per),
                 f"{min(per) / n:.1%}-{max(per) / n:.1%}"])
    return text_table(header, rows)


def write_folds(
    split: FoldSplit, out_dir: str | Path, *, only: int | None = None,
    mini: float | None = None, seed: int = 0,
) -> list[Path]:
    """Write foldI/{train,val}.txt + data.yaml (and foldI/mini/ with a stratified fraction).

    Raises:
        DataError: `only` is not a fold index.
    """
    if only is not None and not 0 <= only < split.k:
        raise DataError(f"--fold {only}: must be in 0..{split.k - 1} for --folds {split.k}")
    written = []
    for i in range(split.k) if only is None else [only]:
        ds, labels = split.fold(i)
        target = Path(out_dir) / f"fold{i}"
        written.append(write_dataset(target, ds, ds.train, ds.val))
        if mini is not None:
            written.append(make_mini_dataset(ds, mini, target / "mini", seed=seed, labels=labels))
    return written
