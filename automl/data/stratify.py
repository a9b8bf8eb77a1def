"""Stratification: what a split keeps in proportion, and the stratified draws of folds and
subsets.

Multi-label (iterative-stratification) over, per image: which classes it holds, its
boxes-per-image bucket, and which box-aspect and box-size buckets its boxes fall in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from automl.data.dataset import Dataset
from automl.errors import DataError

# Boxes-per-image buckets (the seed project's little / medium / many).
BPI_BUCKETS = (("little", 1, 2), ("medium", 3, 5), ("many", 6, None))


# Box aspect (w / h, in normalized coordinates) and size (sqrt of normalized area) buckets.
ASPECT_EDGES = (2 / 3, 3 / 2)


ASPECT_NAMES = ("tall", "square", "wide")


SIZE_EDGES = (0.1, 0.3)


SIZE_NAMES = ("small", "medium", "large")


def stratification_labels(boxes: list[np.ndarray], nc: int) -> np.ndarray:
    """One multi-label row per image: class presence, boxes-per-image bucket, aspect and size buckets."""
    n_cols = nc + len(BPI_BUCKETS) + len(ASPECT_NAMES) + len(SIZE_NAMES)
    out = np.zeros((len(boxes), n_cols), dtype=bool)
    counts = np.fromiter((len(b) for b in boxes), dtype=np.int64, count=len(boxes))
    if not counts.any():
        return out
    # all boxes at once: a per-image loop is what makes large datasets slow to split
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
