from __future__ import annotations

import numpy as np
import pytest

from automl.data.dataset import load_dataset
from automl.data.demo import CLASS_NAMES, ensure_demo_dataset, make_demo_dataset
from automl.data.splits import make_mini_dataset
from automl.data.stratify import stratification_labels, stratified_subset
from automl.errors import DataError
from tests.conftest import boxes_of, write


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_train=60, n_val=30, seed=0)


def test_demo_is_deterministic(tmp_path, demo):
    again = make_demo_dataset(tmp_path / "again", n_train=60, n_val=30, seed=0)
    root_a, root_b = demo.parent, again.parent
    labels_a = sorted((root_a / "labels" / "train").glob("*.txt"))
    assert len(labels_a) == 60
    for f in labels_a:
        assert f.read_text() == (root_b / "labels" / "train" / f.name).read_text()
    img = "images/val/val_00003.png"
    assert (root_a / img).read_bytes() == (root_b / img).read_bytes()


def test_demo_has_classes_and_varied_boxes(demo):
    ds = load_dataset(demo)
    assert ds.names == CLASS_NAMES and len(ds.train) == 60 and len(ds.val) == 30
    boxes = [boxes_of(f) for f in ds.train]
    per_image = {len(b) for b in boxes}
    assert len(per_image) >= 4  # little, medium and many boxes per image
    allb = np.concatenate(boxes)
    assert set(allb[:, 0].astype(int)) == {0, 1, 2}
    aspect = allb[:, 3] / allb[:, 4]
    assert aspect.min() < 0.75 and aspect.max() > 1.35
    assert np.all((allb[:, 1:] > 0) & (allb[:, 1:] <= 1))


def test_ensure_demo_dataset_generates_once(tmp_path):
    first = ensure_demo_dataset(tmp_path)
    stamp = first.stat().st_mtime_ns
    second = ensure_demo_dataset(tmp_path)
    assert first == second and second.stat().st_mtime_ns == stamp
    assert load_dataset(second).nc == 3


def test_mini_split_has_exact_sizes_and_lists_only(tmp_path, demo):
    ds = load_dataset(demo)
    out = make_mini_dataset(ds, 0.5, tmp_path / "mini", seed=0)
    train = (tmp_path / "mini" / "train.txt").read_text().split()
    val = (tmp_path / "mini" / "val.txt").read_text().split()
    assert len(train) == 30 and len(val) == 15
    assert set(train) <= {str(p) for p in ds.train}
    assert not list((tmp_path / "mini").glob("*.png"))  # images are never copied
    mini = load_dataset(out)
    assert mini.names == ds.names and len(mini.train) == 30
    again = make_mini_dataset(ds, 0.5, tmp_path / "mini2", seed=0)
    assert (again.parent / "train.txt").read_text() == "".join(f"{p}\n" for p in train)


def test_stratified_subset_keeps_label_proportions():
    rng = np.random.default_rng(0)
    labels = rng.random((400, 6)) < np.array([0.6, 0.3, 0.1, 0.5, 0.2, 0.05])
    keep = stratified_subset(labels, 100, seed=1)
    assert len(keep) == 100 and len(set(keep)) == 100
    whole, part = labels.mean(0), labels[keep].mean(0)
    assert np.all(np.abs(whole - part) <= 0.05), (whole, part)


def test_stratification_labels_columns():
    boxes = [np.array([[0, 0.5, 0.5, 0.05, 0.05]]),  # one small square box of class 0
             np.array([[1, 0.5, 0.5, 0.4, 0.1]] * 6),  # many wide medium boxes of class 1
             np.zeros((0, 5))]
    y = stratification_labels(boxes, nc=2)
    # columns: 2 classes | little medium many | tall square wide | small medium large
    assert y[0].tolist() == [1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0]
    assert y[1].tolist() == [0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0]
    assert not y[2].any()


@pytest.mark.parametrize(("body", "match"), [
    ("val: images\nnames: [a]\n", "missing train"),
    ("train: nowhere\nval: nowhere\nnames: [a]\n", "does not exist"),
    ("train: .\nval: .\nnc: 3\nnames: [a, b]\n", "nc is 3 but names has 2"),
    ("train: [\n", "not valid YAML"),
    # labelme2yolo run on Windows writes its own folder as path:
    ("path: \\\\?\\C:\\Users\\me\\YOLODataset\ntrain: images\nval: images\nnames: [a]\n",
     "is a Windows folder, not one of this machine's; delete the path: line"),
])
def test_bad_data_yaml(tmp_path, body, match):
    path = write(tmp_path / "data.yaml", body)
    with pytest.raises(DataError, match=match) as info:
        load_dataset(path)
    assert str(path) in str(info.value)


def test_missing_data_yaml(tmp_path):
    with pytest.raises(DataError, match="data.yaml not found"):
        load_dataset(tmp_path / "nope.yaml")


def _labels_one_image_at_a_time(boxes, nc):
    """The per-image definition that the vectorised stratification_labels must match."""
    from automl.data.stratify import ASPECT_EDGES, BPI_BUCKETS, SIZE_EDGES

    rows = []
    for b in boxes:
        row = np.zeros(nc + 9, bool)
        if len(b):
            for c in b[:, 0].astype(int):
                if 0 <= c < nc:
                    row[c] = True
            for j, (_, lo, hi) in enumerate(BPI_BUCKETS):
                row[nc + j] = len(b) >= lo and (hi is None or len(b) <= hi)
            for w, h in b[:, 3:5]:
                w, h = max(w, 1e-9), max(h, 1e-9)
                row[nc + 3 + int(np.digitize(w / h, ASPECT_EDGES))] = True
                row[nc + 6 + int(np.digitize(np.sqrt(w * h), SIZE_EDGES))] = True
        rows.append(row)
    return np.array(rows)


def test_stratification_labels_vectorised_matches_per_image():
    rng = np.random.default_rng(5)
    boxes = []
    for _ in range(300):
        k = int(rng.integers(0, 9))
        b = np.column_stack([rng.integers(-1, 5, k), rng.random((k, 2)), rng.random((k, 2)) * 0.5])
        boxes.append(b)
    assert np.array_equal(stratification_labels(boxes, 4), _labels_one_image_at_a_time(boxes, 4))
    assert stratification_labels([np.zeros((0, 5))] * 3, 2).shape == (3, 11)


def test_the_demo_draws_up_to_twelve_classes_as_colour_shape_pairs(tmp_path):
    from automl.data.demo import MAX_CLASSES, class_names

    assert class_names(3) == CLASS_NAMES and MAX_CLASSES == 12
    names = class_names(12)
    assert len(set(names)) == 12 and names[:3] == ("red-ellipse", "green-rectangle", "blue-triangle")
    ds = load_dataset(make_demo_dataset(tmp_path / "many", n_train=40, n_val=8, seed=0, nc=12))
    assert ds.names == names
    classes = {int(c) for f in ds.train for c in boxes_of(f)[:, 0]}
    assert classes == set(range(12))
    with pytest.raises(ValueError, match="nc must be in 1..12"):
        make_demo_dataset(tmp_path / "x", nc=13)
