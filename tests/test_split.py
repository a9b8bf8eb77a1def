from __future__ import annotations

import numpy as np
import pytest

from automl.cli import main
from automl.data.dataset import load_dataset
from automl.data.demo import make_demo_dataset
from automl.data.splits import kfold_split, make_mini_dataset, mini_size, write_folds
from automl.data.stratify import label_columns, stratification_labels, stratified_folds
from automl.errors import DataError

# Stated tolerance: on 2,000 images with realistic labels (3:1:0.5 classes, ~4 boxes per image,
# varied box shapes), every fold's proportion of every label column is within 4 percentage
# points of the whole set's, and on average stratified folds deviate less than half as much as
# a random split of the same sizes.
TOLERANCE = 0.04


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_train=60, n_val=30, seed=1)


def _synthetic_labels(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(n):
        k = int(rng.poisson(4)) if rng.random() > 0.02 else 0
        cls = rng.choice(3, size=k, p=[0.6, 0.3, 0.1])
        wh = np.clip(np.exp(rng.normal(-2.0, 0.7, (k, 2))), 0.005, 1)
        boxes.append(np.column_stack([cls, rng.random((k, 2)), wh]))
    return stratification_labels(boxes, 3)


def _deviations(labels: np.ndarray, folds: np.ndarray) -> np.ndarray:
    whole = labels.mean(0)
    return np.array([np.abs(labels[folds == i].mean(0) - whole) for i in range(folds.max() + 1)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fold_proportions_within_tolerance(seed):
    labels = _synthetic_labels(2000, seed)
    folds = stratified_folds(labels, 5, seed=seed)
    assert all(abs(n - 400) <= 20 for n in np.bincount(folds))
    dev = _deviations(labels, folds)
    assert dev.max() <= TOLERANCE, dev.max()
    random_folds = np.random.default_rng(seed).permutation(np.arange(2000) % 5)
    assert dev.mean() < 0.5 * _deviations(labels, random_folds).mean()


def test_folds_are_seeded():
    labels = np.random.default_rng(0).random((300, 5)) < 0.3
    a, b = stratified_folds(labels, 3, seed=1), stratified_folds(labels, 3, seed=1)
    assert np.array_equal(a, b) and not np.array_equal(a, stratified_folds(labels, 3, seed=2))


def test_kfold_split_partitions_the_pool(tmp_path, demo):
    ds = load_dataset(demo)
    split = kfold_split(ds, 4, seed=0)
    assert len(split.files) == 90 and split.k == 4
    written = write_folds(split, tmp_path / "out")
    vals = []
    for i, path in enumerate(written):
        assert path == tmp_path / "out" / f"fold{i}" / "data.yaml"
        fold = load_dataset(path)
        assert fold.names == ds.names
        assert not set(fold.train) & set(fold.val)
        assert set(fold.train) | set(fold.val) == set(split.files)
        vals.append(set(fold.val))
    assert set().union(*vals) == set(split.files) and sum(map(len, vals)) == 90
    assert not list((tmp_path / "out").rglob("*.png"))  # lists only, no image copies
    # on this small set, every label with >= 20 images keeps each fold within 10 points of 1/4
    for c in range(split.labels.shape[1]):
        column = split.labels[:, c]
        if column.sum() >= 20:
            shares = [column[split.folds == i].sum() / column.sum() for i in range(4)]
            assert max(abs(s - 0.25) for s in shares) <= 0.10, (label_columns(ds.names)[c], shares)


def test_one_fold_with_exact_mini_sizes(tmp_path, demo):
    split = kfold_split(load_dataset(demo), 3, seed=0)
    written = write_folds(split, tmp_path, only=2, mini=0.3, seed=0)
    assert written == [tmp_path / "fold2" / "data.yaml", tmp_path / "fold2" / "mini" / "data.yaml"]
    assert not (tmp_path / "fold0").exists()
    full, mini = load_dataset(written[0]), load_dataset(written[1])
    assert len(mini.train) == mini_size(len(full.train), 0.3) == 18
    assert len(mini.val) == mini_size(len(full.val), 0.3) == 9
    assert set(mini.train) <= set(full.train) and set(mini.val) <= set(full.val)
    with pytest.raises(DataError, match="--fold 3: must be in 0..2"):
        write_folds(split, tmp_path, only=3)


def test_mini_from_fold_labels_equals_mini_from_disk(tmp_path, demo):
    """The split's --mini and search's --fraction are the same code: same lists for same input."""
    split = kfold_split(load_dataset(demo), 3, seed=0)
    ds, labels = split.fold(0)
    a = make_mini_dataset(ds, 0.5, tmp_path / "a", seed=4, labels=labels)
    b = make_mini_dataset(ds, 0.5, tmp_path / "b", seed=4)
    assert (a.parent / "train.txt").read_text() == (b.parent / "train.txt").read_text()
    assert (a.parent / "val.txt").read_text() == (b.parent / "val.txt").read_text()


def test_split_cli_prints_the_fold_table(tmp_path, demo, capsys):
    assert main(["split", "--data", str(demo), "--folds", "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fold0 train/val" in out and "fold2 train/val" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("all images"))
    assert "60/30" in row  # 90 images, 3 folds
    for name in ("ellipse", "rectangle", "triangle", "boxes-little", "aspect-wide", "size-large"):
        assert name in out
    assert (tmp_path / "fold2" / "data.yaml").is_file()


def test_split_cli_mini_only_and_errors(tmp_path, demo, capsys):
    assert main(["split", "--data", str(demo), "--mini", "0.5", "--out", str(tmp_path)]) == 0
    mini = load_dataset(tmp_path / "data.yaml")
    assert (len(mini.train), len(mini.val)) == (30, 15)
    assert main(["split", "--data", str(demo), "--out", str(tmp_path)]) == 2
    assert main(["split", "--data", str(demo), "--fold", "1", "--out", str(tmp_path)]) == 2
    assert main(["split", "--data", str(demo), "--mini", "1.5", "--out", str(tmp_path)]) == 2
    assert main(["split", "--data", str(demo), "--folds", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--folds K, --mini F" in err and "--fold 1: needs --folds" in err
    assert "--mini 1.5" in err and "--folds 1: must be at least 2" in err

