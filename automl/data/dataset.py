"""YOLO datasets: read data.yaml and labels, and make stratified mini splits (train AND val).

A mini split is a pair of image-list files plus a derived data.yaml; images are never copied.
Stratification is multi-label (iterative-stratification) over, per image: which classes it
holds, its boxes-per-image bucket, and which box-aspect and box-size buckets its boxes fall in.
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

# Boxes-per-image buckets (the seed project's little / medium / many).
BPI_BUCKETS = (("little", 1, 2), ("medium", 3, 5), ("many", 6, None))
# Box aspect (w / h, in normalized coordinates) and size (sqrt of normalized area) buckets.
ASPECT_EDGES = (2 / 3, 3 / 2)
ASPECT_NAMES = ("tall", "square", "wide")
SIZE_EDGES = (0.1, 0.3)
SIZE_NAMES = ("small", "medium", "large")


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


def _images_from(entry: str | list[str], source: Path, key: str) -> tuple[Path, ...]:
    """The images ultralytics lists for a resolved entry, as absolute paths."""
    from automl.data.yolo_reader import image_files, image_suffixes, label_files

    for item in entry if isinstance(entry, list) else [entry]:
        if not os.path.exists(item):
            raise DataError(f"{source}: {key}: {item} does not exist; fix the path in data.yaml")
    try:
        listed = image_files(entry)
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


def load_dataset(data_yaml: str | Path) -> Dataset:
    """Read data.yaml and list its train/val images as ultralytics' detection trainer does; a
    folder is a classification dataset (automl.data.class_folders.read_class_folders).

    Raises:
        DataError: missing file or keys, names/nc disagreeing, paths that do not exist, or
            anything ultralytics refuses (its reason in one line).
    """
    from automl.data.yolo_reader import resolve_yaml

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
        train=_images_from(resolved["train"], source, "train"),
        val=_images_from(resolved["val"], source, "val"),
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


def stratification_labels(boxes: list[np.ndarray], nc: int) -> np.ndarray:
    """One multi-label row per image: class presence, boxes-per-image bucket, aspect and size buckets."""
    n_cols = nc + len(BPI_BUCKETS) + len(ASPECT_NAMES) + len(SIZE_NAMES)
    out = np.zeros((len(boxes), n_cols), dtype=bool)
    counts = np.fromiter((len(b) for b in boxes), dtype=np.int64, count=len(boxes))
    if not counts.any():
        return out
    # all boxes at once (a per-image loop costs ~5 s at 100,000 images)
    allb = np.concatenate([b for b in boxes if len(b)]).reshape(-1, 5)
    image = np.repeat(np.arange(len(boxes)), counts)
    cls = allb[:, 0].astype(int)
    known = (cls >= 0) & (cls < nc)
    out[image[known], cls[known]] = True
    for j, (_, lo, hi) in enumerate(BPI_BUCKETS):
        out[:, nc + j] = (counts >= lo) & ((counts <= hi) if hi is not None else True)
    w, h = np.clip(allb[:, 3], 1e-9, None), np.clip(allb[:, 4], 1e-9, None)
    base = nc + len(BPI_BUCKETS)
    out[image, base + np.digitize(w / h, ASPECT_EDGES)] = True
    base += len(ASPECT_NAMES)
    out[image, base + np.digitize(np.sqrt(w * h), SIZE_EDGES)] = True
    return out


def label_columns(names: tuple[str, ...] | list[str]) -> list[str]:
    """Names of the columns `stratification_labels` returns, e.g. 'cow', 'boxes-many', 'size-small'."""
    return [*names, *(f"boxes-{b[0]}" for b in BPI_BUCKETS),
            *(f"aspect-{a}" for a in ASPECT_NAMES), *(f"size-{s}" for s in SIZE_NAMES)]


def image_boxes(dataset: Dataset, files: Sequence[Path]) -> list[np.ndarray]:
    """Each file's boxes as ultralytics reads them: the checked dataset's, else read now (an image
    ultralytics leaves out has none)."""
    if dataset.boxes is not None:
        return [dataset.boxes[f] for f in files]
    from automl.data.yolo_reader import no_boxes, read_images

    return [r.boxes if r.kept else no_boxes() for r in read_images(files, dataset.nc,
                                                                   kpt_shape=dataset.kpt_shape)]


def read_labels(dataset: Dataset, files: Sequence[Path]) -> np.ndarray:
    """Stratification labels of some of the dataset's image files (their boxes as ultralytics
    reads them; a classification dataset's: their class)."""
    if dataset.class_folders:
        from automl.data.class_folders import class_labels

        return class_labels(dataset, files)
    return stratification_labels(image_boxes(dataset, files), dataset.nc)


def _stratify_target(labels: np.ndarray) -> np.ndarray:
    # iterative-stratification wants at least two label columns with some positives; images
    # without boxes get their own column so backgrounds spread evenly too
    n = len(labels)
    y = np.concatenate([labels, ~labels.any(axis=1, keepdims=True), np.ones((n, 1), bool)], 1)
    return y.astype(int)


def stratified_folds(labels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) of every row, by MultilabelStratifiedKFold over the label columns.

    Raises:
        DataError: k < 2 or more folds than rows.
    """
    n = len(labels)
    if k < 2:
        raise DataError(f"--folds {k}: needs at least 2 folds")
    if k > n:
        raise DataError(f"--folds {k}: more folds than the {n} images")
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    folds = np.empty(n, dtype=int)
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for i, (_, val) in enumerate(splitter.split(np.zeros(n), _stratify_target(labels))):
        folds[val] = i
    return folds


def stratified_subset(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Indices of exactly `size` rows chosen so the labels keep their proportions.

    MultilabelStratifiedShuffleSplit's greedy assignment can miss the requested size by a few;
    the surplus is dropped (or the shortfall filled) at random so the size is exact.
    """
    n = len(labels)
    if size >= n:
        return np.arange(n)
    if size <= 0:
        return np.zeros(0, dtype=int)
    rng = np.random.default_rng(seed)
    y = _stratify_target(labels)
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=size, random_state=seed)
    _, chosen = next(splitter.split(np.zeros(n), y))
    if len(chosen) > size:
        chosen = rng.choice(chosen, size, replace=False)
    elif len(chosen) < size:
        rest = np.setdiff1d(np.arange(n), chosen)
        chosen = np.concatenate([chosen, rng.choice(rest, size - len(chosen), replace=False)])
    return np.sort(chosen)


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

    Raises:
        DataError: a fraction outside (0, 1].
    """
    if not 0 < fraction <= 1:
        raise DataError(f"--fraction {fraction}: must be in (0, 1]; 1 uses all images")
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
