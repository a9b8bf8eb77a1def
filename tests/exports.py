"""Generated datasets in the layouts labelling tools export, with their quirks (tests only).

Each builder lays the demo's images and boxes out as one exporter writes them (the real exports
measured in benchmarks/real_exports.py have these layouts; see benchmarks/README.md) and returns
(the data.yaml a user passes, the working directory a user runs from):

- roboflow: `train/images` + `train/labels`, `valid/`, `test/`, a data.yaml with `train:
  ../train/images` and no `path:`, JPEGs named `*.rf.<hash>.jpg` (one `.JPG`), polygon rows for
  outlined objects, one file mixing polygon and box rows, a background image without a label
  file, an empty label file, labels without a final newline;
- cvat: YOLO 1.1 (`obj_train_data/` with images and labels side by side, obj.names, obj.data,
  train.txt whose lines are relative to the working directory, a valid.txt of `./` lines),
  names as a mapping, file names with spaces and parentheses;
- label_studio: `images/` + `labels/` + classes.txt + notes.json, `path:` absolute, names as a
  mapping with string keys, upper-case `.PNG`;
- labelimg: each `.txt` beside its `.jpeg`, classes.txt in the folder;
- nested: `train:` a list of two folders with subfolders, a `.webp`, an AppleDouble `._x.png`
  (hidden: ultralytics skips it) and a non-image file among the images.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from automl.data.demo import CLASS_NAMES, make_demo_dataset

NAMES = list(CLASS_NAMES)


def _demo(scratch: Path, seed: int, n_train: int, n_val: int) -> Path:
    return make_demo_dataset(scratch / "demo", n_train=n_train, n_val=n_val, seed=seed).parent


def _items(demo: Path, split: str) -> list[tuple[Path, np.ndarray]]:
    """(image, boxes) of one split of the demo, in order."""
    out = []
    for image in sorted((demo / "images" / split).glob("*.png")):
        text = (demo / "labels" / split / f"{image.stem}.txt").read_text()
        out.append((image, np.array([[float(v) for v in r.split()] for r in text.splitlines()])))
    return out


def _box_row(b: np.ndarray) -> str:
    return f"{int(b[0])} {b[1]:.6f} {b[2]:.6f} {b[3]:.6f} {b[4]:.6f}"


def _polygon_row(b: np.ndarray) -> str:
    """The box's outline as a polygon of 5 points (a corner on each side's middle, too)."""
    c, x, y, w, h = b
    x1, y1, x2, y2 = x - w / 2, y - h / 2, x + w / 2, y + h / 2
    points = [(x1, y1), (x, y1), (x2, y1), (x2, y2), (x1, y2)]
    return f"{int(c)} " + " ".join(f"{px:.6f} {py:.6f}" for px, py in points)


def _save(image: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    suffix = dest.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        Image.open(image).convert("RGB").save(dest, format="JPEG", quality=95)
    elif suffix == ".webp":
        Image.open(image).save(dest, format="WEBP", lossless=True)
    else:
        shutil.copyfile(image, dest)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def roboflow(root: Path, scratch: Path, seed: int = 0, n_train: int = 14, n_val: int = 6
             ) -> tuple[Path, Path]:
    demo = _demo(scratch, seed, n_train, n_val)
    for split, folder in (("train", "train"), ("val", "valid")):
        for i, (image, boxes) in enumerate(_items(demo, split)):
            digest = hashlib.md5(image.name.encode()).hexdigest()[:8]
            suffix = ".JPG" if i == 1 else ".jpg"
            name = f"{image.stem}_png.rf.{digest}"
            _save(image, root / folder / "images" / f"{name}{suffix}")
            if split == "train" and i == 2:
                continue  # a background image: no label file
            if split == "train" and i == 3:
                rows = []  # an empty label file
            elif split == "train" and i == 4 and len(boxes) >= 2:
                rows = [_polygon_row(boxes[0]), *map(_box_row, boxes[1:])]  # mixed: dropped
            elif i % 2 == 0:
                rows = [_polygon_row(b) for b in boxes]  # outlined objects
            else:
                rows = [_box_row(b) for b in boxes]
            _write(root / folder / "labels" / f"{name}.txt", "\n".join(rows))  # no final newline
    for image, boxes in _items(demo, "val")[:2]:
        _save(image, root / "test" / "images" / f"{image.stem}.jpg")
        _write(root / "test" / "labels" / f"{image.stem}.txt", "\n".join(map(_box_row, boxes)))
    _write(root / "README.roboflow.txt", "exported via roboflow.com (a generated fixture)\n")
    _write(root / "data.yaml", "train: ../train/images\nval: ../valid/images\n"
           f"test: ../test/images\n\nnc: {len(NAMES)}\nnames: {NAMES}\n\nroboflow:\n"
           "  workspace: fixture\n  version: 1\n")
    return root / "data.yaml", root


def cvat(root: Path, scratch: Path, seed: int = 1, n_train: int = 12, n_val: int = 6
         ) -> tuple[Path, Path]:
    # CVAT's train.txt lines start with data/: they are meant from the folder above the export
    assert root.name == "data", "CVAT's lists name data/...: the export lives in a data/ folder"
    demo = _demo(scratch, seed, n_train, n_val)
    lines = {"train": [], "valid": []}
    for split, folder in (("train", "train"), ("val", "valid")):
        for i, (image, boxes) in enumerate(_items(demo, split)):
            name = f"frame ({i}).png"
            _save(image, root / f"obj_{folder}_data" / name)
            _write(root / f"obj_{folder}_data" / f"frame ({i}).txt",
                   "".join(_box_row(b) + "\n" for b in boxes) if i % 3 else "")
            lines[folder].append(f"data/obj_train_data/{name}" if folder == "train"
                                 else f"./obj_valid_data/{name}")
    _write(root / "train.txt", "".join(f"{line}\n" for line in lines["train"]))
    _write(root / "valid.txt", "".join(f"{line}\n" for line in lines["valid"]))
    _write(root / "obj.names", "".join(f"{n}\n" for n in NAMES))
    _write(root / "obj.data", f"classes = {len(NAMES)}\ntrain = data/train.txt\n"
           "names = data/obj.names\nbackup = backup/\n")
    _write(root / "data.yaml", yaml.safe_dump({"train": "train.txt", "val": "valid.txt",
                                               "names": dict(enumerate(NAMES))}))
    return root / "data.yaml", root.parent


def label_studio(root: Path, scratch: Path, seed: int = 2, n_train: int = 14, n_val: int = 0
                 ) -> tuple[Path, Path]:
    demo = _demo(scratch, seed, n_train, max(n_val, 1))
    for i, (image, boxes) in enumerate(_items(demo, "train")):
        stem = f"{hashlib.md5(image.name.encode()).hexdigest()[:8]}-{image.stem}"
        _save(image, root / "images" / f"{stem}{'.PNG' if i % 4 == 0 else '.png'}")
        _write(root / "labels" / f"{stem}.txt", "".join(_box_row(b) + "\n" for b in boxes))
    _write(root / "classes.txt", "".join(f"{n}\n" for n in NAMES))
    _write(root / "notes.json", json.dumps({"categories": [{"id": i, "name": n} for i, n in
                                                           enumerate(NAMES)],
                                            "info": {"contributor": "Label Studio"}}))
    _write(root / "data.yaml", yaml.safe_dump({"path": str(root), "train": "images",
                                               "val": "images",
                                               "names": {str(i): n for i, n in enumerate(NAMES)}}))
    return root / "data.yaml", root


def labelimg(root: Path, scratch: Path, seed: int = 3, n_train: int = 12, n_val: int = 6
             ) -> tuple[Path, Path]:
    demo = _demo(scratch, seed, n_train, n_val)
    for split, folder in (("train", "train"), ("val", "valid")):
        for image, boxes in _items(demo, split):
            _save(image, root / folder / f"{image.stem}.jpeg")
            _write(root / folder / f"{image.stem}.txt", "".join(_box_row(b) + "\n" for b in boxes))
        _write(root / folder / "classes.txt", "".join(f"{n}\n" for n in NAMES))
    _write(root / "data.yaml", f"train: train\nval: valid\nnc: {len(NAMES)}\nnames: {NAMES}\n")
    return root / "data.yaml", root


def nested(root: Path, scratch: Path, seed: int = 4, n_train: int = 12, n_val: int = 6
           ) -> tuple[Path, Path]:
    demo = _demo(scratch, seed, n_train, n_val)
    for split in ("train", "val"):
        for i, (image, boxes) in enumerate(_items(demo, split)):
            sub = f"{split}/{'day' if i % 2 else 'night'}/cam{i % 3}"
            suffix = ".webp" if i == 0 else ".png"
            _save(image, root / "images" / sub / f"{image.stem}{suffix}")
            _write(root / "labels" / sub / f"{image.stem}.txt",
                   "".join(_box_row(b) + "\n" for b in boxes))
    # macOS leaves AppleDouble files in copied folders: hidden, so ultralytics' glob skips them
    _write(root / "images" / "train" / "day" / "cam1" / "._train_00001.png", "\0\5\26\7")
    _write(root / "images" / "train" / "night" / "notes.txt", "not an image\n")
    _write(root / "data.yaml", yaml.safe_dump({
        "path": ".", "train": ["images/train/day", "images/train/night"], "val": "images/val",
        "names": dict(enumerate(NAMES))}))
    return root / "data.yaml", root


LAYOUTS: dict[str, Callable[[Path, Path], tuple[Path, Path]]] = {
    "roboflow": roboflow, "cvat": cvat, "label_studio": label_studio, "labelimg": labelimg,
    "nested": nested}


def build(layout: str, base: Path) -> tuple[Path, Path]:
    """Build one layout under base (the export in base/data) and return (data.yaml, cwd)."""
    root = base / "data"
    root.mkdir(parents=True)
    made = LAYOUTS[layout](root, base / "scratch")
    shutil.rmtree(base / "scratch")
    os.sync()
    return made
