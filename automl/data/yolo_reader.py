"""A detection dataset read exactly as ultralytics' detection trainer reads it, by its own code.

What `yolo train` trains on is what every automl command sees: the data.yaml is resolved by
ultralytics' `check_det_dataset` (its `../` retry, `path:` rules, `names` as list or dict), image
lists by its dataset's `get_img_files` (folders searched recursively, list files, its image
suffixes in any case), label paths by `img2label_paths`, and every image with its label by
`verify_image_label` (polygon rows become their boxes, duplicates dropped, corrupt pairs left out).
Nothing here reimplements those rules, so a new ultralytics release moves automl with it;
tests/test_parity.py compares the result with ultralytics' own dataset, image by image.

Two things ultralytics does are held back, since reading must not change the user's files or
machine: it rewrites a truncated JPEG in place ("restored"), and pip-installs pi-heif when PIL
cannot identify a file. Here the rewrite is recorded, not done, and nothing is installed.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from automl.errors import DataError

_NO_BOXES = np.zeros((0, 5), dtype=np.float32)


@dataclass(frozen=True)
class ImageLabels:
    """One image as ultralytics reads it for a detection training.

    Attributes:
        image: the image file, as listed.
        label: its label file (ultralytics' img2label_paths).
        boxes: (n, 5) float32 rows class, x, y, w, h as ultralytics trains on them (polygons as
            their boxes, duplicates dropped); None when ultralytics leaves the image out.
        shape: (height, width) in pixels after EXIF rotation; None when left out.
        label_state: "found", "missing" (no label file: background) or "empty".
        polygons: how many of the file's rows were polygons turned into boxes.
        restored: a truncated JPEG that ultralytics rewrites in place when it trains.
        message: ultralytics' own note: why it leaves the image out, or what it changed.
    """

    image: str
    label: str
    boxes: np.ndarray | None
    shape: tuple[int, int] | None
    label_state: str
    polygons: int = 0
    restored: bool = False
    message: str = ""

    @property
    def kept(self) -> bool:
        return self.boxes is not None


def _ultralytics():
    """ultralytics' data utilities, imported offline (nothing downloads or installs from here)."""
    from automl.ultralytics_env import offline_env

    for key, value in offline_env().items():
        os.environ.setdefault(key, value)
    import ultralytics.data.utils as data_utils

    return data_utils


_patch_lock = threading.Lock()
_patch_depth = 0
_patch_saved: tuple[Any, Any] | None = None
_rewrites: set[str] = set()  # files ultralytics would have rewritten, while patched


@contextmanager
def _read_only() -> Iterator[set[str]]:
    """ultralytics' image check with its in-place repair of truncated JPEGs recorded, not done,
    and its pi-heif auto-install off. Yields the set of files it would have rewritten.

    Process-wide patches of ultralytics' module globals: reentrant and thread-safe (the first
    to enter installs them, the last to leave restores them), so that no overlapping read ever
    runs with the real repair.
    """
    global _patch_depth, _patch_saved
    import ultralytics.utils.checks as checks

    data_utils = _ultralytics()

    def record(im_file, write) -> None:
        _rewrites.add(str(im_file))

    with _patch_lock:
        if _patch_depth == 0:
            _patch_saved = (data_utils._replace_image, checks.AUTOINSTALL)
            data_utils._replace_image, checks.AUTOINSTALL = record, False
        _patch_depth += 1
    try:
        yield _rewrites
    finally:
        with _patch_lock:
            _patch_depth -= 1
            if _patch_depth == 0:
                data_utils._replace_image, checks.AUTOINSTALL = _patch_saved
                _patch_saved = None


def resolve_yaml(data_yaml: str | Path) -> dict[str, Any]:
    """The data.yaml as ultralytics' detection trainer resolves it (`check_det_dataset`).

    Paths of train/val/test come back absolute, with ultralytics' fallbacks applied (a `../`
    path that does not exist is retried inside the yaml's folder; a relative `path:` is taken
    from the working directory, then from ultralytics' datasets folder); `names` as {id: name}.

    Raises:
        DataError: ultralytics refuses the file; its reason, in one line.
    """
    from automl.ultralytics_env import quiet_ultralytics

    data_utils = _ultralytics()
    font = data_utils.check_font
    # its closing font check asks the network for Arial (a 3 s probe where the network is
    # closed, a download where it is open): reading a data.yaml needs no font
    data_utils.check_font = lambda *a, **k: None
    try:
        with quiet_ultralytics():
            return data_utils.check_det_dataset(str(data_yaml), autodownload=False)
    except Exception as e:  # SyntaxError, TypeError, KeyError, FileNotFoundError, ...: its words
        reason = " ".join(str(e).replace("❌", "").split()) or type(e).__name__
        missing = re.search(r"missing path '([^']+)'", reason)
        if missing:  # its check of the val entry
            raise DataError(f"{data_yaml}: val: {missing.group(1)} does not exist; fix the path "
                            "in data.yaml") from None
        raise DataError(f"{data_yaml}: ultralytics cannot read it: {reason}") from None
    finally:
        data_utils.check_font = font


def split_share(fraction: Any, split: str) -> float | int:
    """A split's part of a training's `fraction=` (a ratio, a count, or [train, val, test]), as
    ultralytics' trainer resolves it for that split's dataset (1.0: all of it).

    Raises:
        ValueError: a share that selects no image of train or val (ultralytics' own check).
    """
    from ultralytics.data.utils import get_split_fraction

    _ultralytics()
    return get_split_fraction(fraction, split)


def image_files(entry: str | list[str], share: float | int = 1.0) -> list[str]:
    """The image files ultralytics' dataset lists for a resolved train/val/test entry.

    Folders are searched recursively (hidden files skipped), list files read line by line
    (`./x` relative to the list, other relative lines to the working directory), and only
    ultralytics' image suffixes kept, in any case; sorted as ultralytics sorts them. `share`:
    that split's part of a training's `fraction=` (split_share), the first images of that share
    or that many, as a training with it lists them.

    Raises:
        FileNotFoundError: a path that does not exist, or no image at all (ultralytics' error).
    """
    from ultralytics.data.base import BaseDataset

    from automl.ultralytics_env import quiet_ultralytics

    _ultralytics()
    # get_img_files reads only these two attributes of its dataset
    stand_in = SimpleNamespace(prefix="", fraction=share)
    with quiet_ultralytics():  # its read-speed check logs on slow disks
        return BaseDataset.get_img_files(stand_in, entry)


def image_formats() -> set[str]:
    """PIL's names of the image formats ultralytics' check_image accepts (its IMG_FORMATS and
    jpeg2000, as its own assert reads)."""
    return set(_ultralytics().IMG_FORMATS) | {"jpeg2000"}


def image_suffixes() -> list[str]:
    """The image suffixes ultralytics trains on (its IMG_FORMATS), in any case."""
    return sorted(_ultralytics().IMG_FORMATS)


def label_files(images: Sequence[str | Path]) -> list[str]:
    """Where ultralytics looks for each image's labels: the last /images/ -> /labels/, .txt."""
    return _ultralytics().img2label_paths([str(i) for i in images])


def read_one(image: str, label: str, nc: int, kpt_shape: Sequence[int] | None = None,
             single_cls: bool = False) -> ImageLabels:
    """One image and its label through ultralytics' `verify_image_label` (call inside _read_only);
    with `kpt_shape` (a pose dataset's), its rows read as boxes with keypoints, as its pose
    trainer reads them (the boxes kept, the keypoints checked); with `single_cls`, as a
    `single_cls=True` training reads them (a class id beyond nc is kept: every box is class 0)."""
    data_utils = _ultralytics()
    nkpt, ndim = kpt_shape or (0, 0)
    result = data_utils.verify_image_label((image, label, "", kpt_shape is not None, nc, nkpt,
                                            ndim, single_cls))
    _, boxes, shape, segments, _, missing, _, empty, _, message = result
    state = "missing" if missing else "empty" if empty else "found"
    message = " ".join(message.removeprefix(f"{image}: ").removeprefix(
        "ignoring corrupt image/label: ").split())  # one line, whatever PIL wrote
    if boxes is None:
        return ImageLabels(image, label, None, None, state, message=message)
    return ImageLabels(image, label, boxes, tuple(int(v) for v in shape), state,
                       polygons=len(segments), message=message)


def _read_chunk(args: tuple[list[str], list[str], int, Sequence[int] | None, bool]
                ) -> list[ImageLabels]:
    images, labels, nc, kpt_shape, single_cls = args
    with _read_only() as rewrites:
        read = [read_one(i, lb, nc, kpt_shape, single_cls)
                for i, lb in zip(images, labels, strict=True)]
    return [r if r.image not in rewrites else
            ImageLabels(r.image, r.label, r.boxes, r.shape, r.label_state, r.polygons, True,
                        r.message) for r in read]


def read_images(images: Sequence[str | Path], nc: int, *, kpt_shape: Sequence[int] | None = None,
                workers: int | None = None, single_cls: bool = False) -> list[ImageLabels]:
    """Every image with its boxes as ultralytics reads them, in order (`kpt_shape`: a pose
    dataset's, `single_cls`: a single_cls=True training's, see read_one); worker processes
    when there are thousands (each opens its image's header: ~0.1-1 ms a file)."""
    images = [str(i) for i in images]
    labels = label_files(images)
    size = 1000
    chunks = [(images[i:i + size], labels[i:i + size], nc, kpt_shape, single_cls)
              for i in range(0, len(images), size)]
    if workers is None:
        from automl.machine import machine_cpus

        workers = machine_cpus()  # the cores this process may use (affinity, quotas)
    workers = min(workers, len(chunks))
    if workers <= 1 or len(images) < 4000:
        return _read_chunk((images, labels, nc, kpt_shape, single_cls))
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    try:  # spawned, not forked: a process that runs Ray (a second search) must not be forked
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return [r for part in pool.map(_read_chunk, chunks) for r in part]
    except (OSError, AssertionError):  # no processes here (a daemon, a sandbox): in this one
        return _read_chunk((images, labels, nc, kpt_shape, single_cls))


def no_boxes() -> np.ndarray:
    """An image without boxes, as ultralytics holds it."""
    return _NO_BOXES.copy()
