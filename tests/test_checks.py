from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from automl.cli import main
from automl.data.checks import check_dataset, usable
from automl.data.dataset import label_path, load_dataset
from automl.data.demo import make_demo_dataset
from automl.errors import DataError


@pytest.fixture
def demo(tmp_path):
    return make_demo_dataset(tmp_path / "demo", n_train=12, n_val=6, seed=0)


def _train(demo: Path, i: int) -> Path:
    return demo.parent / "images" / "train" / f"train_{i:05d}.png"


def _label(demo: Path, i: int, text: str) -> None:
    label_path(_train(demo, i)).write_text(text)


def _not_an_image(demo):
    _train(demo, 1).write_text("hello, I am text\n")


def _truncated_png(demo):
    data = _train(demo, 1).read_bytes()
    _train(demo, 1).write_bytes(data[: len(data) // 2])


def _truncated_jpeg(demo):
    # a JPEG that opens but lost its end: ultralytics would rewrite it in place
    png = _train(demo, 1)
    Image.open(png).convert("RGB").save(png.with_suffix(".jpg"), quality=90)
    data = png.with_suffix(".jpg").read_bytes()
    png.with_suffix(".jpg").write_bytes(data[:-2])
    label_path(png).rename(label_path(png.with_suffix(".jpg")))
    png.unlink()


def _tiny_image(demo):
    Image.new("RGB", (9, 40)).save(_train(demo, 1))


def _missing_image(demo):
    _train(demo, 1).unlink()
    lst = demo.parent / "train.txt"
    lst.write_text("".join(f"{p}\n" for p in sorted((demo.parent / "images" / "train").glob("*.png")))
                   + f"{_train(demo, 1)}\n")
    demo.write_text(demo.read_text().replace("train: images/train", f"train: {lst}"))


def _gif(demo):
    Image.new("RGB", (40, 40)).save(_train(demo, 1), format="GIF")


def _heic(demo):
    # an iPhone photo: an ISO-BMFF 'ftyp heic' box, which PIL reads only with pi-heif
    heic = _train(demo, 1).with_suffix(".heic")
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200))
    label_path(_train(demo, 1)).rename(label_path(heic))
    _train(demo, 1).unlink()


def test_a_heic_photo_is_named_with_what_to_do(demo, capsys):
    _heic(demo)
    assert main(["check", "--data", str(demo)]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("error:"))
    assert line.endswith("train_00001.heic: not an image: an HEIC photo, which PIL reads only "
                         "with the pi-heif package: pip install pi-heif (ultralytics then reads "
                         "it too), or convert it to JPEG")
    assert "No module named" not in out


def _not_utf8(demo):
    label_path(_train(demo, 1)).write_bytes(b"\xff\xfe\x00bad")


DEFECTS = [
    (_not_an_image, "not an image"),
    (_gif, "not an image"),
    (_truncated_png, "unreadable image"),
    (_tiny_image, "image too small"),
    (_missing_image, "missing image"),
    (_not_utf8, "unreadable label"),
    (lambda d: _label(d, 1, "0 0.5 0.5 0.1\n"), "wrong column count"),
    (lambda d: _label(d, 1, "0 0.5 0.5 0.1 0.1 0.3\n"), "wrong column count"),
    (lambda d: _label(d, 1, "0 0.5 0.5 abc 0.1\n"), "not a number"),
    (lambda d: _label(d, 1, "0 0.5 nan 0.1 0.1\n"), "not a number"),
    (lambda d: _label(d, 1, "3 0.5 0.5 0.1 0.1\n"), "bad class id"),  # nc is 3
    (lambda d: _label(d, 1, "1.5 0.5 0.5 0.1 0.1\n"), "bad class id"),
    (lambda d: _label(d, 1, "-1 0.5 0.5 0.1 0.1\n"), "bad class id"),
    (lambda d: _label(d, 1, "0 1.02 0.5 0.1 0.1\n"), "out of bounds"),
    (lambda d: _label(d, 1, "0 0.5 -0.02 0.1 0.1\n"), "out of bounds"),
]


@pytest.mark.parametrize(("defect", "kind"), DEFECTS)
def test_each_defect_is_reported_and_left_out(demo, capsys, defect, kind):
    defect(demo)
    report = check_dataset(load_dataset(demo))
    assert [p.kind for p in report.problems] == [kind]
    (problem,) = report.problems
    assert problem.severity == "error" and problem.image.stem == "train_00001"
    ds, _ = usable(load_dataset(demo))
    assert len(ds.train) == 11 and problem.image not in ds.train and len(ds.val) == 6
    assert main(["check", "--data", str(demo)]) == 1
    out = capsys.readouterr().out
    assert f"error: {problem.file}: {kind}:" in out
    assert "1 of 18 images have errors" in out


def test_tolerance_and_duplicates_are_not_errors(demo):
    _label(demo, 1, "0 1.005 0.5 0.1 0.1\n")  # within ultralytics' 1% tolerance
    _label(demo, 2, "0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1 0.1\n1 0.5 0.5 0.1 0.1\n")
    report = check_dataset(load_dataset(demo))
    assert [(p.kind, p.severity) for p in report.problems] == [("duplicate rows", "warning")]
    assert "1 duplicate row" in report.problems[0].detail
    assert report.bad == set() and not report.clean
    ds, _ = usable(load_dataset(demo))
    assert len(ds.train) == 12  # warnings keep the image


def test_clean_data_background_and_empty_labels(demo, capsys):
    label_path(_train(demo, 1)).unlink()
    _label(demo, 2, "\n  \n")
    report = check_dataset(load_dataset(demo))
    assert report.clean and report.checked == 18
    assert report.background == [_train(demo, 1)] and report.empty == [_train(demo, 2)]
    assert main(["check", "--data", str(demo)]) == 0
    out = capsys.readouterr().out
    assert "2 without boxes; clean" in out
    # the headline, the table's header and the two kinds found: no rows of zeros
    table = out.splitlines()[1:-1]  # the last line is the next step
    assert len(table) == 3 and table[0].startswith("check")
    assert table[1].startswith("background (no label)") and table[1].split()[3] == "1"
    assert table[2].startswith("empty label") and table[2].split()[2] == "1"


def test_clean_data_is_said_in_one_line(demo, capsys):
    assert main(["check", "--data", str(demo)]) == 0
    line, _next_step = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{demo}: 18 images checked") and line.endswith("0 without boxes; clean")


def test_all_rows_of_a_file_are_quoted_up_to_three(demo):
    _label(demo, 1, "".join(f"9 0.5 0.5 0.1 0.{i + 1}\n" for i in range(5)))
    (problem,) = check_dataset(load_dataset(demo)).problems
    assert problem.detail.count("(nc 3: ids 0..2)") == 3 and "(+2 more)" in problem.detail
    # and ultralytics' own reason, quoted
    assert "(ultralytics: Label class 9 exceeds dataset class count 3" in problem.detail


def test_worker_processes_give_the_same_report(demo):
    _label(demo, 1, "7 0.5 0.5 0.1 0.1\n")
    from automl.data.checks import check_files

    files = list(load_dataset(demo).train) * 400  # above the threshold for processes
    one = check_files(files, 3, workers=1)
    two = check_files(files, 3, workers=2)
    assert len(one) == len(two) == 4800
    for (p1, s1, b1, n1), (p2, s2, b2, n2) in zip(one, two, strict=True):
        assert ([q.kind for q in p1], s1, n1) == ([q.kind for q in p2], s2, n2)
        assert (b1 is None and b2 is None) or np.array_equal(b1, b2)
    assert sum(len(p) for p, *_ in two) == 400


@pytest.mark.parametrize(("body", "match"), [
    ("val: images/val\nnames: [a]\n", "missing train"),
    ("train: images/train\nval: nowhere\nnames: [a, b, c]\n", "does not exist"),
    ("train: images/train\nval: images/val\nnc: 2\nnames: [a, b, c]\n", "nc is 2 but names has 3"),
])
def test_malformed_data_yaml_is_one_line_exit_2(demo, body, match):
    demo.write_text(body)
    run = subprocess.run([sys.executable, "-m", "automl", "check", "--data", str(demo)],
                         capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and match in run.stderr and "Traceback" not in run.stderr


def test_nothing_usable_raises(demo):
    for f in (demo.parent / "labels" / "val").glob("*.txt"):
        f.write_text("0 0.5 0.5\n")
    with pytest.raises(DataError, match="no usable image left in val"):
        usable(load_dataset(demo))


def test_search_stops_before_any_trial_when_nothing_is_usable(demo, in_tmp, capsys):
    for f in (demo.parent / "labels" / "train").glob("*.txt"):
        f.write_text("5 0.5 0.5 0.1 0.1\n")
    code = main(["search", "--data", str(demo), "--trials", "1", "--epochs", "1", "--imgsz", "64"])
    assert code == 2
    captured = capsys.readouterr()
    assert "no usable image left in train" in captured.err
    assert not (in_tmp / "studies").exists()  # no study, no trial


def test_check_ignores_ultralytics_image_open_patch(demo):
    import PIL.Image
    import ultralytics.utils.patches  # noqa: F401  replaces PIL.Image.open

    assert PIL.Image.open.__module__ == "ultralytics.utils.patches"
    _not_an_image(demo)
    (problem,) = check_dataset(load_dataset(demo)).problems
    assert problem.kind == "not an image"


def test_reading_installs_nothing_and_asks_the_network_nothing(demo, monkeypatch):
    # ultralytics' reading would pip-install pi-heif for a file PIL cannot identify, and its
    # data.yaml check asks the network for a font: a check does neither
    import requests
    import ultralytics.utils.checks as checks

    installs, asked = [], []
    # what AUTOINSTALL was when ultralytics asked to install
    monkeypatch.setattr(checks, "check_requirements",
                        lambda *a, **k: installs.append(checks.AUTOINSTALL))
    monkeypatch.setattr(requests, "head", lambda *a, **k: asked.append(a))
    before = checks.AUTOINSTALL
    _not_an_image(demo)
    report = check_dataset(load_dataset(demo))
    assert [p.kind for p in report.problems] == ["not an image"]
    assert checks.AUTOINSTALL is before  # restored
    assert asked == [] and True not in installs


def test_a_truncated_jpeg_is_kept_with_a_warning_and_never_rewritten(demo):
    # ultralytics trains on it after rewriting it in place ("restored"); a check never writes
    _truncated_jpeg(demo)
    jpeg = _train(demo, 1).with_suffix(".jpg")
    before = jpeg.read_bytes()
    report = check_dataset(load_dataset(demo))
    assert [(p.kind, p.severity) for p in report.problems] == [("truncated JPEG", "warning")]
    assert report.bad == set() and jpeg.read_bytes() == before
    ds, _ = usable(load_dataset(demo))
    assert jpeg in ds.train and len(ds.train) == 12


def test_polygon_rows_are_read_as_their_boxes_and_counted(demo):
    # a Roboflow/CVAT export of outlined objects: class x1 y1 x2 y2 ... (normalized)
    _label(demo, 1, "0 0.1 0.2 0.5 0.2 0.5 0.6 0.1 0.6\n2 0.6 0.6 0.9 0.7 0.8 0.95\n")
    report = check_dataset(load_dataset(demo))
    assert report.clean and report.polygons == [_train(demo, 1)]
    boxes = report.boxes[_train(demo, 1)]
    assert np.allclose(boxes, [[0, 0.3, 0.4, 0.4, 0.4], [2, 0.75, 0.775, 0.3, 0.35]], atol=1e-6)
    assert "polygon rows read as their boxes in 1 files" in report.headline()


@pytest.mark.parametrize(("text", "kind"), [
    # ultralytics refuses a file that mixes polygon rows and box rows: the image is dropped
    ("0 0.1 0.2 0.5 0.2 0.5 0.6 0.1 0.6\n1 0.5 0.5 0.2 0.2\n", "mixed polygon and box rows"),
    ("0 0.1 0.2 0.5 0.2 0.5 0.6 0.1\n", "wrong column count"),  # an x without its y
    ("0 0.1 0.2 0.5 0.2 0.5 0.6 0.1 0.6\n0\n", "wrong column count"),  # a class alone
])
def test_polygon_files_ultralytics_refuses_are_errors(demo, text, kind):
    _label(demo, 1, text)
    report = check_dataset(load_dataset(demo))
    assert [(p.kind, p.severity) for p in report.problems] == [(kind, "error")]
    assert "(ultralytics: " in report.problems[0].detail
    assert report.bad == {_train(demo, 1)} and _train(demo, 1) not in report.boxes
