"""Careless or hostile input (issue 18): one line naming the file or flag and the fix, exit 2,
no traceback, nothing of the user's changed, nothing written outside the working directory."""

from __future__ import annotations

import json
import os

import pytest
import torch

from automl.cli import main
from tests.conftest import run_automl, run_cli, write


def one_line_exit_2(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("name", ["../../x", "/abs/x", "a/b", ".."])
def test_a_study_name_that_is_a_path_is_refused(in_tmp, capsys, name):
    err = one_line_exit_2(capsys, ["search", "--study", name, "--trials", "1"])
    assert f"--study {name!r}: a study name is a plain name" in err
    assert not (in_tmp / "studies").exists() and not (in_tmp.parent / "x.db").exists()


def test_a_storage_path_to_a_file_of_the_users_is_never_written(in_tmp, capsys):
    notes = write(in_tmp / "notes.txt", "my notes\n")
    err = one_line_exit_2(capsys, ["search", "--storage", str(notes), "--trials", "1"])
    assert "is not an Optuna journal file (nothing was written to it)" in err
    assert notes.read_text() == "my notes\n"
    sqlite = write(in_tmp / "other.db", "not a database")
    err = one_line_exit_2(capsys, ["search", "--storage", f"sqlite:///{sqlite}", "--trials", "1"])
    assert "exists and is not an SQLite database" in err
    assert sqlite.read_text() == "not a database"


def test_a_storage_that_cannot_be_written_fails_at_once(in_tmp, capsys):
    err = one_line_exit_2(capsys, ["search", "--storage", "sqlite:////proc/x.db", "--trials", "1"])
    assert "--storage sqlite:////proc/x.db: cannot" in err


def test_gpus_on_a_machine_without_one_is_refused_instead_of_waiting_for_ever(in_tmp, capsys,
                                                                               tiny_data):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    err = one_line_exit_2(capsys, ["search", "--data", str(tiny_data), "--gpus-per-trial", "1",
                                   "--trials", "1"])
    assert "--gpus-per-trial 1: this machine has no GPU" in err


def test_a_space_that_gives_a_key_twice_is_refused(in_tmp, capsys):
    write(in_tmp / "space.yaml", "params:\n  lr0: {low: 0.001, high: 0.1}\n"
                                 "  lr0: {low: 0.01, high: 0.2}\n")
    err = one_line_exit_2(capsys, ["search", "--space", "space.yaml"])
    assert "space.yaml: line 3: lr0 is given twice" in err


def test_a_non_utf8_image_name_is_a_clear_error_before_any_study(in_tmp, capsys):
    from automl.data.demo import make_demo_dataset

    data = make_demo_dataset(in_tmp / "d", n_train=4, n_val=2, seed=0)
    image = next((in_tmp / "d" / "images" / "train").iterdir())
    os.rename(image, os.path.join(os.fsencode(image.parent), b"caf\xe9.png"))
    err = one_line_exit_2(capsys, ["search", "--data", str(data), "--trials", "1"])
    assert "is not UTF-8; rename it" in err and b"caf\\xe9".decode() in err
    assert not (in_tmp / "studies").exists()
    assert not list((in_tmp / "d").rglob("*.tmp"))


def _coco(tmp_path, file_name, bbox):
    images = tmp_path / "imgs"
    images.mkdir()
    from PIL import Image

    Image.new("RGB", (64, 48)).save(images / "a.png")
    doc = {"images": [{"id": 1, "file_name": file_name, "width": 64, "height": 48}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": bbox}],
           "categories": [{"id": 1, "name": "cow"}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    return tmp_path / "ann.json", images


def test_coco_file_names_that_leave_the_images_folder_are_refused(in_tmp, capsys):
    victim = write(in_tmp / "victim.png", "keep me")
    ann, images = _coco(in_tmp, str(victim), [1, 1, 10, 10])
    err = one_line_exit_2(capsys, ["import", "coco", "--json", str(ann), "--images", str(images),
                                   "--out", "yolo"])
    assert "is not a path inside --images" in err and "Nothing was written" in err
    assert victim.read_text() == "keep me" and not victim.is_symlink()
    assert not (in_tmp / "yolo").exists()


def test_a_nan_in_a_coco_box_is_left_out_not_written(in_tmp):
    from automl.data.coco import import_coco

    ann, images = _coco(in_tmp, "a.png", [1, float("nan"), 10, 10])
    result = import_coco(ann, images, in_tmp / "yolo")
    assert result.degenerate == [1]
    assert "nan" not in (in_tmp / "yolo" / "labels" / "a.txt").read_text()


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_crafted_pt_is_refused_without_running_its_code(in_tmp, capsys):
    from automl.data.demo import make_demo_dataset

    torch.save({"model": _Evil()}, in_tmp / "evil.pt")
    data = make_demo_dataset(in_tmp / "d", n_train=2, n_val=2, seed=0)
    for argv in (["thresholds", "--weights", "evil.pt", "--data", str(data)],
                 ["search", "--model", "evil.pt", "--trials", "1"]):
        err = one_line_exit_2(capsys, argv)
        assert "refused: its pickle names" in err and "system" in err
    assert not (in_tmp / "pwned").exists()


def test_a_real_checkpoint_passes_the_weights_check(tmp_path):
    from ultralytics import YOLO

    from automl.weights import check_weights

    model = YOLO("yolo11n.yaml")
    model.save(tmp_path / "plain.pt")
    check_weights(tmp_path / "plain.pt")  # no error: every global it needs is trusted


def test_an_unreachable_ray_address_is_one_line(in_tmp, tiny_data):
    # Ray itself retries an address for minutes; automl probes HOST:PORT first
    result = run_cli("search", "--data", tiny_data, "--address", "127.0.0.1:1", "--trials", "1",
                     "--epochs", "1", cwd=in_tmp)
    assert result.returncode == 2, result.stderr
    assert "--address 127.0.0.1:1: no Ray cluster answers there" in result.stderr
    assert "Traceback" not in result.stderr


def test_thresholds_on_a_data_yaml_with_other_classes_is_refused_before_the_sweep(tmp_path, capsys):
    from ultralytics import YOLO

    from automl.data.demo import make_demo_dataset

    data = make_demo_dataset(tmp_path / "d", n_train=2, n_val=2)  # 3 named shape classes
    YOLO("yolo11n.yaml").save(tmp_path / "w.pt")  # 80 classes named "0".."79"
    err = one_line_exit_2(capsys, ["thresholds", "--weights", str(tmp_path / "w.pt"),
                                   "--data", str(data)])
    assert f"--data {data}: its classes" in err and "are not the model's" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "w.pt"]  # no cache, no yaml


def test_resuming_with_another_batch_is_refused_by_name():
    from automl.config import StudyConfig

    stored = StudyConfig.from_dict({"data": "/d.yaml", "epochs": 20, "imgsz": 96, "batch": 8})
    resumed = StudyConfig.from_dict({"data": "/d.yaml", "epochs": 20, "imgsz": 96, "batch": 16})
    assert resumed.conflict(stored.to_dict()) == (
        "was created with batch=8, not 16; use the original value to resume, or a new --study NAME")
    assert stored.conflict(stored.to_dict()) is None


def test_a_resumed_or_second_driver_never_reuses_the_first_drivers_seed(tmp_path):
    import optuna

    from automl.study import driver_seed

    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path}/s.db")
    seeds = [driver_seed(study, 7) for _ in range(3)]  # first run, a resume, a second process
    assert seeds[0] == 7 and len(set(seeds)) == 3
    again = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/s.db")
    assert driver_seed(again, 7) not in seeds  # the count lives in the study, not the process


@pytest.mark.integration  # a real search process (Ray start)
def test_a_search_that_completes_no_trial_exits_1(in_tmp, tiny_data):
    # the time is up before the first trial can start: nothing completed, scripts must see it
    result = run_automl("search", "--data", tiny_data, "--trials", "2", "--epochs", "1",
                        "--timeout", "0.001", "--study", "none", cwd=in_tmp, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "automl search: no trial completed" in result.stderr
    assert "Traceback" not in result.stderr
