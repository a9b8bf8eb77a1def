"""Time `automl split` (5 stratified folds) and `automl check` on 100,000 images (~5 boxes each).

Generates the labels once under --root (default /tmp/automl-bench-split): 100,000 YOLO label
files (Poisson(5) boxes, classes 3:1, varied sizes and aspects) and a data.yaml whose train/val
lists name images under images/. For the check and the split (which since issue 27 read every
image and label with ultralytics' own verify_image_label), every image is a hard link to one of
8 small real PNG/JPEG files (different sizes), so both really open and verify 100,000 image files
(PIL header + verify, no pixel decode) and parse 100,000 label files; the hard links make
generation take seconds instead of minutes, and the page cache is warm (a cold disk adds its own
read time).

    python benchmarks/split_and_check.py [--n 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _ext(i: int) -> str:
    return "png" if i % 8 < 4 else "jpg"


def generate(root: Path, n: int, seed: int = 0) -> None:
    from PIL import Image

    marker = root / f".done-{n}"
    if marker.exists():
        return
    rng = np.random.default_rng(seed)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate([(64, 48), (48, 64), (80, 80), (96, 54)] * 2):
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"source_{i}.{_ext(i)}")
    for i in range(n):
        k = int(rng.poisson(5))
        cls = rng.choice(2, size=k, p=[0.75, 0.25])
        wh = np.clip(np.exp(rng.normal(-2.2, 0.8, (k, 2))), 0.005, 0.9)
        xy = wh / 2 + rng.random((k, 2)) * (1 - wh)
        rows = "".join(f"{c} {x:.6f} {y:.6f} {bw:.6f} {bh:.6f}\n"
                       for c, (x, y), (bw, bh) in zip(cls, xy, wh, strict=True))
        (root / "labels" / f"{i:06d}.txt").write_text(rows)
    for key, idx in (("train", range(0, int(n * 0.8))), ("val", range(int(n * 0.8), n))):
        (root / f"{key}.txt").write_text(
            "".join(f"{root / 'images' / f'{i:06d}.{_ext(i)}'}\n" for i in idx))
    (root / "data.yaml").write_text(
        f"train: {root / 'train.txt'}\nval: {root / 'val.txt'}\nnames: [cow, pig]\n")
    marker.write_text("ok\n")


def link_images(root: Path, n: int) -> None:
    for i in range(n):
        dst = root / "images" / f"{i:06d}.{_ext(i)}"
        if not dst.exists():
            os.link(root / f"source_{i % 8}.{_ext(i % 8)}", dst)


def timed(cmd: list[str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - start, run.returncode, run.stdout + run.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", default="/tmp/automl-bench-split")
    args = parser.parse_args()
    root = Path(args.root)
    start = time.perf_counter()
    generate(root, args.n)
    print(f"labels ready in {time.perf_counter() - start:.1f}s under {root}", flush=True)
    automl = [sys.executable, "-m", "automl"]
    rows = []
    # since issue 27 the split reads every image and label as ultralytics' trainer does (its own
    # verify_image_label: the image header is opened), so it needs the images too
    link_images(root, args.n)
    for r in range(args.repeats):
        s, rc, out = timed([*automl, "split", "--data", str(root / "data.yaml"), "--folds", "5",
                            "--seed", str(r), "--out", str(root / "split")])
        assert rc == 0, out
        rows.append(("split, 5 folds (images + labels)", r, s))
        if r == 0:
            print(out.split("\n/")[0], flush=True)
    for r in range(args.repeats):
        s, rc, out = timed([*automl, "check", "--data", str(root / "data.yaml")])
        assert rc == 0, out  # the generated set is clean
        rows.append(("check (images + labels)", r, s))
    print(out.splitlines()[0])
    print(f"\n{'step':<32}{'run':>4}{'wall s':>9}   (n = {args.n:,}, {os.cpu_count()} cores)")
    for name, r, s in rows:
        print(f"{name:<32}{r:>4}{s:>9.1f}")


if __name__ == "__main__":
    main()
