from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from automl.cli import main
from automl.data.checks import check_dataset
from automl.data.coco import import_coco
from automl.data.dataset import load_dataset
from automl.data.demo import CLASS_NAMES, make_demo_dataset
from automl.errors import ConfigError, DataError
from tests.conftest import boxes_of


def _to_coco(demo, category_ids):
    """The demo's YOLO labels as a COCO file (px boxes, top-left corner)."""
    ds = load_dataset(demo)
    images, annotations = [], []
    for i, f in enumerate(ds.train):
        w, h = Image.open(f).size
        images.append({"id": 100 + i, "file_name": f"train/{f.name}", "width": w, "height": h})
        for c, x, y, bw, bh in boxes_of(f).tolist():
            annotations.append({"id": len(annotations) + 1, "image_id": 100 + i,
                                "category_id": category_ids[int(c)], "iscrowd": 0,
                                "bbox": [(x - bw / 2) * w, (y - bh / 2) * h, bw * w, bh * h]})
    categories = [{"id": cid, "name": CLASS_NAMES[c]} for c, cid in enumerate(category_ids)]
    return ds, {"images": images, "annotations": annotations, "categories": categories}


def test_round_trip_keeps_coco_categories(tmp_path, capsys):
    demo = make_demo_dataset(tmp_path / "demo", n_train=20, n_val=2, seed=3)
    ds, coco = _to_coco(demo, [7, 11, 30])
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    out = tmp_path / "yolo"
    code = main(["import", "coco", "--json", str(tmp_path / "ann.json"),
                 "--images", str(demo.parent / "images"), "--out", str(out), "--val", "0.25"])
    assert code == 0
    assert "20 images (train 15, val 5)" in capsys.readouterr().out
    imported = load_dataset(out / "data.yaml")
    assert imported.names == CLASS_NAMES
    assert sorted(p.name for p in (*imported.train, *imported.val)) == sorted(f.name for f in ds.train)
    for f in (*imported.train, *imported.val):
        assert f.is_symlink() and f.resolve() == (demo.parent / "images" / "train" / f.name).resolve()
        original = boxes_of(demo.parent / "images" / "train" / f.name)
        assert np.allclose(boxes_of(f), original, atol=2e-6)
    assert not any(p.is_file() and not p.is_symlink() for p in (out / "images").rglob("*.png"))
    assert check_dataset(imported).clean  # ultralytics would read every pair


def test_class_from_path_clips_and_reports(tmp_path):
    images = tmp_path / "imgs"
    for folder, name in (("cow", "a.jpg"), ("cow", "b.jpg"), ("pig", "c.jpg"), ("horse", "d.jpg")):
        (images / folder).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (100, 50)).save(images / folder / name)
    coco = {
        "images": [{"id": 1, "file_name": "cow/a.jpg", "width": 100, "height": 50},
                   {"id": 2, "file_name": "cow/b.jpg", "width": 100, "height": 50},
                   {"id": 3, "file_name": "pig/c.jpg"},  # no size: read from the header
                   {"id": 4, "file_name": "horse/d.jpg", "width": 100, "height": 50},
                   {"id": 5, "file_name": "pig/gone.jpg", "width": 100, "height": 50}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 10]},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [90, 40, 20, 20]},  # clipped
            {"id": 3, "image_id": 3, "category_id": 1, "bbox": [0, 0, 50, 25]},
            {"id": 4, "image_id": 3, "category_id": 1, "bbox": [120, 10, 5, 5]},  # outside: dropped
            {"id": 5, "image_id": 99, "category_id": 1, "bbox": [0, 0, 5, 5]},  # no such image
            {"id": 6, "image_id": 3, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "animal"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    result = import_coco(tmp_path / "ann.json", images, tmp_path / "out",
                         class_from=r"^(\w+)/", names=["pig", "cow"], val=0.3)
    assert result.names == ("pig", "cow")
    assert (result.images, result.boxes) == (3, 3)
    assert result.clipped == [2, 4] and result.degenerate == [4]
    assert result.orphan_annotations == [5] and result.crowd == 1
    assert result.unclassified_images == ["horse/d.jpg"] and result.missing_images == ["pig/gone.jpg"]
    out = tmp_path / "out" / "images"
    assert np.allclose(boxes_of(out / "cow" / "a.jpg"), [[1, 0.2, 0.3, 0.2, 0.2]])
    assert np.allclose(boxes_of(out / "cow" / "b.jpg"), [[1, 0.95, 0.9, 0.1, 0.2]])
    assert np.allclose(boxes_of(out / "pig" / "c.jpg"), [[0, 0.25, 0.25, 0.5, 0.5]])
    text = result.summary()
    for line in ("2 boxes reached outside their image and were clipped (annotation ids): 2, 4",
                 "1 annotations name an image_id that matches no image (ids): 5",
                 "1 images in the JSON are not under --images (left out): pig/gone.jpg",
                 "1 images got no class from --class-from (left out): horse/d.jpg"):
        assert line in text
    ds = load_dataset(result.data_yaml)
    assert len(ds.train) + len(ds.val) == 3 and len(ds.val) == 1
    assert os.path.islink(ds.val[0])


def test_unknown_categories_and_bad_input(tmp_path):
    Image.new("RGB", (20, 20)).save(tmp_path / "x.png")
    coco = {"images": [{"id": 1, "file_name": "x.png", "width": 20, "height": 20}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [1, 1, 5, 5]},
                            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [1, 1, 5, 5]}],
            "categories": [{"id": 2, "name": "dog"}]}
    (tmp_path / "a.json").write_text(json.dumps(coco))
    result = import_coco(tmp_path / "a.json", tmp_path, tmp_path / "out")
    assert result.unknown_categories == {5: 1} and result.boxes == 1
    assert "1 annotations have a category_id not in categories (dropped): ids 5" in result.summary()
    with pytest.raises(ConfigError, match="--names needs --class-from"):
        import_coco(tmp_path / "a.json", tmp_path, tmp_path / "o", names=["a"])
    with pytest.raises(ConfigError, match="not a valid regex"):
        import_coco(tmp_path / "a.json", tmp_path, tmp_path / "o", class_from="(")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        import_coco(tmp_path / "bad.json", tmp_path, tmp_path / "o")
    (tmp_path / "list.json").write_text("[]")
    assert main(["import", "coco", "--json", str(tmp_path / "list.json"), "--images", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
