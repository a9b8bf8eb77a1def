from __future__ import annotations

import numpy as np

from automl.cli import main
from automl.data.dataset import load_dataset
from automl.data.demo import make_demo_dataset
from automl.data.eda import split_stats
from automl.data.yolo_reader import read_images
from tests.conftest import boxes_of


def test_eda_numbers_match_the_labels(tmp_path, capsys):
    demo = make_demo_dataset(tmp_path / "demo", n_train=12, n_val=6, seed=2)
    empty = demo.parent / "labels" / "train" / "train_00003.txt"
    empty.write_text("")
    ds = load_dataset(demo)
    boxes = [boxes_of(f) for f in ds.train]
    stats = split_stats("train", read_images(ds.train, ds.nc))
    assert len(stats.classes) == sum(len(b) for b in boxes)
    assert (stats.boxes_per_image == 0).sum() == 1
    # pixel sizes: normalized w*h times the image's own size (demo images are 128x128 or 160x120)
    first = np.array(boxes[0][:, 3:5]) * stats.sizes[0]
    assert np.allclose(stats.wh_px[: len(first)], first)
    assert set(map(tuple, stats.sizes.astype(int))) <= {(128, 128), (160, 120), (120, 160)}

    out = tmp_path / "report" / "eda.html"
    assert main(["eda", "--data", str(demo), "--out", str(out), "--small-area", "900"]) == 0
    text = capsys.readouterr().out
    small = int((stats.areas < 900).sum())
    assert "boxes under 900 px area" in text and f"{small} (" in text
    n_ellipse = int((stats.classes == 0).sum())
    ellipse_row = next(line for line in text.splitlines() if line.strip().startswith("ellipse"))
    assert str(n_ellipse) in ellipse_row.split()
    images_without = next(line for line in text.splitlines() if line.startswith("images without boxes"))
    assert images_without.split()[3] == "1"
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "plotly" in html
    assert "images per class" in html and "box area px" in html
    assert "<script src=\"http" not in html  # plotly.js embedded: opens offline


def test_eda_into_a_folder_writes_eda_html_there(tmp_path, capsys):
    demo = make_demo_dataset(tmp_path / "demo", n_train=6, n_val=3, seed=2)
    for out in (tmp_path / "new-folder", tmp_path):  # a name without a suffix, an existing one
        assert main(["eda", "--data", str(demo), "--out", str(out)]) == 0
        assert (out / "eda.html").read_text().startswith("<!DOCTYPE html>")
        assert capsys.readouterr().out.endswith(f"report: {out / 'eda.html'}\n")
    assert not (tmp_path / "new-folder").is_file()
