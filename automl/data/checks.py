"""`automl check`: every image and label as ultralytics' detection trainer reads them.

ultralytics decides (automl.data.yolo_reader runs its own `verify_image_label`): an image it leaves out
of training is an error here, and left out of every split and trial too; an image it trains on
is kept, with a warning where something looks wrong. For each image left out, the check says why
in its own terms (the kind below, the offending rows) and quotes ultralytics' reason.

Errors (ultralytics drops the image): missing, unreadable, tiny or non-image files; label files
that are not UTF-8; rows that are neither a box (`class x y w h`) nor a polygon (`class x1 y1 x2
y2 ...`); files that mix polygon and box rows; non-numbers, non-integer or out-of-range class
ids; coordinates outside [0, 1] (1% tolerance). Warnings (kept): duplicate rows (ultralytics
drops the copies), truncated JPEGs (ultralytics rewrites them in place when it trains; the check
never writes). Counted only: polygon rows read as their boxes, images without a label file
(background) and empty label files.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from automl.data.dataset import Dataset
from automl.data.yolo_reader import ImageLabels, image_formats, read_images
from automl.errors import DataError

# Ultralytics' tolerance for normalized coordinates (labels from rounding tools reach 1.0049).
COORD_TOLERANCE = 0.01
MIN_IMAGE_PX = 10
_ROWS_SHOWN = 3  # bad rows quoted per file and kind
# `automl search` stops before its first trial when the check would leave out more than this
# share of the images, unless --drop-bad-images says to go on without them
MAX_DROPPED_SHARE = 0.05

# kind -> (severity, what it means, what to do)
KINDS: dict[str, tuple[str, str, str]] = {
    "missing image": ("error", "listed image file does not exist",
                      "fix the paths in data.yaml or its list files"),
    "not an image": ("error", "PIL cannot identify it, or a format ultralytics does not read",
                     "convert or remove those files"),
    "unreadable image": ("error", "corrupt or truncated image file", "replace or remove them"),
    "image too small": ("error", f"width or height under {MIN_IMAGE_PX} px", "remove them"),
    "unreadable label": ("error", "label file is not UTF-8 text", "save the labels as UTF-8"),
    "mixed polygon and box rows": (
        "error", "one label file holds polygon rows and box rows: ultralytics drops the image",
        "write every row of a file as a polygon or every row as a box (export the boxes again "
        "from your labelling tool, or turn the polygons into boxes)"),
    "wrong column count": (
        "error", "a row that is neither a box (class x y w h) nor a polygon (class x1 y1 x2 y2 "
        "x3 y3 ...)", "fix those rows"),
    "not a number": ("error", "a value that is not a number", "fix those rows"),
    "bad class id": ("error", "class id not an integer in 0..nc-1",
                     "fix the ids, or the names in data.yaml"),
    "out of bounds": ("error", f"coordinate outside [0, 1] (tolerance {COORD_TOLERANCE})",
                      "write coordinates as fractions of the image size (YOLO's normalized xywh)"),
    "rejected by ultralytics": ("error", "ultralytics' own reason, quoted",
                                "see automl check's list"),
    "duplicate rows": ("warning", "identical rows; ultralytics drops the copies", ""),
    "truncated JPEG": ("warning", "JPEG without its end marker: ultralytics rewrites the file in "
                       "place (restored) when it trains", ""),
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
    n_boxes: int = 0  # in the images ultralytics trains on
    problems: list[Problem] = field(default_factory=list)
    background: list[Path] = field(default_factory=list)  # no label file
    empty: list[Path] = field(default_factory=list)  # label file without rows
    polygons: list[Path] = field(default_factory=list)  # polygon rows read as their boxes
    boxes: dict[Path, np.ndarray] = field(default_factory=dict)  # what ultralytics trains on
    classes: int = 0  # a classification dataset's class count (0: a data.yaml's boxes)

    @property
    def images(self) -> int:
        """Distinct images of train and val that ultralytics trains on."""
        return self.checked - len(self.bad)

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
                   f"{bad} of {self.checked} images have errors and are left out (ultralytics "
                   f"leaves them out of training too); "
                   f"{len({p.image for p in self.problems}) - bad} more have warnings only")
        polygons = (f"polygon rows read as their boxes in {len(self.polygons)} files; "
                    if self.polygons else "")
        what = (f"{self.classes} class folders" if self.classes else
                f"{self.n_boxes} boxes, {len(self.background) + len(self.empty)} without boxes")
        return (f"{self.yaml_path}: {self.checked} images checked (train {self.train}, val "
                f"{self.val}), {what}; {polygons}{verdict}")

    def summary(self) -> str:
        """The headline, then each defect kind found with its file count (clean: the headline)."""
        from automl.console import text_table

        files = Counter(p.kind for p in self.problems)
        rows = [[kind, files.get(kind, 0), sev, meaning]
                for kind, (sev, meaning, _) in KINDS.items()]
        rows += [
            ["polygon rows", len(self.polygons), "info", "rows class x1 y1 x2 y2 ...: "
             "ultralytics trains on each polygon's box"],
            ["background (no label)", len(self.background), "info", "image without a label file"],
            ["empty label", len(self.empty), "info", "label file without rows (also background)"],
        ]
        rows = [row for row in rows if row[1]]
        if not rows:
            return self.headline()
        table = text_table(["check", "files", "severity", "meaning"], rows, right=False)
        return "\n".join([self.headline(), *(line.rstrip() for line in table.splitlines())])


HEIF = (".heic", ".heif")  # phones' photo format: PIL needs a plugin to read it


def pil_open():
    """PIL's own Image.open.

    Importing ultralytics replaces Image.open with a wrapper that, on a file PIL cannot identify,
    runs a requirements check that may pip-install pi-heif; a check must not install anything.
    """
    from PIL import Image

    opener = Image.open
    return getattr(sys.modules.get(getattr(opener, "__module__", "")), "_image_open", opener)


def _image_problem(image: Path) -> tuple[str, str] | None:
    """(kind, detail) of why ultralytics cannot read the image, or None."""
    from PIL import UnidentifiedImageError

    try:
        with pil_open()(image) as im:
            fmt, (w, h) = (im.format or "").lower(), im.size
            im.verify()
    except FileNotFoundError:
        return "missing image", "no such file"
    except UnidentifiedImageError:
        if image.suffix.lower() in HEIF:
            return "not an image", (f"an {image.suffix[1:].upper()} photo, which PIL reads only "
                                    "with the pi-heif package: pip install pi-heif (ultralytics "
                                    "then reads it too), or convert it to JPEG")
        return "not an image", "PIL cannot identify the file"
    except Exception as e:  # PIL raises many types for corrupt data
        return "unreadable image", f"{e.__class__.__name__}: {e}"
    if fmt not in image_formats():
        return "not an image", f"format {fmt.upper() or '?'} is not one ultralytics trains on"
    if min(w, h) < MIN_IMAGE_PX:
        return "image too small", f"{w}x{h} px"
    return None


def _row_problems(rows: list[tuple[int, list[str]]], nc: int | None) -> dict[str, list[str]]:
    """kind -> notes on the offending rows of one label file ultralytics refused.

    A file with any row of more than 6 columns is a polygon file to ultralytics: every row must
    then be class + x y pairs, and a box row beside polygon rows makes it refuse the file.
    `nc` None: any whole class id is one (a single_cls training makes every box class 0).
    """
    found: dict[str, list[str]] = {}
    polygon_file = any(len(parts) > 6 for _, parts in rows)
    if polygon_file:
        boxes = sum(1 for _, parts in rows if len(parts) == 5)
        if boxes:
            found["mixed polygon and box rows"] = [
                f"{len(rows) - boxes} polygon rows, {boxes} box rows"]
    for line, parts in rows:
        if len(parts) < 3:  # not even a class and one point
            found.setdefault("wrong column count", []).append(f"line {line}: {len(parts)} columns")
            continue
        if polygon_file and len(parts) != 5 and len(parts) % 2 == 0:
            found.setdefault("wrong column count", []).append(
                f"line {line}: {len(parts)} columns (a polygon row is class + x y pairs)")
            continue
        if not polygon_file and len(parts) != 5:
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
        if cls % 1 or cls < 0 or (nc is not None and cls >= nc):
            found.setdefault("bad class id", []).append(
                f"line {line}: class {parts[0]}" + (f" (nc {nc}: ids 0..{nc - 1})"
                                                    if nc is not None else ""))
        negative = min(coords[2:]) < 0 if len(coords) == 4 else False  # a box's w, h
        if min(coords) < -COORD_TOLERANCE or max(coords) > 1 + COORD_TOLERANCE or negative:
            found.setdefault("out of bounds", []).append(f"line {line}: {' '.join(parts[1:])}")
    return found


def _why_left_out(read: ImageLabels, nc: int | None) -> list[Problem]:
    """The problems of an image ultralytics leaves out, in automl's kinds, with its own reason."""
    image, label = Path(read.image), Path(read.label)
    reason = f" (ultralytics: {read.message})" if read.message else ""
    bad_image = _image_problem(image)
    if bad_image:  # ultralytics' reason for a HEIC photo names only a missing module
        said = "" if image.suffix.lower() in HEIF else reason
        return [Problem(image, image, bad_image[0], bad_image[1] + said)]
    problems = []
    try:
        text = label.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return [Problem(image, label, "unreadable label", "not UTF-8 text" + reason)]
    except OSError:
        text = ""
    rows = [(i, s.split()) for i, s in enumerate(text.splitlines(), 1) if s.strip()]
    for kind, notes in _row_problems(rows, nc).items():
        more = f" (+{len(notes) - _ROWS_SHOWN} more)" if len(notes) > _ROWS_SHOWN else ""
        problems.append(Problem(image, label, kind, "; ".join(notes[:_ROWS_SHOWN]) + more))
    if problems:
        problems[0] = Problem(image, label, problems[0].kind, problems[0].detail + reason)
        return problems
    return [Problem(image, label, "rejected by ultralytics", read.message or "no reason given")]


def _duplicates(read: ImageLabels) -> int:
    """How many duplicate rows ultralytics dropped from a kept image's label."""
    words = read.message.split()
    if "duplicate" in words and words[0].isdigit():
        return int(words[0])
    return 0


def check_one(read: ImageLabels, nc: int | None) -> tuple[list[Problem], str, np.ndarray | None]:
    """The problems of one image as ultralytics read it: (problems, label state, boxes or None
    when ultralytics leaves it out); `nc` None: read as a single_cls training reads it."""
    if not read.kept:
        return _why_left_out(read, nc), read.label_state, None
    image = Path(read.image)
    problems = []
    if read.restored:
        problems.append(Problem(image, image, "truncated JPEG", "no end-of-image marker"))
    dup = _duplicates(read)
    if dup:
        problems.append(Problem(image, Path(read.label), "duplicate rows",
                                f"{dup} duplicate row{'s' * (dup > 1)}"))
    return problems, read.label_state, read.boxes


def check_files(files: Sequence[Path], nc: int, *, kpt_shape: Sequence[int] | None = None,
                workers: int | None = None, single_cls: bool = False
                ) -> list[tuple[list[Problem], str, np.ndarray | None, int]]:
    """`check_one` over many files (read by ultralytics' code, in worker processes when there
    are thousands; with keypoints where `kpt_shape`; as a single_cls=True training reads them
    where `single_cls`), each with its count of polygon rows read as boxes."""
    reads = read_images(files, nc, kpt_shape=kpt_shape, workers=workers, single_cls=single_cls)
    return [(*check_one(r, None if single_cls else nc), r.polygons) for r in reads]


def check_dataset(dataset: Dataset, *, workers: int | None = None,
                  single_cls: bool = False) -> CheckReport:
    """Check every image of train and val (an image listed in both is checked once), as a
    training reads them (`single_cls`: one with single_cls=True); of class folders, every
    image by ultralytics' classification check (`verify_image`)."""
    files = list(dict.fromkeys((*dataset.train, *dataset.val)))
    report = CheckReport(dataset.yaml_path, train=len(dataset.train), val=len(dataset.val),
                         checked=len(files))
    if dataset.class_folders:
        from automl.data.class_folders import verify_images

        report.classes = dataset.nc
        for image, reason in zip(files, verify_images(files), strict=True):
            if reason:  # in automl's words where it can say, with ultralytics' own reason
                kind, detail = _image_problem(image) or ("rejected by ultralytics", reason)
                said = "" if image.suffix.lower() in HEIF or detail == reason else reason
                report.problems.append(Problem(image, image, kind, detail + (
                    f" (ultralytics: {said})" if said else "")))
        return report
    for image, (problems, state, boxes, polygons) in zip(
            files, check_files(files, dataset.nc, kpt_shape=dataset.kpt_shape, workers=workers,
                               single_cls=single_cls),
            strict=True):
        report.problems += problems
        if boxes is None:
            continue
        report.boxes[image] = boxes
        report.n_boxes += len(boxes)
        if polygons:
            report.polygons.append(image)
        if state == "missing":
            report.background.append(image)
        elif state == "empty":
            report.empty.append(image)
    return report


def usable(dataset: Dataset, *, workers: int | None = None, single_cls: bool = False,
           report: CheckReport | None = None) -> tuple[Dataset, CheckReport]:
    """The dataset as ultralytics trains on it (the images it leaves out, left out; every
    image's boxes as it reads them; `single_cls`: as a single_cls=True training reads them)
    and the check report.

    `report`: this dataset's check, when it was already made (automl fit's check step).

    Raises:
        DataError: train or val has no usable image left.
    """
    if report is None:
        report = check_dataset(dataset, workers=workers, single_cls=single_cls)
    bad = report.bad
    train = tuple(f for f in dataset.train if f not in bad)
    val = tuple(f for f in dataset.val if f not in bad)
    for key, kept, listed in (("train", train, dataset.train), ("val", val, dataset.val)):
        if not kept:
            raise DataError(
                f"{dataset.yaml_path}: no usable image left in {key} (all {len(listed)} have "
                f"errors, mostly {main_cause(report)[0]}); run automl check --data "
                f"{dataset.yaml_path} for the list and fix them")
    return replace(dataset, train=train, val=val,
                   boxes=None if dataset.class_folders else report.boxes,
                   listed_train=dataset.train, listed_val=dataset.val), report


def main_cause(report: CheckReport) -> tuple[str, int]:
    """The kind of error that leaves the most images out, and how many it leaves out."""
    first = {}
    for p in report.problems:
        if p.severity == "error":
            first.setdefault(p.image, p.kind)
    return Counter(first.values()).most_common(1)[0] if first else ("", 0)


def refuse_heavy_loss(report: CheckReport, *, flag: str = "--drop-bad-images") -> None:
    """Stop a search whose data would lose more than MAX_DROPPED_SHARE of its images.

    Raises:
        DataError: one line with the count, the main cause, its fix and the flag to go on.
    """
    bad, total = len(report.bad), report.checked
    if not total or bad / total <= MAX_DROPPED_SHARE:
        return
    kind, count = main_cause(report)
    _, meaning, fix = KINDS[kind]
    raise DataError(
        f"{report.yaml_path}: ultralytics would leave out {bad} of {total} images "
        f"({bad / total:.0%}), {count} of them for {kind} ({meaning}); {fix}. `automl check "
        f"--data {report.yaml_path}` lists them; {flag} searches on the other {total - bad}")
