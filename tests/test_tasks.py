"""The task comes from the model as ultralytics decides it, the data is checked against it, and
the tasks automl does not search yet are refused: one line, exit 2, before anything trains."""

from __future__ import annotations

import shutil

import pytest

from automl.data.tasks import box_only_labels, check_data_fits, check_task, model_task
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
    YOLO("yolo11n-pose.yaml").save(weights)
    check_model(str(weights))
    assert model_task(weights) == "pose"
    with pytest.raises(ConfigError, match="task 'pose'.*not supported yet"):
        check_task(weights, None)


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


@pytest.mark.parametrize(("model", "task"), [("yolo11n-seg.yaml", "segment"),
                                             ("yolo11n-pose.yaml", "pose"),
                                             ("yolo11n-obb.yaml", "obb"),
                                             ("yolov8n-cls.yaml", "classify")])
def test_search_refuses_a_task_it_does_not_support_before_anything_trains(in_tmp, model, task):
    err = _one_line_exit_2(run_cli("search", "--model", model, "--trials", "1", cwd=in_tmp))
    assert f"--model {model}: " in err and f"(task '{task}')" in err
    assert "not supported yet" in err and "yolo11n.yaml" in err
    assert not (in_tmp / "studies").exists()


def test_search_with_mismatched_data_names_the_data_and_the_model(in_tmp, tiny_data):
    err = _one_line_exit_2(run_cli("search", "--model", "yolo11n-pose.yaml", "--data",
                                   tiny_data, "--trials", "1", cwd=in_tmp))
    assert f"--data {tiny_data}: no valid kpt_shape" in err
    err = _one_line_exit_2(run_cli("search", "--data", tiny_data.parent, "--trials", "1",
                                   cwd=in_tmp))
    assert "a folder (class folders are a classification dataset)" in err
    assert not (in_tmp / "studies").exists()


def test_a_space_choosing_a_model_of_another_task_is_refused(in_tmp):
    write(in_tmp / "space.yaml", "params:\n  model: {choices: [yolo11n.yaml, yolo11n-seg.yaml]}\n")
    err = _one_line_exit_2(run_cli("search", "--space", "space.yaml", "--trials", "1",
                                   cwd=in_tmp))
    assert "choice yolo11n-seg.yaml: a segmentation (masks) model" in err


def test_the_data_commands_refuse_folders_and_pose_data(in_tmp, tiny_data, tmp_path):
    for command in (["check"], ["eda"], ["split", "--mini", "0.5", "--out", "mini"]):
        err = _one_line_exit_2(run_cli(*command, "--data", tiny_data.parent, cwd=in_tmp))
        assert "a folder, not a data.yaml" in err
    data = _copy(tiny_data, tmp_path)
    data.write_text(data.read_text() + "kpt_shape: [1, 3]\n")
    err = _one_line_exit_2(run_cli("check", "--data", data, cwd=in_tmp))
    assert "has kpt_shape (a pose dataset); automl reads detection data only" in err
