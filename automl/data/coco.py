"""`automl import coco`: COCO JSON to YOLO labels, with the images linked, never copied.

Ultralytics finds an image's label by replacing the last `/images/` of the image path with
`/labels/`, so the output holds `images/` (symbolic links to the original files, same relative
paths as the JSON's file_name) and `labels/` (one .txt per image with boxes), plus a stratified
train/val split as image lists and a data.yaml.

The class comes either from the COCO categories (ids sorted, renumbered 0..n-1, their names
kept) or, when category_id means nothing (some exports give every box one placeholder
category), from the image path through a regex.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import numpy as np

from automl.data.dataset import label_path
from automl.data.splits import mini_size, write_split
from automl.data.stratify import stratification_labels, stratified_subset
from automl.errors import ConfigError, DataError

_SHOWN = 5  # ids / names quoted per kind of problem


@dataclass
class CocoImport:
    """What an import wrote and what it had to fix or leave out."""

    data_yaml: Path
    names: tuple[str, ...]
    images: int = 0
    train: int = 0
    val: int = 0
    boxes: int = 0
    without_boxes: int = 0
    clipped: list[int] = field(default_factory=list)  # annotation ids clipped to the image
    degenerate: list[int] = field(default_factory=list)  # no area left after clipping: dropped
    crowd: int = 0  # iscrowd annotations: skipped, as ultralytics' own converter does
    orphan_annotations: list[int] = field(default_factory=list)  # image_id matches no image
    unknown_categories: Counter = field(default_factory=Counter)  # category_id -> annotations
    missing_images: list[str] = field(default_factory=list)  # file_name not under --images
    unclassified_images: list[str] = field(default_factory=list)  # --class-from found no class

    def summary(self) -> str:
        """What was written, then one line per kind of problem found."""
        lines = [f"{self.data_yaml}: {self.images} images (train {self.train}, val {self.val}), "
                 f"{self.boxes} boxes, {self.without_boxes} images without boxes; "
                 f"classes: {', '.join(self.names)}"]

        def quote(items) -> str:
            items = list(items)
            more = f", ... (+{len(items) - _SHOWN})" if len(items) > _SHOWN else ""
            return ", ".join(str(i) for i in items[:_SHOWN]) + more

        for items, what in (
            (self.clipped, "boxes reached outside their image and were clipped (annotation ids)"),
            (self.degenerate, "boxes had no area inside their image and were dropped (ids)"),
            (self.orphan_annotations, "annotations name an image_id that matches no image (ids)"),
            (self.missing_images, "images in the JSON are not under --images (left out)"),
            (self.unclassified_images, "images got no class from --class-from (left out)"),
        ):
            if items:
                lines.append(f"{len(items)} {what}: {quote(items)}")
        if self.unknown_categories:
            lines.append(f"{sum(self.unknown_categories.values())} annotations have a category_id "
                         f"not in categories (dropped): ids {quote(sorted(self.unknown_categories))}")
        if self.crowd:
            lines.append(f"{self.crowd} iscrowd annotations skipped")
        return "\n".join(lines)


def _load(json_path: Path) -> dict:
    if not json_path.is_file():
        raise DataError(f"--json {json_path}: file not found")
    try:
        raw = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"--json {json_path}: not valid JSON ({e.__class__.__name__})") from e
    if not isinstance(raw, dict) or not isinstance(raw.get("images"), list) \
            or not isinstance(raw.get("annotations"), list):
        raise DataError(f"--json {json_path}: not a COCO file (needs 'images' and 'annotations' lists)")
    return raw


def _class_of_image(images: dict[int, dict], pattern: str, names: list[str] | None,
                    result: CocoImport) -> tuple[dict[int, int], tuple[str, ...]]:
    """Image id -> class id from the regex on each file_name, and the class names."""
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"--class-from {pattern!r}: not a valid regex ({e})") from e
    found: dict[int, str] = {}
    for image_id, im in images.items():
        m = rx.search(str(im["file_name"]))
        if m is None:
            result.unclassified_images.append(str(im["file_name"]))
            continue
        found[image_id] = m.group(1) if rx.groups else m.group(0)
    order = list(names) if names else sorted(set(found.values()))
    index = {n: i for i, n in enumerate(order)}
    classes = {}
    for image_id, name in found.items():
        if name in index:
            classes[image_id] = index[name]
        else:
            result.unclassified_images.append(str(images[image_id]["file_name"]))
    return classes, tuple(order)


def import_coco(
    json_path: str | Path, images_dir: str | Path, out_dir: str | Path, *,
    class_from: str | None = None, names: list[str] | None = None, val: float = 0.2,
    seed: int = 0,
) -> CocoImport:
    """Convert a COCO detection file into a YOLO dataset under out_dir (images linked).

    Args:
        class_from: regex on each image's file_name; group 1 (or the whole match) is the class
            of every box in that image. None keeps the COCO categories.
        names: class names in id order (with class_from); default: the matches, sorted.
        val: share of images in val, stratified like the mini split.

    Raises:
        DataError: an unreadable JSON or images folder; ConfigError: bad regex, names or val.
    """
    json_path, images_dir, out = Path(json_path), Path(images_dir), Path(out_dir)
    if not images_dir.is_dir():
        raise DataError(f"--images {images_dir}: not a folder")
    if not 0 < val < 1:
        raise ConfigError(f"--val {val}: must be in (0, 1)")
    if names is not None and class_from is None:
        raise ConfigError("--names needs --class-from; without it the COCO categories name the classes")
    if names is not None and (len(set(names)) != len(names) or not all(names)):
        raise ConfigError(f"--names {','.join(names)}: must be distinct, non-empty names")
    raw = _load(json_path)
    images = {im["id"]: im for im in raw["images"]}
    for im in images.values():  # before anything is read or written: no path leaves its folder
        _check_file_name(str(im["file_name"]), json_path)
    result = CocoImport(data_yaml=out / "data.yaml", names=())

    if class_from is not None:
        image_class, class_names = _class_of_image(images, class_from, names, result)
        category_class: dict = {}
    else:
        cats = sorted(raw.get("categories") or [], key=lambda c: c["id"])
        if not cats:
            raise DataError(f"--json {json_path}: no categories; pass --class-from REGEX to take "
                            "the class from the image path")
        category_class = {c["id"]: i for i, c in enumerate(cats)}
        class_names = tuple(str(c.get("name", c["id"])) for c in cats)
        image_class = {}
    result.names = class_names
    if not class_names:
        raise DataError(f"--class-from {class_from!r}: matched no image file_name in {json_path}")

    rows: dict[int, list[str]] = {i: [] for i in images}
    for ann in raw["annotations"]:
        image_id = ann.get("image_id")
        if image_id not in images:
            result.orphan_annotations.append(ann.get("id"))
            continue
        if ann.get("iscrowd"):
            result.crowd += 1
            continue
        if class_from is not None:
            cls = image_class.get(image_id)
            if cls is None:
                continue  # the image is reported as unclassified
        else:
            cls = category_class.get(ann.get("category_id"))
            if cls is None:
                result.unknown_categories[ann.get("category_id")] += 1
                continue
        rows[image_id].append(_yolo_row(ann, cls, images[image_id], images_dir, result))

    written: list[Path] = []
    boxes: list[np.ndarray] = []
    for image_id, im in images.items():
        if class_from is not None and image_id not in image_class:
            continue
        source = images_dir / str(im["file_name"])
        if not source.is_file():
            result.missing_images.append(str(im["file_name"]))
            continue
        link = (out / "images" / str(im["file_name"])).absolute()
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source.resolve())
        good = [r for r in rows[image_id] if r]
        label = label_path(link)
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(f"{r}\n" for r in good))
        written.append(link)
        boxes.append(np.array([[float(v) for v in r.split()] for r in good]).reshape(-1, 5))
        result.boxes += len(good)
        result.without_boxes += not good
    if not written:
        raise DataError(f"--images {images_dir}: none of the JSON's {len(images)} images found there "
                        "(file_name is read relative to --images)")

    labels = stratification_labels(boxes, len(class_names))
    n_val = min(mini_size(len(written), val), len(written) - 1) if len(written) > 1 else 0
    val_idx = set(stratified_subset(labels, n_val, seed=seed).tolist()) if n_val else set()
    train = [p for i, p in enumerate(written) if i not in val_idx] or written
    val_files = [p for i, p in enumerate(written) if i in val_idx] or written
    result.data_yaml = write_split(out, class_names, train, val_files)
    result.images, result.train, result.val = len(written), len(train), len(val_files)
    return result


def _check_file_name(name: str, json_path: Path) -> None:
    """A COCO file_name is relative to the images folder: never absolute, never above it.

    Raises:
        DataError: naming the file_name; an absolute or `..` path would link (and label) files
            outside --images and --out.
    """
    parts = Path(name).parts
    if not name or Path(name).is_absolute() or PureWindowsPath(name).is_absolute() or ".." in parts:
        raise DataError(f"{json_path}: file_name {name!r} is not a path inside --images (absolute "
                        "or with '..'); COCO file_names are relative to the images folder. "
                        "Nothing was written")


def _yolo_row(ann: dict, cls: int, im: dict, images_dir: Path, result: CocoImport) -> str:
    """One YOLO row (class cx cy w h, normalized) from a COCO [x, y, w, h] px box, clipped."""
    w_img, h_img = im.get("width"), im.get("height")
    if not w_img or not h_img:  # some exporters leave them out: read the header
        from automl.data.checks import pil_open

        try:
            with pil_open()(images_dir / str(im["file_name"])) as pil:
                w_img, h_img = im["width"], im["height"] = pil.size
        except OSError:
            return ""  # the image is reported as missing
    try:
        x, y, w, h = (float(v) for v in ann["bbox"])
    except (TypeError, ValueError):
        x = y = w = h = math.nan
    if not all(math.isfinite(v) for v in (x, y, w, h)):  # NaN/inf: no box at all
        result.degenerate.append(ann.get("id"))
        return ""
    x0, y0 = min(max(x, 0.0), w_img), min(max(y, 0.0), h_img)
    x1, y1 = min(max(x + w, 0.0), w_img), min(max(y + h, 0.0), h_img)
    if (x0, y0, x1, y1) != (x, y, x + w, y + h):
        result.clipped.append(ann.get("id"))
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        result.degenerate.append(ann.get("id"))
        return ""
    return (f"{cls} {(x0 + x1) / 2 / w_img:.6f} {(y0 + y1) / 2 / h_img:.6f} "
            f"{(x1 - x0) / w_img:.6f} {(y1 - y0) / h_img:.6f}")
