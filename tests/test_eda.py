from __future__ import annotations

import numpy as np
import pytest

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
    assert "box centres" in html and html.count("<img class='sample'") == 3 * 4
    assert "<script src=\"http" not in html  # plotly.js embedded: opens offline


def test_eda_into_a_folder_writes_eda_html_there(tmp_path, capsys):
    demo = make_demo_dataset(tmp_path / "demo", n_train=6, n_val=3, seed=2)
    for out in (tmp_path / "new-folder", tmp_path):  # a name without a suffix, an existing one
        assert main(["eda", "--data", str(demo), "--out", str(out)]) == 0
        assert (out / "eda.html").read_text().startswith("<!DOCTYPE html>")
        assert f"report: {out / 'eda.html'}\n" in capsys.readouterr().out
    assert not (tmp_path / "new-folder").is_file()


def test_eda_compares_train_and_val_as_shares_and_shows_where_boxes_sit(tmp_path):
    from automl.data.eda import figure, placement_figure, samples_html

    demo = make_demo_dataset(tmp_path / "demo", n_train=12, n_val=6, seed=2)
    ds = load_dataset(demo)
    stats = [split_stats(name, read_images(files, ds.nc))
             for name, files in (("train", ds.train), ("val", ds.val))]
    fig = figure(stats, ds.names, 900)
    boxes_per_class = [t for t in fig.data if t.xaxis == "x2"]
    assert [t.name for t in boxes_per_class] == ["train", "val"]
    for trace, s in zip(boxes_per_class, stats, strict=True):  # shares of each split's boxes
        assert np.isclose(sum(trace.y), 1) and np.isclose(trace.y[0], (s.classes == 0).mean())
    centres = placement_figure(stats).data[0]  # train's box centres, as shares of the image
    assert np.allclose(centres.x, stats[0].xywh[:, 0]) and centres.histnorm == "probability"
    page = samples_html(stats[0], ds.names)
    for name in ds.names:  # every class has its samples, each image one with that class
        assert f"<h3>{name}</h3>" in page
    assert page.count("<img class='sample'") == sum(
        min(4, len(np.unique(stats[0].image_of_box[stats[0].classes == c])))
        for c in range(ds.nc))


def eda_in_chromium(page):
    """What headless Chromium shows of an EDA page: its figures, whether each sample image
    decoded and shows, and its console errors."""
    from tests.browser import Browser

    with Browser() as browser:
        seen = browser.open(page.as_uri()).seen()
        images = browser.evaluate("[...document.querySelectorAll('img.sample')].map(i => "
                                  "i.complete && i.naturalWidth > 0 && i.width > 0)")
        return seen, images, browser.errors


@pytest.mark.integration  # a real browser process
def test_the_eda_page_draws_in_headless_chromium(tmp_path):
    demo = make_demo_dataset(tmp_path / "demo", n_train=12, n_val=6, seed=2)
    out = tmp_path / "eda.html"
    assert main(["eda", "--data", str(demo), "--out", str(out)]) == 0
    seen, images, errors = eda_in_chromium(out)
    assert len(seen) == 2 and all(f["traces"] and f["drawn"] for f in seen), seen
    assert len(images) == 12 and all(images)  # 4 samples of each of the 3 classes, decoded
    assert errors == []
