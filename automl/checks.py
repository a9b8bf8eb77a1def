"""`automl check`: validate every image and label the way ultralytics reads them.

Errors (the image is left out of every split): missing, unreadable, truncated or tiny images,
files that are not images, label files that are not text, rows without exactly 5 columns,
non-numbers, non-integer or out-of-range class ids, coordinates outside [0, 1] (1% tolerance,
as ultralytics allows). Warnings (reported, image kept): duplicate rows, which ultralytics drops.
Counted only: images without a label file (background) and empty label files.

Images are checked like ultralytics' `check_image`: PIL reads the header and `verify()`s the
file structure (PNG chunk CRCs, no pixel decode), and a JPEG must end with its end-of-image
marker.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from automl.data import Dataset, label_path
from automl.errors import DataError

# Ultralytics' tolerance for normalized coordinates (labels from rounding tools reach 1.0049).
COORD_TOLERANCE = 0.01
MIN_IMAGE_PX = 10
# PIL format names of the image types ultralytics trains on.
_PIL_FORMATS = {"bmp", "dng", "jpeg", "jpeg2000", "mpo", "png", "tiff", "webp", "pfm", "heif", "avif"}
_ROWS_SHOWN = 3  # bad rows quoted per file and kind

# kind -> (severity, what it means / what to do)
KINDS: dict[str, tuple[str, str]] = {
    "missing image": ("error", "listed image file does not exist"),
    "not an image": ("error", "PIL cannot identify it, or a format ultralytics does not read"),
    "unreadable image": ("error", "corrupt or truncated image file"),
    "image too small": ("error", f"width or height under {MIN_IMAGE_PX} px"),
    "unreadable label": ("error", "label file is not UTF-8 text"),
    "wrong column count": ("error", "row without exactly 5 columns (class x y w h)"),
    "not a number": ("error", "a value that is not a number"),
    "bad class id": ("error", "class id not an integer in 0..nc-1"),
    "out of bounds": ("error", f"coordinate outside [0, 1] (tolerance {COORD_TOLERANCE})"),
    "duplicate rows": ("warning", "identical rows; ultralytics drops the copies"),
}


@dataclass(frozen=True)
class Problem:
    """One kind of defect in one image's files."""

    image: Path
    file: Path  # the file at fault: the image or its label
    kind: str
    detail: str

    @property
    def severity(self) -> str:
        return KINDS[self.kind][0]

    def __str__(self) -> str:
        return f"{self.file}: {self.kind}: {self.detail}"


@dataclass
class CheckReport:
    """What `check_dataset` found; `bad` are the images to leave out."""

    yaml_path: Path
    train: int = 0
    val: int = 0
    checked: int = 0  # distinct images
    boxes: int = 0
    problems: list[Problem] = field(default_factory=list)
    background: list[Path] = field(default_factory=list)  # no label file
    empty: list[Path] = field(default_factory=list)  # label file without rows

    @property
    def bad(self) -> set[Path]:
        return {p.image for p in self.problems if p.severity == "error"}

    @property
    def clean(self) -> bool:
        return not self.problems

    def details(self, limit: int | None = None) -> str:
        """One line per problem, errors first; `limit` lines at most."""
        ordered = sorted(self.problems, key=lambda p: (p.severity != "error", str(p.file), p.kind))
        shown = ordered if limit is None else ordered[:limit]
        lines = [f"{p.severity}: {p}" for p in shown]
        if len(shown) < len(ordered):
            lines.append(f"... and {len(ordered) - len(shown)} more "
                         f"(automl check --data {self.yaml_path} lists them all)")
        return "\n".join(lines)

    def headline(self) -> str:
        """One line: what was checked and the verdict."""
        bad = len(self.bad)
        verdict = ("clean" if self.clean else
                   f"{bad} of {self.checked} images have errors and are left out of splits; "
                   f"{len({p.image for p in self.problems}) - bad} more have warnings only")
        return (f"{self.yaml_path}: {self.checked} images checked (train {self.train}, val "
                f"{self.val}), {self.boxes} boxes, {len(self.background) + len(self.empty)} "
                f"without boxes; {verdict}")

    def summary(self) -> str:
        """The headline, then every defect kind with its file count."""
        from automl.console import text_table

        files = Counter(p.kind for p in self.problems)
        rows = [[kind, files.get(kind, 0), sev, meaning] for kind, (sev, meaning) in KINDS.items()]
        rows += [
            ["background (no label)", len(self.background), "info", "image without a label file"],
            ["empty label", len(self.empty), "info", "label file without rows (also background)"],
        ]
        table = text_table(["check", "files", "severity", "meaning"], rows, right=False)
        return "\n".join([self.headline(), *(line.rstrip() for line in table.splitlines())])


def pil_open():
    """PIL's own Image.open.

    Importing ultralytics replaces Image.open with a wrapper that, on a file PIL cannot identify,
    runs a requirements check that may pip-install pi-heif; a check must not install anything.
    """
    from PIL import Image

    opener = Image.open
    return getattr(sys.modules.get(getattr(opener, "__module__", "")), "_image_open", opener)


def _check_image(image: Path) -> tuple[str, str] | None:
    """(kind, detail) of the image's defect, or None when ultralytics would read it."""
    from PIL import UnidentifiedImageError

    try:
        with pil_open()(image) as im:
            fmt, (w, h) = (im.format or "").lower(), im.size
            im.verify()
    except FileNotFoundError:
        return "missing image", "no such file"
    except UnidentifiedImageError:
        return "not an image", "PIL cannot identify the file"
    except Exception as e:  # PIL raises many types for corrupt data
        return "unreadable image", f"{e.__class__.__name__}: {e}"
    if fmt not in _PIL_FORMATS:
        return "not an image", f"format {fmt.upper() or '?'} is not one ultralytics trains on"
    if min(w, h) < MIN_IMAGE_PX:
        return "image too small", f"{w}x{h} px"
    if fmt in {"jpeg", "mpo"}:
        with open(image, "rb") as f:
            f.seek(-2, os.SEEK_END)
            if f.read() != b"\xff\xd9":
                return "unreadable image", "truncated JPEG (no end-of-image marker)"
    return None


def _row_problems(rows: list[tuple[int, list[str]]], nc: int) -> dict[str, list[str]]:
    """kind -> notes on the offending rows of one label file."""
    found: dict[str, list[str]] = {}
    values = []
    for line, parts in rows:
        if len(parts) != 5:
            found.setdefault("wrong column count", []).append(f"line {line}: {len(parts)} columns")
            continue
        try:
            v = [float(x) for x in parts]
        except ValueError:
            found.setdefault("not a number", []).append(f"line {line}: {' '.join(parts)!r}")
            continue
        if not all(np.isfinite(v)):
            found.setdefault("not a number", []).append(f"line {line}: {' '.join(parts)!r}")
            continue
        cls, coords = v[0], v[1:]
        if cls % 1 or cls < 0 or cls >= nc:
            found.setdefault("bad class id", []).append(
                f"line {line}: class {parts[0]} (nc {nc}: ids 0..{nc - 1})")
        if (min(coords) < -COORD_TOLERANCE or max(coords) > 1 + COORD_TOLERANCE
                or min(coords[2:]) < 0):
            found.setdefault("out of bounds", []).append(f"line {line}: {' '.join(parts[1:])}")
        values.append(tuple(v))
    dup = len(values) - len(set(values))
    if dup:
        found["duplicate rows"] = [f"{dup} duplicate row{'s' * (dup > 1)}"]
    return found


def check_one(image: Path, nc: int) -> tuple[list[Problem], str, int]:
    """Check one image and its label: (problems, 'ok' | 'background' | 'empty', boxes)."""
    problems: list[Problem] = []
    bad_image = _check_image(image)
    if bad_image:
        problems.append(Problem(image, image, *bad_image))
    label = label_path(image)
    try:
        text = label.read_text(encoding="utf-8-sig")
    except (FileNotFoundError, IsADirectoryError):
        return problems, "background", 0
    except UnicodeDecodeError:
        problems.append(Problem(image, label, "unreadable label", "not UTF-8 text"))
        return problems, "ok", 0
    rows = [(i, s.split()) for i, s in enumerate(text.splitlines(), 1) if s.strip()]
    if not rows:
        return problems, "empty", 0
    for kind, notes in _row_problems(rows, nc).items():
        more = f" (+{len(notes) - _ROWS_SHOWN} more)" if len(notes) > _ROWS_SHOWN else ""
        problems.append(Problem(image, label, kind, "; ".join(notes[:_ROWS_SHOWN]) + more))
    return problems, "ok", len(rows)


def _check_chunk(args: tuple[list[str], int]) -> list[tuple[list[Problem], str, int]]:
    files, nc = args
    return [check_one(Path(f), nc) for f in files]


def check_files(files: Sequence[Path], nc: int, *, workers: int | None = None
                ) -> list[tuple[list[Problem], str, int]]:
    """`check_one` over many files, in worker processes when there are thousands."""
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers <= 1 or len(files) < 4000:
        return [check_one(Path(f), nc) for f in files]
    from concurrent.futures import ProcessPoolExecutor

    size = 1000
    chunks = [([str(f) for f in files[i:i + size]], nc) for i in range(0, len(files), size)]
    with ProcessPoolExecutor(workers) as pool:
        return [r for part in pool.map(_check_chunk, chunks) for r in part]


def check_dataset(dataset: Dataset, *, workers: int | None = None) -> CheckReport:
    """Check every image of train and val (an image listed in both is checked once)."""
    files = list(dict.fromkeys((*dataset.train, *dataset.val)))
    report = CheckReport(dataset.yaml_path, train=len(dataset.train), val=len(dataset.val),
                         checked=len(files))
    for image, (problems, status, boxes) in zip(files, check_files(files, dataset.nc,
                                                                     workers=workers), strict=True):
        report.problems += problems
        report.boxes += boxes
        if status == "background":
            report.background.append(image)
        elif status == "empty":
            report.empty.append(image)
    return report


def usable(dataset: Dataset) -> tuple[Dataset, CheckReport]:
    """The dataset without its images that have errors, and the check report.

    Raises:
        DataError: train or val has no usable image left.
    """
    report = check_dataset(dataset)
    bad = report.bad
    if not bad:
        return dataset, report
    train = tuple(f for f in dataset.train if f not in bad)
    val = tuple(f for f in dataset.val if f not in bad)
    for key, kept, listed in (("train", train, dataset.train), ("val", val, dataset.val)):
        if not kept:
            raise DataError(
                f"{dataset.yaml_path}: no usable image left in {key} (all {len(listed)} have "
                f"errors); run automl check --data {dataset.yaml_path} for the list and fix them")
    return Dataset(dataset.yaml_path, dataset.names, train, val), report
