"""Your data as you exported it (issue 27): automl reads every layout exactly as ultralytics'
detection trainer does.

For each exporter's layout (tests/exports.py), ultralytics' own training dataset (its
DetectionTrainer's data, `build_yolo_dataset` as the trainer calls it) is compared image by
image with what automl's check, eda, mini split and split see: the same image files, in the same
order, with the same boxes (to 1e-6), and the same counts per split.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from automl.cli import main
from automl.data.checks import check_dataset, usable
from automl.data.dataset import load_dataset
from automl.data.eda import split_stats
from automl.data.splits import make_mini_dataset
from automl.data.yolo_reader import read_images
from tests import exports


def ultralytics_reads(data_yaml: Path, split: str) -> dict[str, np.ndarray]:
    """image (absolute) -> rows class, x, y, w, h of ultralytics' training dataset, in its order."""
    from ultralytics.data import build_yolo_dataset
    from ultralytics.models.yolo.detect import DetectionTrainer

    trainer = DetectionTrainer(overrides=dict(
        data=str(data_yaml), model="yolo11n.yaml", imgsz=64, device="cpu", plots=False,
        project=str(Path(os.getcwd()) / ".ultralytics-runs"), name="parity", exist_ok=True))
    dataset = build_yolo_dataset(trainer.args, trainer.data[split], 4, trainer.data,
                                 mode="train" if split == "train" else "val", stride=32)
    return {os.path.abspath(lb["im_file"]): np.hstack([lb["cls"], lb["bboxes"]])
            for lb in dataset.labels}


@pytest.fixture(params=sorted(exports.LAYOUTS))
def export(request, tmp_path, monkeypatch):
    data_yaml, cwd = exports.build(request.param, tmp_path)
    monkeypatch.chdir(cwd)  # where a user runs `yolo train` (CVAT's lists are relative to it)
    return request.param, data_yaml


def _same(automl_files, automl_boxes, theirs: dict[str, np.ndarray]) -> None:
    assert [str(f) for f in automl_files] == list(theirs)  # same images, same order
    for f in automl_files:
        ours = automl_boxes[f]
        assert ours.shape == theirs[str(f)].shape, f
        np.testing.assert_allclose(ours, theirs[str(f)], atol=1e-6, err_msg=str(f))


def test_check_split_and_eda_see_what_ultralytics_trains_on(export, tmp_path, capsys):
    layout, data_yaml = export
    train, val = ultralytics_reads(data_yaml, "train"), ultralytics_reads(data_yaml, "val")
    assert train and val

    dataset, report = usable(load_dataset(data_yaml))
    _same(dataset.train, dataset.boxes, train)
    _same(dataset.val, dataset.boxes, val)
    assert report.images == len(set(train) | set(val))
    assert report.n_boxes == sum(len(b) for b in {**train, **val}.values())
    if layout == "roboflow":  # polygons read as boxes; the file mixing both, left out
        assert report.polygons and [p.kind for p in report.problems] == [
            "mixed polygon and box rows"]
        assert len(report.background) == 1 and len(report.empty) == 1
    else:
        assert report.clean

    # eda: the same images and boxes per split
    for split, theirs in (("train", train), ("val", val)):
        stats = split_stats(split, read_images(getattr(load_dataset(data_yaml), split), 3))
        assert len(stats.sizes) == len(theirs)
        assert len(stats.classes) == sum(len(b) for b in theirs.values())

    # the mini split (all images, then half): ultralytics reads the same boxes from it
    for fraction in (1.0, 0.5):
        mini = make_mini_dataset(dataset, fraction, tmp_path / f"mini{fraction}", seed=0)
        mini_train = ultralytics_reads(mini, "train")
        assert len(mini_train) == (len(train) if fraction == 1 else round(len(train) / 2))
        for image, boxes in mini_train.items():
            np.testing.assert_allclose(boxes, train[image], atol=1e-6)

    # automl split: its folds list only what ultralytics trains on
    out = tmp_path / "folds"
    assert main(["split", "--data", str(data_yaml), "--folds", "2", "--out", str(out)]) == 0
    listed = set()
    for fold in (0, 1):
        listed |= set((out / f"fold{fold}" / "val.txt").read_text().splitlines())
    assert listed == set(train) | set(val)
    assert ("left out, as ultralytics leaves them out" in capsys.readouterr().out) == (
        layout == "roboflow")


def test_the_roboflow_export_as_downloaded_is_read_not_refused(tmp_path, monkeypatch):
    # the layout of issue 27: `train: ../train/images`, no `path:`; run from anywhere
    data_yaml, _ = exports.build("roboflow", tmp_path)
    monkeypatch.chdir(tmp_path)
    dataset = load_dataset(data_yaml)
    assert dataset.train[0].parent == (tmp_path / "data" / "train" / "images")
    assert any(f.suffix == ".JPG" for f in dataset.train)  # upper-case suffixes are images too
    assert yaml.safe_load(data_yaml.read_text())["train"] == "../train/images"
    assert check_dataset(dataset).polygons


def _mostly_mixed(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """The roboflow layout with one more object outlined in every box file: those files now mix
    polygon and box rows, and ultralytics drops a third of the images."""
    data_yaml, cwd = exports.build("roboflow", tmp_path)
    monkeypatch.chdir(cwd)
    for label in sorted((cwd / "train" / "labels").glob("*.txt")):
        rows = label.read_text().splitlines()
        if rows and all(len(r.split()) == 5 for r in rows):
            label.write_text("\n".join([*rows, "0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2"]))
    return data_yaml, cwd


def test_a_search_on_data_ultralytics_would_mostly_drop_stops_before_its_first_trial(
        tmp_path, monkeypatch):
    from tests.conftest import run_cli

    data_yaml, cwd = _mostly_mixed(tmp_path, monkeypatch)
    report = check_dataset(load_dataset(data_yaml))
    bad = len(report.bad)
    assert bad > 0.05 * report.checked
    result = run_cli("search", "--data", data_yaml, "--trials", "1", cwd=cwd)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith(f"automl search: error: {data_yaml}: ultralytics "
                                               f"would leave out {bad} of {report.checked} images")
    assert f"{bad} of them for mixed polygon and box rows" in line
    assert "write every row of a file as a polygon or every row as a box" in line
    assert f"--drop-bad-images searches on the other {report.checked - bad}" in line
    assert not (cwd / "studies").exists() or not list((cwd / "studies").glob("*.db"))


@pytest.mark.integration
def test_drop_bad_images_searches_on_the_rest_and_says_how_many(tmp_path, monkeypatch):
    from tests.conftest import run_cli

    data_yaml, cwd = _mostly_mixed(tmp_path, monkeypatch)
    dataset, report = usable(load_dataset(data_yaml))
    result = run_cli("search", "--data", data_yaml, "--trials", "1", "--epochs", "1", "--imgsz",
                     "32", "--batch", "4", "--drop-bad-images", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert (f"trials train on all {len(dataset.train)} train and {len(dataset.val)} val images "
            f"({len(report.bad)} listed images are left out, as ultralytics leaves them out"
            in result.stdout)


def test_relative_list_lines_whose_labels_a_trial_could_not_find_are_refused(tmp_path,
                                                                             monkeypatch):
    from automl.errors import DataError

    # a CVAT export under a folder named images: ultralytics finds the labels from the lines as
    # written (relative to the working directory), an absolute list would look under /labels/
    data_yaml, cwd = exports.build("cvat", tmp_path / "images" / "proj")
    monkeypatch.chdir(cwd)
    with pytest.raises(DataError, match=r"the list line data/obj_train_data/frame \(0\).png is "
                                        "relative: ultralytics looks for its label at "
                                        r"data/obj_train_data/frame \(0\).txt"):
        load_dataset(data_yaml)
    # lines that begin with images/ from the dataset's root: ultralytics finds no label at all
    from automl.data.demo import make_demo_dataset

    root = make_demo_dataset(tmp_path / "demo", n_train=4, n_val=2, seed=0).parent
    (root / "train.txt").write_text("".join(f"images/train/{p.name}\n" for p in
                                            sorted((root / "images" / "train").iterdir())))
    (root / "lines.yaml").write_text("train: train.txt\nval: images/val\nnames: [a, b, c]\n")
    monkeypatch.chdir(root)
    with pytest.raises(DataError, match="write the list's lines as absolute paths, or begin "
                                        "them with ./"):
        load_dataset(root / "lines.yaml")


def test_a_derived_data_yaml_keeps_what_a_training_reads_of_the_users(tmp_path):
    # channels: 1 stays 1 in the mini split, so that trial #0 trains what `yolo train` would
    data_yaml, _ = exports.build("labelimg", tmp_path)
    data_yaml.write_text(data_yaml.read_text() + "channels: 1\n")
    dataset, _ = usable(load_dataset(data_yaml))
    mini = make_mini_dataset(dataset, 1.0, tmp_path / "mini")
    assert yaml.safe_load(mini.read_text())["channels"] == 1
