"""The task comes from the model as ultralytics decides it, the data is checked against it (one
line, exit 2, before anything trains), and each task is searched end to end."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from automl.data.tasks import (
    box_only_labels,
    check_data_fits,
    check_task,
    model_task,
    refuse_unsupported,
)
from automl.errors import ConfigError, DataError
from tests.conftest import run_cli, write


@pytest.mark.parametrize(("model", "task"), [
    ("yolo11n.yaml", "detect"), ("yolov8s.yaml", "detect"), ("yolo11n-seg.yaml", "segment"),
    ("yolo11n-pose.yaml", "pose"), ("yolo11n-obb.yaml", "obb"), ("yolov8n-cls.yaml", "classify"),
])
def test_a_model_yaml_trains_the_task_of_its_head(model, task):
    assert model_task(model) == task


def test_a_checkpoint_trains_the_task_it_carries(tmp_path):
    from ultralytics import YOLO

    from automl.config import check_model

    # named as a detection model: the checkpoint, not the file name, decides
    weights = tmp_path / "yolo11n.pt"
    YOLO("yolov8n-cls.yaml").save(weights)
    check_model(str(weights))
    assert model_task(weights) == "classify"
    assert check_task(weights, None) == "classify"
    with pytest.raises(ConfigError, match="task 'depth'.*automl searches detection"):
        refuse_unsupported("depth", weights)


def _copy(tiny_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_data.parent, root)
    copy = root / tiny_data.name
    copy.write_text(copy.read_text().replace(str(tiny_data.parent), str(root)))
    return copy


def _rewrite_labels(data_yaml, row):
    """Every label row turned into `row(class, x, y, w, h)`."""
    for label in (data_yaml.parent / "labels").rglob("*.txt"):
        rows = [line.split() for line in label.read_text().splitlines() if line.strip()]
        label.write_text("".join(row(r[0], *map(float, r[1:5])) + "\n" for r in rows))


def _polygon(c, x, y, w, h):
    corners = (x - w / 2, y - h / 2, x + w / 2, y - h / 2, x + w / 2, y + h / 2, x - w / 2, y + h / 2)
    return " ".join([c, *(f"{v:.5f}" for v in corners)])


def test_segment_and_obb_need_polygons_in_every_label_file(tiny_data, tmp_path):
    data = _copy(tiny_data, tmp_path)
    for task in ("segment", "obb"):
        with pytest.raises(DataError, match=r"label files hold boxes only .* pass a detection model"):
            check_data_fits(task, "m.yaml", data)
    _rewrite_labels(data, _polygon)
    check_data_fits("segment", "yolo11n-seg.yaml", data)
    check_data_fits("obb", "yolo11n-obb.yaml", data)
    check_data_fits("detect", "yolo11n.yaml", data)  # polygons are boxes to detection
    # one box-only file among polygon files: ultralytics refuses the whole set, so do we
    label = next((data.parent / "labels" / "train").glob("*.txt"))
    label.write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DataError, match=rf"1 of \d+ label files hold boxes only .*{label.name}"):
        check_data_fits("segment", "yolo11n-seg.yaml", data)


def test_box_only_labels_reads_a_file_as_ultralytics_does(tmp_path):
    boxes = write(tmp_path / "boxes.txt", "0 0.5 0.5 0.1 0.1\n1 0.2 0.2 0.1 0.1\n")
    mixed = write(tmp_path / "mixed.txt", "0 0.5 0.5 0.1 0.1\n1 0.1 0.1 0.2 0.1 0.2 0.2\n")
    empty = write(tmp_path / "empty.txt", "\n")
    found, with_rows = box_only_labels([str(p) for p in (boxes, mixed, empty,
                                                         tmp_path / "missing.txt")])
    assert found == [str(boxes)] and with_rows == 2


def test_pose_needs_kpt_shape_and_other_tasks_refuse_it(tiny_data, tmp_path):
    data = _copy(tiny_data, tmp_path)
    with pytest.raises(DataError, match=r"no valid kpt_shape .* yolo11n-pose.yaml trains pose"):
        check_data_fits("pose", "yolo11n-pose.yaml", data)
    text = data.read_text()
    for bad in ("[0, 3]", "[17, 4]", "17", "[true, 3]"):
        data.write_text(text + f"kpt_shape: {bad}\n")
        with pytest.raises(DataError, match="no valid kpt_shape"):
            check_data_fits("pose", "yolo11n-pose.yaml", data)
    data.write_text(text + "kpt_shape: [1, 3]\n")
    check_data_fits("pose", "yolo11n-pose.yaml", data)
    with pytest.raises(DataError, match=r"has kpt_shape \(a pose dataset\).*yolo11n-pose.yaml"):
        check_data_fits("detect", "yolo11n.yaml", data)


def test_classify_reads_class_folders_and_the_others_a_data_yaml(tiny_data, tmp_path):
    folders = tmp_path / "fruit"
    (folders / "train" / "apple").mkdir(parents=True)
    check_data_fits("classify", "yolo11n-cls.yaml", folders)
    with pytest.raises(DataError, match=r"not a folder of class folders .* yolo11n-cls.yaml"):
        check_data_fits("classify", "yolo11n-cls.yaml", tiny_data)
    for task in ("detect", "segment", "pose", "obb"):
        with pytest.raises(DataError, match=r"a folder \(class folders .* yolo11n-cls.yaml"):
            check_data_fits(task, "m.yaml", folders)


def _one_line_exit_2(result) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    return result.stderr


def test_search_with_mismatched_data_names_the_data_and_the_model(in_tmp, tiny_data):
    err = _one_line_exit_2(run_cli("search", "--model", "yolov8n-cls.yaml", "--data", tiny_data,
                                   "--trials", "1", cwd=in_tmp))
    assert f"--data {tiny_data}: not a folder of class folders" in err
    assert "--model yolov8n-cls.yaml trains classification" in err
    err = _one_line_exit_2(run_cli("search", "--model", "yolo11n-pose.yaml", "--data",
                                   tiny_data, "--trials", "1", cwd=in_tmp))
    assert f"--data {tiny_data}: no valid kpt_shape" in err
    err = _one_line_exit_2(run_cli("search", "--data", tiny_data.parent, "--trials", "1",
                                   cwd=in_tmp))
    assert "a folder (class folders are a classification dataset)" in err
    assert not (in_tmp / "studies").exists()


def test_a_space_choosing_models_of_another_task_is_refused(in_tmp):
    cases = {
        "cls.yaml": ("yolo11n.yaml, yolov8n-cls.yaml", "choices train different tasks "
                     "(yolo11n.yaml: detect, yolov8n-cls.yaml: classify)"),
        "pose.yaml": ("yolo11n.yaml, yolo11n-pose.yaml", "choices train different tasks "
                      "(yolo11n.yaml: detect, yolo11n-pose.yaml: pose)"),
        "mixed.yaml": ("yolo11n.yaml, yolo11n-seg.yaml", "choices train different tasks "
                       "(yolo11n.yaml: detect, yolo11n-seg.yaml: segment)"),
        "seg.yaml": ("yolo11n-seg.yaml, yolov8n-seg.yaml",
                     "model choice yolo11n-seg.yaml trains segmentation (masks), and --model "),
    }
    for name, (choices, said) in cases.items():
        write(in_tmp / name, f"params:\n  model: {{choices: [{choices}]}}\n")
        err = _one_line_exit_2(run_cli("search", "--space", name, "--trials", "1", cwd=in_tmp))
        assert said in err, (name, err)
    assert not (in_tmp / "studies").exists()


def test_a_mask_metric_is_refused_for_a_model_without_masks(in_tmp):
    err = _one_line_exit_2(run_cli("search", "--fitness", "0.5*map50+0.5*mask_map50", "--trials",
                                   "1", cwd=in_tmp))
    assert "--fitness 0.5*map50+0.5*mask_map50: mask_map50 is a mask metric" in err
    assert "yolo11n.yaml trains detection (boxes), which has no masks" in err


def test_the_data_commands_refuse_folders_and_a_kpt_shape_ultralytics_cannot_read(
        in_tmp, tiny_data, tmp_path):
    # a folder is read as class folders: a YOLO layout has none
    for command in (["check"], ["eda"], ["split", "--mini", "0.5", "--out", "mini"]):
        err = _one_line_exit_2(run_cli(*command, "--data", tiny_data.parent, cwd=in_tmp))
        assert f"{tiny_data.parent}: no train/ folder; arrange the images as DIR/train" in err
    data = _copy(tiny_data, tmp_path)
    text = data.read_text()
    data.write_text(text + "kpt_shape: [1, 4]\n")
    err = _one_line_exit_2(run_cli("check", "--data", data, cwd=in_tmp))
    assert f"{data}: kpt_shape [1, 4] is not [keypoints, 2 or 3]" in err
    # a pose data.yaml over box-only rows: each label is read as a pose trainer reads it
    data.write_text(text + "kpt_shape: [1, 3]\n")
    done = run_cli("check", "--data", data, cwd=in_tmp)
    assert done.returncode != 0 and "labels require 8 columns each" in done.stdout + done.stderr


def _tiny_demo(tmp_path, **kind):
    """A tiny demo of one task (make_demo_dataset's masks, rotated or keypoints)."""
    from automl.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path / "-".join(kind), n_train=8, n_val=4, seed=2,
                             image_sizes=((64, 64),), boxes_per_image=(1, 2), **kind)


def _searched_trial(in_tmp, model, data, study, preset, shown):
    """The trial of a one-trial, one-epoch search (the plain training of `model`'s task), once
    its output names `preset`'s weights and shows `shown`, and its value is that fitness."""
    import optuna

    from automl.fitness import parse_fitness
    from automl.study import default_storage

    result = run_cli("search", "--model", model, "--data", data, "--trials", "1", "--epochs",
                     "1", "--imgsz", "32", "--batch", "4", "--study", study, cwd=in_tmp)
    assert result.returncode == 0, result.stderr
    assert f"fitness {parse_fitness(preset).describe()}" in result.stdout and shown in result.stdout
    trial = optuna.load_study(study_name=study, storage=default_storage(study)).trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.value == pytest.approx(parse_fitness(preset)(trial.user_attrs))
    return trial


def _exported_and_reported(in_tmp, study, column, shown) -> str:
    """`export` writes the task's `column` to trials.csv (returned: its header) and
    best_hyperparameters.yaml, and `report` shows `shown`."""
    assert run_cli("export", "--study", study, cwd=in_tmp).returncode == 0
    csv = (in_tmp / "studies" / study / "trials.csv").read_text().splitlines()[0]
    assert f"user_attrs_{column}" in csv
    assert column in (in_tmp / "studies" / study / "best_hyperparameters.yaml").read_text()
    assert run_cli("report", "--study", study, cwd=in_tmp).returncode == 0
    assert shown in (in_tmp / "studies" / study / "report.html").read_text()
    return csv


@pytest.mark.integration
def test_a_segment_search_measures_masks_and_promotes(in_tmp, tmp_path):
    import optuna

    from automl.fitness import MASK_METRICS, METRICS
    from automl.study import default_storage, promotions

    data = _tiny_demo(tmp_path, masks=True)
    trial = _searched_trial(in_tmp, "yolo11n-seg.yaml", data, "seg", "v5_seg", "mask mAP50-95")
    assert set(METRICS + MASK_METRICS) <= set(trial.user_attrs)

    _exported_and_reported(in_tmp, "seg", "mask_map50_95", "mask mAP50-95")
    err = _one_line_exit_2(run_cli("promote", "--study", "seg", "--tune-thresholds", cwd=in_tmp))
    assert "--tune-thresholds: tunes the NMS thresholds of detection models only" in err
    promoted = run_cli("promote", "--study", "seg", cwd=in_tmp)
    assert promoted.returncode == 0, promoted.stderr
    record = promotions(optuna.load_study(study_name="seg", storage=default_storage("seg")))[0]
    assert set(MASK_METRICS) <= set(record["metrics"]) and record["fitness_spec"] == "v5_seg"
    weights = record["weights"]
    err = _one_line_exit_2(run_cli("thresholds", "--weights", weights, "--data", data,
                                   cwd=in_tmp))
    assert "a 'segment' model, not a detection model" in err


def test_the_segment_preset_is_ultralytics_own_box_plus_mask_fitness():
    from automl.fitness import DEFAULT_BY_TASK, parse_fitness

    metrics = {"map50": 0.5, "map50_95": 0.3, "mask_map50": 0.4, "mask_map50_95": 0.2}
    assert parse_fitness("v5_seg")(metrics) == pytest.approx(0.05 + 0.27 + 0.04 + 0.18)
    assert parse_fitness("mask_map50_95")(metrics) == 0.2
    assert parse_fitness("0.5*mask_mAP50-95+0.5*map50")(metrics) == pytest.approx(0.35)
    assert DEFAULT_BY_TASK == {"detect": "v5", "segment": "v5_seg", "obb": "v5", "pose": "v5_pose",
                               "classify": "top1_top5"}
    # a detection trial has no mask metrics: the segment fitness is unknown, never 0
    assert math.isnan(parse_fitness("v5_seg")({"map50": 0.5, "map50_95": 0.3}))


def test_task_fitness_defaults_by_task_and_refuses_masks_without_them():
    from automl.data.tasks import task_fitness
    from automl.errors import FitnessError

    assert task_fitness("segment", None, "m") == "v5_seg"
    assert task_fitness("detect", None, "m") == "v5"
    assert task_fitness("segment", "map50", "m") == "map50"  # box metrics stay open to it
    with pytest.raises(FitnessError, match="v5_seg: mask_map50 is a mask metric"):
        task_fitness("detect", "v5_seg", "yolo11n.yaml")


def test_an_epoch_carries_mask_metrics_only_where_the_model_segments():
    from types import SimpleNamespace

    from automl.epochs import EpochReport, task_metrics

    def metric(p, r, m50, m75, m):
        return SimpleNamespace(mp=p, mr=r, map50=m50, map75=m75, map=m)

    boxes = metric(0.5, 0.5, 0.4, 0.3, 0.25)
    detect = task_metrics(SimpleNamespace(box=boxes))  # a stand-in for DetMetrics
    assert set(detect) == {"precision", "recall", "map50", "map75", "map50_95", "f1"}
    segment = task_metrics(SimpleNamespace(box=boxes, seg=metric(0.6, 0.2, 0.3, 0.2, 0.1)))
    assert segment["mask_map50_95"] == 0.1 and segment["mask_f1"] == pytest.approx(0.3)
    assert segment["map50_95"] == 0.25
    assert "mask_map50" not in EpochReport(epoch=1, fitness=0.1, **detect).metrics()
    assert EpochReport(epoch=1, fitness=0.1, **segment).metrics() == segment


def test_the_segment_demo_outlines_the_detection_demos_shapes(tmp_path, monkeypatch):
    from automl.data.demo import ensure_demo_dataset, make_demo_dataset
    from automl.data.yolo_reader import read_images

    boxes = make_demo_dataset(tmp_path / "d", n_train=6, n_val=2, seed=4)
    masks = make_demo_dataset(tmp_path / "s", n_train=6, n_val=2, seed=4, masks=True)
    for image in sorted((boxes.parent / "images" / "train").glob("*.png")):
        twin = masks.parent / "images" / "train" / image.name
        assert image.read_bytes() == twin.read_bytes()
        # the outline's box is the shape's box (the ellipse's 24 points reach its extremes)
        expected = read_images([image], 3)[0].boxes
        read = read_images([twin], 3)[0]
        assert read.polygons == len(expected) > 0
        assert read.boxes[:, 0].tolist() == expected[:, 0].tolist()
        assert abs(read.boxes[:, 1:] - expected[:, 1:]).max() < 0.01
    check_data_fits("segment", "yolo11n-seg.yaml", masks)
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))
    assert ensure_demo_dataset(task="segment").parent.name == "demo-seg-v1"


def test_the_obb_demo_labels_each_turned_shape_by_its_rotated_box(tmp_path, monkeypatch):
    from automl.data.demo import ensure_demo_dataset, make_demo_dataset

    data = make_demo_dataset(tmp_path / "o", n_train=6, n_val=2, seed=4, rotated=True)
    again = make_demo_dataset(tmp_path / "o2", n_train=6, n_val=2, seed=4, rotated=True)
    angles = set()
    for label in sorted((data.parent / "labels").rglob("*.txt")):
        assert label.read_text() == (again.parent / "labels" / label.parent.name
                                     / label.name).read_text()  # deterministic
        for row in label.read_text().split("\n")[:-1]:
            values = [float(v) for v in row.split()]
            assert len(values) == 9 and 0 <= min(values[1:]) and max(values[1:]) <= 1
            size = Image.open(data.parent / "images" / label.parent.name
                              / f"{label.stem}.png").size
            corners = np.array(values[1:]).reshape(4, 2) * size  # in pixels
            sides = np.diff(np.vstack([corners, corners[:1]]), axis=0)
            assert abs(sides[0] @ sides[1]) < 1e-2 * (sides[0] @ sides[0] + sides[1] @ sides[1])
            angles.add(round(float(np.arctan2(sides[0][1], sides[0][0])), 2))
    assert len(angles) > 5  # turned, each its own way
    check_data_fits("obb", "yolo11n-obb.yaml", data)
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))
    assert ensure_demo_dataset(task="obb").parent.name == "demo-obb-v1"


@pytest.mark.integration
def test_an_obb_search_trains_rotated_boxes(in_tmp, tmp_path):


    data = _tiny_demo(tmp_path, rotated=True)
    trial = _searched_trial(in_tmp, "yolo11n-obb.yaml", data, "obb", "v5", "mAP50-95")
    assert math.isfinite(trial.user_attrs["map50_95"]) and "mask_map50" not in trial.user_attrs
    err = _one_line_exit_2(run_cli("promote", "--study", "obb", "--tune-thresholds", cwd=in_tmp))
    assert "(task 'obb'); leave --tune-thresholds out" in err


def test_the_pose_demo_gives_the_detection_demos_boxes_their_corners_and_centre(tmp_path,
                                                                                monkeypatch):
    from automl.data.checks import usable
    from automl.data.dataset import load_dataset
    from automl.data.demo import ensure_demo_dataset, make_demo_dataset
    from automl.data.splits import make_mini_dataset
    from automl.data.yolo_reader import read_images

    boxes = make_demo_dataset(tmp_path / "d", n_train=6, n_val=2, seed=4)
    pose = make_demo_dataset(tmp_path / "p", n_train=6, n_val=2, seed=4, keypoints=True)
    again = make_demo_dataset(tmp_path / "p2", n_train=6, n_val=2, seed=4, keypoints=True)
    for image in sorted((boxes.parent / "images" / "train").glob("*.png")):
        twin = pose.parent / "images" / "train" / image.name
        assert image.read_bytes() == twin.read_bytes()
        label = pose.parent / "labels" / "train" / f"{image.stem}.txt"
        assert label.read_text() == (again.parent / "labels" / "train" / label.name).read_text()
        # read as ultralytics' pose trainer reads it: the detection demo's boxes, exactly
        expected = read_images([image], 3)[0].boxes
        read = read_images([twin], 3, kpt_shape=(5, 3))[0]
        assert read.kept and read.polygons == 0
        assert np.allclose(read.boxes, expected, atol=1e-5)
        for row in label.read_text().split("\n")[:-1]:
            _, x, y, w, h, *points = (float(v) for v in row.split())
            points = np.array(points).reshape(5, 3)
            assert (points[:, 2] == 2).all()  # all visible
            corners = [(x - w / 2, y - h / 2), (x + w / 2, y - h / 2), (x + w / 2, y + h / 2),
                       (x - w / 2, y + h / 2), (x, y)]
            assert np.allclose(points[:, :2], corners, atol=2e-6)
    # read as a detection dataset, keypoint rows would be refused as bad polygons
    assert not read_images([twin], 3)[0].kept
    check_data_fits("pose", "yolo11n-pose.yaml", pose)
    dataset, report = usable(load_dataset(pose))
    assert report.clean and dataset.kpt_shape == (5, 3) and report.n_boxes > 0
    mini = make_mini_dataset(dataset, 0.5, tmp_path / "mini")
    written = yaml.safe_load(mini.read_text())
    assert written["kpt_shape"] == [5, 3] and written["flip_idx"] == [1, 0, 3, 2, 4]
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))
    cached = ensure_demo_dataset(task="pose")
    assert cached.parent.name == "demo-pose-v1"
    assert yaml.safe_load(cached.read_text())["kpt_shape"] == [5, 3]


def test_the_pose_preset_is_ultralytics_own_box_plus_keypoint_fitness():
    from automl.data.tasks import task_fitness
    from automl.errors import FitnessError
    from automl.fitness import DEFAULT_BY_TASK, parse_fitness

    metrics = {"map50": 0.5, "map50_95": 0.3, "pose_map50": 0.4, "pose_map50_95": 0.2}
    assert parse_fitness("v5_pose")(metrics) == pytest.approx(0.05 + 0.27 + 0.04 + 0.18)
    assert parse_fitness("pose_mAP50-95")(metrics) == 0.2
    assert DEFAULT_BY_TASK["pose"] == "v5_pose" == task_fitness("pose", None, "m")
    assert task_fitness("pose", "map50", "m") == "map50"
    with pytest.raises(FitnessError, match="pose_map50 is a keypoint metric.*which has no "
                                           "keypoints.*a pose model such as yolo11n-pose.yaml"):
        task_fitness("segment", "v5_pose", "yolo11n-seg.yaml")
    with pytest.raises(FitnessError, match="mask_map50 is a mask metric"):
        task_fitness("pose", "v5_seg", "yolo11n-pose.yaml")
    # a detection trial has no keypoint metrics: the pose fitness is unknown, never 0
    assert math.isnan(parse_fitness("v5_pose")({"map50": 0.5, "map50_95": 0.3}))


def test_an_epoch_carries_keypoint_metrics_only_where_the_model_estimates_pose():
    from types import SimpleNamespace

    from automl.epochs import EpochReport, task_metrics

    def metric(m50, m):
        return SimpleNamespace(mp=0.5, mr=0.5, map50=m50, map75=m, map=m)

    pose = task_metrics(SimpleNamespace(box=metric(0.4, 0.25), pose=metric(0.3, 0.1)))
    assert pose["pose_map50_95"] == 0.1 and pose["map50_95"] == 0.25
    assert not any(k.startswith("mask_") for k in pose)
    assert EpochReport(epoch=1, fitness=0.1, **pose).metrics() == pose


@pytest.mark.integration
def test_a_pose_search_measures_keypoints_and_promotes(in_tmp, tmp_path):
    import optuna

    from automl.fitness import METRICS, POSE_METRICS
    from automl.study import BASELINE_ATTR, default_storage, promotions

    data = _tiny_demo(tmp_path, keypoints=True)
    for command in (["check"], ["eda"], ["split", "--mini", "0.5", "--out", "mini"]):
        done = run_cli(*command, "--data", data, cwd=in_tmp)
        assert done.returncode == 0, done.stderr
    assert yaml.safe_load((in_tmp / "mini" / "data.yaml").read_text())["kpt_shape"] == [5, 3]
    # the trial's line and the top table show the keypoint metrics
    trial = _searched_trial(in_tmp, "yolo11n-pose.yaml", data, "pose", "v5_pose", "pose mAP50-95")
    assert trial.user_attrs[BASELINE_ATTR] and set(METRICS + POSE_METRICS) <= set(trial.user_attrs)
    assert not any(k.startswith("mask_") for k in trial.user_attrs)

    _exported_and_reported(in_tmp, "pose", "pose_map50_95", "pose mAP50-95")
    err = _one_line_exit_2(run_cli("promote", "--study", "pose", "--tune-thresholds", cwd=in_tmp))
    assert "(task 'pose'); leave --tune-thresholds out" in err
    promoted = run_cli("promote", "--study", "pose", "--epochs", "1", cwd=in_tmp)
    assert promoted.returncode == 0, promoted.stderr
    assert "pose mAP50-95" in promoted.stdout
    record = promotions(optuna.load_study(study_name="pose", storage=default_storage("pose")))[0]
    assert set(POSE_METRICS) <= set(record["metrics"]) and record["fitness_spec"] == "v5_pose"
    err = _one_line_exit_2(run_cli("thresholds", "--weights", record["weights"], "--data", data,
                                   cwd=in_tmp))
    assert "a 'pose' model, not a detection model" in err


def _tiny_class_folders(tmp_path, n_train=12, n_val=6):
    """A tiny classification demo: one shape a image, in the folder of its class."""
    from automl.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path / "cls", n_train=n_train, n_val=n_val, seed=2,
                             image_sizes=((48, 48),), folders=True)


def test_the_classify_demo_files_one_shape_an_image_in_its_class_folder(tmp_path, monkeypatch):
    from automl.data.dataset import load_dataset
    from automl.data.demo import CLASS_NAMES, ensure_demo_dataset

    root = _tiny_class_folders(tmp_path)
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(CLASS_NAMES)
    dataset = load_dataset(root)  # read as ultralytics' classification trainer reads it
    assert dataset.class_folders and dataset.names == tuple(sorted(CLASS_NAMES))
    assert (len(dataset.train), len(dataset.val)) == (12, 6)
    for image in dataset.train:
        assert dataset.names[dataset.members[image][0]] == image.parent.name
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))
    demo = ensure_demo_dataset(task="classify")
    assert demo.is_dir() and ensure_demo_dataset(task="classify") == demo
    assert len(list((demo / "train").rglob("*.png"))) == 160


def test_class_folders_are_checked_as_ultralytics_checks_them(tmp_path):
    from automl.data.checks import check_dataset, usable
    from automl.data.dataset import load_dataset

    root = _tiny_class_folders(tmp_path)
    broken = root / "val" / "triangle" / "broken.png"
    broken.write_bytes(b"not a png")
    dataset, report = usable(load_dataset(root))
    assert broken in report.bad and broken not in dataset.val and len(dataset.val) == 6
    assert "3 class folders" in report.headline() and "boxes" not in report.headline()
    assert check_dataset(load_dataset(root)).problems[0].kind == "not an image"
    # a val class that train lacks, a missing val, a missing train: one line each
    (root / "val" / "square").mkdir()
    shutil.copy(next((root / "val" / "ellipse").iterdir()), root / "val" / "square" / "s.png")
    with pytest.raises(DataError, match=r"val/square is a class folder that train/ does not have"):
        load_dataset(root)
    shutil.rmtree(root / "val")
    with pytest.raises(DataError, match=r"no val/ \(or valid/, validation/, test/\) folder"):
        load_dataset(root)
    with pytest.raises(DataError, match="no train/ folder"):
        load_dataset(root / "train")


def test_a_classify_mini_split_is_folders_of_links_stratified_by_class(tmp_path):
    from automl.data.checks import usable
    from automl.data.dataset import load_dataset
    from automl.data.splits import kfold_split, make_mini_dataset, write_folds

    root = _tiny_class_folders(tmp_path, n_train=40, n_val=20)
    dataset, _ = usable(load_dataset(root))
    mini = make_mini_dataset(dataset, 0.5, tmp_path / "mini", seed=0)
    assert mini == tmp_path / "mini"
    for split, full in (("train", dataset.train), ("val", dataset.val)):
        links = sorted((mini / split).rglob("*.png"))
        assert len(links) == len(full) // 2 and all(p.is_symlink() for p in links)
        assert all(p.resolve() in full and p.resolve().parent.name == p.parent.name
                   for p in links)  # each in its own class folder, nothing copied
        assert {p.name for p in (mini / split).iterdir()} == set(dataset.names)
        for c in dataset.names:  # every class keeps its share, within one image
            share = sum(1 for f in full if f.parent.name == c) / 2
            assert abs(sum(1 for p in links if p.parent.name == c) - share) <= 1
    # ultralytics' own reading of the mini split finds what was written
    again = load_dataset(mini)
    assert (len(again.train), len(again.val)) == (20, 10)
    written = write_folds(kfold_split(dataset, 3, seed=0), tmp_path / "folds")
    assert [p.name for p in written] == ["fold0", "fold1", "fold2"]
    pooled = {p.resolve() for p in (tmp_path / "folds" / "fold0").rglob("*.png")}
    assert pooled == {*dataset.train, *dataset.val}


def test_the_classify_preset_is_ultralytics_own_and_refused_elsewhere():
    from automl.data.tasks import task_fitness
    from automl.errors import FitnessError
    from automl.fitness import parse_fitness

    assert parse_fitness("top1_top5")({"top1": 0.6, "top5": 1.0}) == pytest.approx(0.8)
    assert parse_fitness("top-1")({"top1": 0.6}) == 0.6
    assert task_fitness("classify", None, "m") == "top1_top5"
    assert task_fitness("classify", "top1", "m") == "top1"
    with pytest.raises(FitnessError, match="v5: map50 is a detection metric.*measures top1 and "
                                           "top5 only"):
        task_fitness("classify", "v5", "yolo11n-cls.yaml")
    with pytest.raises(FitnessError, match="top1_top5: top1 is a classification metric, and "
                                           "--model yolo11n.yaml trains detection"):
        task_fitness("detect", "top1_top5", "yolo11n.yaml")


def test_a_classify_epoch_carries_top1_and_top5_alone():
    from types import SimpleNamespace

    from automl.epochs import EpochReport, task_metrics

    metrics = task_metrics(SimpleNamespace(top1=0.75, top5=1.0))  # ultralytics' ClassifyMetrics
    assert metrics == {"top1": 0.75, "top5": 1.0}
    assert EpochReport(epoch=1, fitness=0.875, **metrics).metrics() == metrics


def test_the_help_names_the_classify_preset():
    from automl.options import _fitness_help

    assert "top1_top5 (0.5*top1+0.5*top5)" in _fitness_help()
    assert "classify models: top1_top5" in _fitness_help()


@pytest.mark.integration
def test_a_classify_search_measures_top1_promotes_and_deploys(in_tmp, tmp_path):
    import optuna

    from automl.study import BASELINE_ATTR, default_storage, promotions

    data = _tiny_class_folders(tmp_path)
    for command in (["check"], ["eda"], ["split", "--mini", "0.5", "--out", "mini"]):
        done = run_cli(*command, "--data", data, cwd=in_tmp)
        assert done.returncode == 0, done.stderr
    assert "images per class" in (in_tmp / "eda.html").read_text()
    assert len(list((in_tmp / "mini" / "train").rglob("*.png"))) == 6
    # a detection model on class folders, a detection metric on a classifier: one line each
    err = _one_line_exit_2(run_cli("search", "--data", data, "--trials", "1", cwd=in_tmp))
    assert "a folder (class folders are a classification dataset)" in err
    err = _one_line_exit_2(run_cli("search", "--model", "yolo11n-cls.yaml", "--data", data,
                                   "--fitness", "v5", "--trials", "1", cwd=in_tmp))
    assert "map50 is a detection metric" in err
    trial = _searched_trial(in_tmp, "yolo11n-cls.yaml", data, "cls", "top1_top5", "top-1")
    assert trial.user_attrs[BASELINE_ATTR] and {"top1", "top5"} <= set(trial.user_attrs)
    assert "map50" not in trial.user_attrs

    status = run_cli("status", "--study", "cls", cwd=in_tmp)
    assert "top-1" in status.stdout and "mAP" not in status.stdout
    assert "map50" not in _exported_and_reported(in_tmp, "cls", "top1", "top-1")
    err = _one_line_exit_2(run_cli("promote", "--study", "cls", "--tune-thresholds", cwd=in_tmp))
    assert "a classification model, which has no NMS" in err
    promoted = run_cli("promote", "--study", "cls", "--full-data", "train+val", cwd=in_tmp)
    assert promoted.returncode == 0, promoted.stderr
    assert "top-1" in promoted.stdout and "automl deploy --weights" in promoted.stdout
    record = promotions(optuna.load_study(study_name="cls", storage=default_storage("cls")))[0]
    assert set(record["metrics"]) == {"top1", "top5"} and record["fitness_spec"] == "top1_top5"
    # train+val: folders of links holding both, the val folder the user's val
    trained = in_tmp / "runs" / "promote" / "cls-trial0" / "data"
    assert len(list((trained / "train").rglob("*.png"))) == 18
    err = _one_line_exit_2(run_cli("thresholds", "--weights", record["weights"], "--data", data,
                                   cwd=in_tmp))
    assert "a classification model; it has no NMS" in err
    deployed = run_cli("deploy", "--weights", record["weights"], "--data", data, "--runs", "2",
                       cwd=in_tmp)
    assert deployed.returncode == 0, deployed.stderr
    assert "drop top-1" in deployed.stdout and "onnx fp32" in deployed.stdout
    onnx = yaml.safe_load(Path(record["weights"]).with_name("deploy.yaml").read_text())
    assert {"top1", "top5"} <= set(onnx["artifacts"][1]["metrics"])


def test_class_folders_and_their_mini_split_are_what_ultralytics_trains_on(tmp_path):
    from ultralytics.cfg import get_cfg
    from ultralytics.data.dataset import ClassificationDataset

    from automl.data.checks import usable
    from automl.data.dataset import load_dataset
    from automl.data.splits import make_mini_dataset

    def theirs(folder):
        """(image, class name) of each sample ultralytics' classification dataset trains on."""
        data = ClassificationDataset(str(folder), get_cfg(overrides={"imgsz": 32}))
        names = data.base.classes
        return sorted((str(Path(f).resolve()), names[c]) for f, c, *_ in data.samples)

    root = _tiny_class_folders(tmp_path)
    (root / "train" / "ellipse" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    dataset, report = usable(load_dataset(root))
    assert [p.image.name for p in report.problems] == ["broken.jpg"]
    for split, files in (("train", dataset.train), ("val", dataset.val)):
        ours = sorted((str(f), dataset.names[dataset.members[f][0]]) for f in files)
        assert ours == theirs(root / split)
    mini = make_mini_dataset(dataset, 0.5, tmp_path / "mini", seed=0)
    assert set(theirs(mini / "train")) <= set(theirs(root / "train"))
    assert len(theirs(mini / "train")) == len(dataset.train) // 2


@pytest.mark.integration  # a real browser process
def test_the_eda_page_of_class_folders_draws_in_headless_chromium(tmp_path):
    from automl.cli import main
    from tests.test_eda import eda_in_chromium

    root = _tiny_class_folders(tmp_path)
    out = tmp_path / "eda.html"
    assert main(["eda", "--data", str(root), "--out", str(out)]) == 0
    seen, images, errors = eda_in_chromium(out)
    assert len(seen) == 1 and seen[0]["traces"] and seen[0]["drawn"], seen
    per_class = [min(4, len(list((root / "train" / c).iterdir())))
                 for c in ("ellipse", "rectangle", "triangle")]
    assert len(images) == sum(per_class) and all(images)
    assert errors == []


@pytest.mark.integration
def test_classify_trial_0_equals_yolo_classify_train_on_the_users_folders(in_tmp, tmp_path):
    """Trial #0 trains on the links of its split as `yolo classify train data=DIR` does on DIR:
    the same samples in the same order, so the same weights (val loss, top-1, top-5)."""
    import optuna
    from ultralytics import YOLO

    import automl
    from automl.execution.trainer import epoch_metrics, validation_loss

    root = _tiny_class_folders(tmp_path, n_train=16, n_val=8)
    flags = dict(epochs=2, imgsz=32, batch=4)
    automl.search(data=str(root), model="yolo11n-cls.yaml", trials=1, seed=0, cpus_per_trial=1,
                  pruner="none", study="plain", log=lambda line: None, **flags)
    trial = optuna.load_study(study_name="plain", storage="sqlite:///studies/plain.db").trials[0]
    per_epoch = {}

    def on_epoch_end(trainer):
        per_epoch[trainer.epoch + 1] = {**epoch_metrics(trainer),
                                        "val_loss": validation_loss(trainer)}

    yolo = YOLO("yolo11n-cls.yaml")
    yolo.add_callback("on_fit_epoch_end", on_epoch_end)
    yolo.train(data=str(root), plots=False, project=str(tmp_path / "plain"), name="run", **flags)
    best = per_epoch[trial.user_attrs["best_epoch"]]
    assert math.isfinite(per_epoch[2]["val_loss"]) and per_epoch[2]["val_loss"] > 0
    assert trial.user_attrs["val_loss"] == pytest.approx(per_epoch[2]["val_loss"], abs=1e-6)
    for key in ("top1", "top5"):
        assert trial.user_attrs[key] == pytest.approx(best[key], abs=1e-6)


class _FakeParts:
    """A fake of ultralytics' per-part metrics (box, seg, pose): fixed mAPs, for logic tests."""

    def __init__(self, base: float):
        self.mp, self.mr, self.map50, self.map75, self.map = base, base, base, base / 2, base / 4


@pytest.mark.parametrize(("task", "parts", "first", "heads"), [
    ("segment", ("box", "seg"), "mask mAP50-95", ["mAP50", "mask mAP50", "mask mAP50-95"]),
    ("pose", ("box", "pose"), "pose mAP50-95", ["mAP50", "pose mAP75", "pose mAP50-95"]),
    ("obb", ("box",), "mAP50-95", ["mAP50", "mAP75", "mAP50-95"]),
])
def test_deploy_measures_each_tasks_own_accuracy(task, parts, first, heads, monkeypatch, tmp_path):
    """accuracy() loads the file for the model's task and keeps that task's metrics (box and
    mask, box and pose, obb's boxes); the artifact's line names the one its drop is of."""
    from types import SimpleNamespace

    import ultralytics

    from automl.results import deployment

    loaded = []

    class FakeYOLO:  # a fake of ultralytics.YOLO: records the task, returns fixed metrics
        def __init__(self, path, task=None):
            loaded.append((path, task))

        def val(self, **kwargs):
            return SimpleNamespace(**{p: _FakeParts(0.8 if p == "box" else 0.4) for p in parts})

    monkeypatch.setattr(ultralytics, "YOLO", FakeYOLO)
    metrics = deployment.accuracy(tmp_path / "best.onnx", tmp_path / "data.yaml", 32, task)
    assert loaded == [(str(tmp_path / "best.onnx"), task)]
    assert set(metrics) == set(deployment.SHOWN[task])
    shown = deployment.SHOWN[task]
    assert next(iter(shown.values())) == first and set(heads) <= set(shown.values())
    own = 0.4 if len(parts) > 1 else 0.8
    assert metrics[next(iter(shown))] == pytest.approx(own / 4)
    assert metrics["map50"] == pytest.approx(0.8)
    artifact = deployment.Artifact("onnx fp32", "best.onnx", 1.0, 2.0, 3.0, metrics)
    assert f"{first} {own / 4:.4f}" in deployment._line(artifact, task)


@pytest.mark.integration  # a real training, ONNX export and two validations
def test_a_segmentation_model_deploys_to_onnx_with_its_mask_map(in_tmp, tmp_path):
    from ultralytics import YOLO

    data = _tiny_demo(tmp_path, masks=True)
    YOLO("yolo11n-seg.yaml").train(data=str(data), epochs=1, imgsz=32, batch=4, device="cpu",
                                   workers=0, project=str(in_tmp / "runs"), name="seg",
                                   exist_ok=True, plots=False, verbose=False)
    weights = in_tmp / "runs" / "seg" / "weights" / "best.pt"
    err = _one_line_exit_2(run_cli("deploy", "--weights", weights, "--thresholds", "t.yaml",
                                   cwd=in_tmp))
    assert "a 'segment' model, and thresholds are tuned for detection models only" in err
    done = run_cli("deploy", "--weights", weights, "--runs", "2", cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    assert "drop mask mAP50-95" in done.stdout and "onnx fp32" in done.stdout
    record = yaml.safe_load(weights.with_name("deploy.yaml").read_text())
    pt, onnx = record["artifacts"]
    assert onnx["path"].endswith(".onnx") and Path(onnx["path"]).is_file()
    for artifact in (pt, onnx):
        assert {"map50_95", "mask_map50", "mask_map50_95"} <= set(artifact["metrics"])
    assert onnx["drop"]["mask_map50_95"] == pytest.approx(
        pt["metrics"]["mask_map50_95"] - onnx["metrics"]["mask_map50_95"])
