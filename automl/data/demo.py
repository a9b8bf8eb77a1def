"""A deterministic, locally generated detection dataset that a from-scratch YOLO learns on a CPU.

Three shape classes (ellipse, rectangle, triangle), each with its own hue band, drawn on noisy
gradient backgrounds. Boxes per image, box sizes and box aspects vary on purpose so that the
stratified mini split has something to stratify. Nothing is downloaded. The segmentation demo
is the same images, each shape labelled by its outline (a polygon) instead of its box; the
oriented-box demo turns each shape by its own angle and labels its rotated box; the pose demo
is the same images as the detection demo, each box with 5 keypoints: its corners and its centre.
The classification demo draws one shape a image, filed in the folder of its class.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import yaml

CLASS_NAMES = ("ellipse", "rectangle", "triangle")
# Class frequencies are uneven on purpose (like real data); hue bands make classes learnable fast.
_CLASS_PROBS = (0.45, 0.35, 0.20)
# More classes (a many-class regime, up to 12): each a (shape, hue band) pair; the first three are
# the demo's own (so nc <= 3 draws exactly what it always drew), a fourth band adds yellow.
_SHAPES = ("ellipse", "rectangle", "triangle")
_BANDS = (("red", (0, 20)), ("green", (85, 130)), ("blue", (200, 250)), ("yellow", (45, 65)))
_KINDS = ((0, 0), (1, 1), (2, 2), *((s, b) for b in range(4) for s in range(3)
                                    if (s, b) not in ((0, 0), (1, 1), (2, 2))))
MAX_CLASSES = len(_KINDS)


def class_names(nc: int) -> tuple[str, ...]:
    """The demo's class names for `nc` classes: its own three, then colour-shape pairs."""
    if nc <= len(CLASS_NAMES):
        return CLASS_NAMES[:nc]
    return tuple(f"{_BANDS[b][0]}-{_SHAPES[s]}" for s, b in _KINDS[:nc])
_BOXES_PER_IMAGE = (1, 1, 2, 2, 3, 3, 4, 5, 6)
_IMAGE_SIZES = ((128, 128), (128, 128), (160, 120), (120, 160))
DEMO_VERSION = 1
_DONE_MARKER = ".complete"


def default_cache_dir() -> Path:
    """Where generated data is kept: $AUTOML_CACHE_DIR, else $XDG_CACHE_HOME/automl, else ~/.cache."""
    if os.environ.get("AUTOML_CACHE_DIR"):
        return Path(os.environ["AUTOML_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "automl"


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    from colorsys import hsv_to_rgb

    r, g, b = hsv_to_rgb(h / 360.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    base = rng.uniform(60, 200)
    gx = np.linspace(0, rng.uniform(-40, 40), w)[None, :]
    gy = np.linspace(0, rng.uniform(-40, 40), h)[:, None]
    img = base + gx + gy + rng.normal(0, 6, (h, w))
    img = np.repeat(img[:, :, None], 3, axis=2) + rng.normal(0, 6, (1, 1, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _ellipse(box: tuple[float, float, float, float], n: int = 24) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = box
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return list(zip((x0 + x1) / 2 + (x1 - x0) / 2 * np.cos(t),
                    (y0 + y1) / 2 + (y1 - y0) / 2 * np.sin(t), strict=True))


def _turned(points, center: tuple[float, float], angle: float) -> list[tuple[float, float]]:
    cx, cy = center
    c, s = np.cos(angle), np.sin(angle)
    return [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c) for x, y in points]


def _draw_image(rng: np.random.Generator, w: int, h: int, nc: int,
                boxes_per_image: tuple[int, ...], rotate: bool = False
                ) -> tuple[np.ndarray, list[tuple]]:
    """An image and its objects: (class, x, y, w, h normalised, outline and rotated box in
    pixels). `rotate`: each shape turned by its own angle (the oriented-box demo)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(_background(rng, w, h))
    draw = ImageDraw.Draw(img)
    n_target = int(rng.choice(boxes_per_image))
    probs = (_CLASS_PROBS if nc == len(CLASS_NAMES) else
             np.divide(_CLASS_PROBS[:nc], sum(_CLASS_PROBS[:nc])) if nc < len(CLASS_NAMES) else
             np.full(nc, 1 / nc))
    placed: list[tuple[float, float, float, float]] = []
    labels: list[tuple] = []
    for _ in range(n_target * 20):  # rejection sampling keeps overlaps small
        if len(placed) == n_target:
            break
        cls = int(rng.choice(nc, p=probs))
        size = rng.uniform(18, 56)
        aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))  # w / h
        sw, sh = size * np.sqrt(aspect), size / np.sqrt(aspect)  # the shape's own box
        # drawn only when rotating, so that the other demos draw what they always drew
        angle = float(rng.uniform(0, np.pi)) if rotate else 0.0
        bw = abs(sw * np.cos(angle)) + abs(sh * np.sin(angle))  # the axis-aligned box around it
        bh = abs(sw * np.sin(angle)) + abs(sh * np.cos(angle))
        if bw >= w - 2 or bh >= h - 2:
            continue
        x0, y0 = rng.uniform(1, w - bw - 1), rng.uniform(1, h - bh - 1)
        box = (x0, y0, x0 + bw, y0 + bh)
        if any(_iou(box, other) > 0.05 for other in placed):
            continue
        shape, band = _KINDS[cls]
        hue = rng.uniform(*_BANDS[band][1])
        color = _hsv_to_rgb(hue, rng.uniform(0.75, 1.0), rng.uniform(0.7, 1.0))
        center = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        own = (center[0] - sw / 2, center[1] - sh / 2, center[0] + sw / 2, center[1] + sh / 2)
        corners = [(own[0], own[1]), (own[2], own[1]), (own[2], own[3]), (own[0], own[3])]
        if shape == 0:
            outline = _ellipse(own)
        elif shape == 1:
            outline = corners
        else:
            apex = own[0] + rng.uniform(0.2, 0.8) * sw
            outline = [(apex, own[1]), (own[0], own[3]), (own[2], own[3])]
        if rotate:
            outline, corners = _turned(outline, center, angle), _turned(corners, center, angle)
            draw.polygon(outline, fill=color)
        elif shape == 0:
            draw.ellipse(box, fill=color)
        elif shape == 1:
            draw.rectangle(box, fill=color)
        else:
            draw.polygon(outline, fill=color)
        placed.append(box)
        labels.append((cls, center[0] / w, center[1] / h, bw / w, bh / h, outline, corners))
    return np.asarray(img), labels


# The pose demo's keypoints: the box's corners (top left, top right, bottom right, bottom left,
# all visible) and its centre; a left-right flip swaps the left corners with the right ones.
KEYPOINTS = {"kpt_shape": [5, 3], "flip_idx": [1, 0, 3, 2, 4]}


def make_demo_dataset(
    out: str | Path, *, n_train: int = 160, n_val: int = 64, seed: int = 0, nc: int = 3,
    image_sizes: tuple[tuple[int, int], ...] = _IMAGE_SIZES,
    boxes_per_image: tuple[int, ...] = _BOXES_PER_IMAGE, masks: bool = False,
    rotated: bool = False, keypoints: bool = False, folders: bool = False,
) -> Path:
    """Write the demo dataset (YOLO layout + data.yaml) under `out` and return the data.yaml path.

    `masks`: label each shape by its outline (a segmentation dataset; the same images).
    `rotated`: turn each shape by its own angle and label its rotated box by its 4 corners (an
    oriented-box dataset; other images).
    `keypoints`: give each box KEYPOINTS (a pose dataset; the same images as the detection demo).
    `folders`: one shape a image, saved as out/train/CLASS/*.png and out/val/CLASS/*.png (a
    classification dataset); returns `out`, the folder `yolo classify train data=` takes.

    The same arguments always give the same images and labels. `nc` (1-3) keeps the first
    classes; more, up to MAX_CLASSES (12), adds colour-shape pairs (class_names). `image_sizes`
    are (width, height) choices, `boxes_per_image` the counts drawn from.
    """
    from PIL import Image

    if not 1 <= nc <= MAX_CLASSES:
        raise ValueError(f"nc must be in 1..{MAX_CLASSES} ({nc=})")
    out = Path(out).resolve()
    rng = np.random.default_rng(seed)
    if folders:
        return _class_folders(out, rng, {"train": n_train, "val": n_val}, nc, image_sizes)
    for split, count in (("train", n_train), ("val", n_val)):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            w, h = image_sizes[int(rng.integers(len(image_sizes)))]
            pixels, labels = _draw_image(rng, w, h, nc, boxes_per_image, rotate=rotated)
            stem = f"{split}_{i:05d}"
            Image.fromarray(pixels).save(out / "images" / split / f"{stem}.png")
            rows = [" ".join([str(c), *(f"{px / w:.6f} {py / h:.6f}"
                                        for px, py in (corners if rotated else outline))])
                    if masks or rotated else f"{c} {x:.6f} {y:.6f} {bw:.6f} {bh:.6f}"
                    + ("".join(f" {px / w:.6f} {py / h:.6f} 2" for px, py in
                               (*corners, (x * w, y * h))) if keypoints else "")
                    for c, x, y, bw, bh, outline, corners in labels]
            (out / "labels" / split / f"{stem}.txt").write_text("\n".join(rows) + "\n")
    data_yaml = out / "data.yaml"
    data = {
        "path": str(out),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(class_names(nc))),
        **(KEYPOINTS if keypoints else {}),
    }
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return data_yaml


def _class_folders(out: Path, rng: np.random.Generator, counts: dict[str, int], nc: int,
                   image_sizes: tuple[tuple[int, int], ...]) -> Path:
    from PIL import Image

    for split, count in counts.items():
        for name in class_names(nc):
            (out / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            w, h = image_sizes[int(rng.integers(len(image_sizes)))]
            pixels, labels = _draw_image(rng, w, h, nc, (1,))
            name = class_names(nc)[labels[0][0]]
            Image.fromarray(pixels).save(out / split / name / f"{split}_{i:05d}.png")
    return out


# The small-data regime, where a plain `yolo train` is hardest to beat (benchmarks/README.md,
# the regime suite): 120 training and 30 validation images of two classes in non-square scenes,
# 1-5 boxes each; trained with ultralytics' own settings (nominal batch 64), unlike the demo
# profile.
SMALL_DATA = {"n_train": 120, "n_val": 30, "nc": 2, "image_sizes": ((320, 180), (256, 192)),
              "boxes_per_image": (1, 2, 3, 4, 5)}
SMALL_TRAINING = {"epochs": 20, "imgsz": 96, "batch": 16}


def make_small_dataset(out: str | Path, *, seed: int = 0) -> Path:
    """The small-data regime (SMALL_DATA) under `out`; a seed gives another draw of the same kind."""
    return make_demo_dataset(out, seed=seed, **SMALL_DATA)


# The demo of each task that has one: its folder's name and how it is drawn.
DEMOS = {"detect": ("demo", {}), "segment": ("demo-seg", {"masks": True}),
         "obb": ("demo-obb", {"rotated": True}), "pose": ("demo-pose", {"keypoints": True}),
         "classify": ("demo-cls", {"folders": True})}


def demo_name(task: str = "detect") -> str:
    """The name of `task`'s demo data ("demo" for detection, "demo-seg", ...): the cache folder's
    stem and the default study name's first part, so that each task's demo has its own study."""
    return DEMOS[task][0]


def ensure_demo_dataset(cache_dir: str | Path | None = None, task: str = "detect") -> Path:
    """Return the cached demo data.yaml of `task` (DEMOS; classify: its folder of class
    folders), generating it once (atomically) if it is not there."""
    kind = DEMOS[task][1]
    name = demo_name(task)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    target = root / f"{name}-v{DEMO_VERSION}"
    data = target if kind.get("folders") else target / "data.yaml"
    if (target / _DONE_MARKER).exists():
        return data
    tmp = root / f".{name}-v{DEMO_VERSION}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    make_demo_dataset(tmp, **kind)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    if kind.get("folders"):
        (target / _DONE_MARKER).write_text("ok\n")
        return data
    # data.yaml holds an absolute path: rewrite it for the final location
    make_data = yaml.safe_load((target / "data.yaml").read_text())
    make_data["path"] = str(target.resolve())
    (target / "data.yaml").write_text(yaml.safe_dump(make_data, sort_keys=False))
    (target / _DONE_MARKER).write_text("ok\n")
    return target / "data.yaml"
