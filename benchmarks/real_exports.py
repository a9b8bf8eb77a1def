"""Real exports from labelling tools, as downloaded: what ultralytics trains on, what automl reads,
what `automl check` says, and automl's default search against the plain training, in one run.

The exports are public GitHub datasets in YOLO format (brought with the `fetch` tool; kept out of
the repository, under --root): Roboflow (two), CVAT "YOLO 1.1", Label Studio, LabelImg and
labelme2yolo. For each one:

1. the export as downloaded: `automl check` on it (its own data.yaml, or the one a user writes
   where the tool writes none: CVAT's obj.data and Label Studio's classes.txt are not data.yaml
   files; the yaml is printed), and the images and boxes ultralytics' own detection trainer
   reads from it (its DetectionTrainer's data and `build_yolo_dataset`, as `yolo train` builds
   them) against those automl's `load_dataset` + check keep (`equal` says whether the image
   lists and every box agree);
2. a subset in the same layout (`--train` and `--val` images, evenly spaced; the Roboflow rice
   pest subset keeps every file with polygon rows; the CVAT subset takes labelled images and
   a fifth backgrounds, since 85% of its images are empty), on which, in the same run and on the
   same cores, `yolo train` with the flags below (the plain training) and `automl search --space
   lr_momentum` with its defaults (TPE, ASHA, auto fraction and concurrency, v5 fitness) run;
   the search's trial #0 is that same plain training (bit-identical: tests/test_baseline.py).

    python benchmarks/real_exports.py --root /work/datasets --train 150 --val 50 \\
        --epochs 20 --imgsz 128 --trials 8 --out /tmp/real_exports

`--only-read` skips the trainings (the read parity alone, a few minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml


@dataclass(frozen=True)
class Export:
    tool: str
    source: str  # GitHub repository @ commit, folder
    folder: str  # under --root


EXPORTS = {
    "roboflow-conescubes": Export(
        "Roboflow (YOLOv8)", "7130-7th/cone_cube_detect_test_1.0@b4b47c8", "roboflow-conescubes"),
    "roboflow-ricepest": Export(
        "Roboflow (YOLOv8), re-split by its owner",
        "AhmadSubadri/dataset-pest-rice@20a08ef", "roboflow-ricepest"),
    "cvat-mealtray": Export("CVAT YOLO 1.1", "E-delweiss/mealtray_dataset@c287ad1 dataset/",
                            "cvat-mealtray"),
    "labelstudio-combatbots": Export(
        "Label Studio YOLO", "menmob/combat-robotics-yolo-dataset@883068b dataset/",
        "labelstudio-combatbots"),
    "labelimg-roaddamage": Export("LabelImg (inferred)", "aristocaesar/road-damage-dataset@9e6064f",
                                  "labelimg-roaddamage"),
    "labelme2yolo-traffic": Export("labelme2yolo", "jfonso/VC_P4@f6485d6 YOLODataset/",
                                   "labelme2yolo-traffic"),
}
SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)


def _spaced(items: list, n: int, offset: int = 0) -> list:
    """n items evenly spaced over the list (all when it holds fewer); another offset, others."""
    if len(items) <= n:
        return list(items)
    return [items[(int(i * len(items) / n) + offset) % len(items)] for i in range(n)]


def _copy(image: Path, label: Path | None, image_dest: Path, label_dest: Path) -> None:
    image_dest.parent.mkdir(parents=True, exist_ok=True)
    label_dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(image, image_dest)
    if label is not None and label.exists():
        shutil.copy2(label, label_dest)


def _has_polygon(label: Path) -> bool:
    return label.exists() and any(len(r.split()) > 6 for r in label.read_text().splitlines())


def full_yaml(name: str, root: Path, work: Path) -> tuple[Path, Path, str]:
    """The data.yaml of the export as downloaded (or as a user writes it where the tool writes
    none), the folder to run from, and a note."""
    src = root / EXPORTS[name].folder
    if name.startswith("roboflow"):
        return src / "data.yaml", src, "its own data.yaml"
    if name == "cvat-mealtray":  # train.txt names data/obj_train_data/...: run from above data/
        base = work / "full-cvat"
        base.mkdir(parents=True, exist_ok=True)
        link = base / "data"
        if not link.exists():
            link.symlink_to(src)
        names = (src / "obj.names").read_text().split("\n")
        text = yaml.safe_dump({"train": str(link / "train.txt"), "val": str(link / "train.txt"),
                               "names": [n for n in names if n]})
        (base / "data.yaml").write_text(text)
        return base / "data.yaml", base, "a user's data.yaml (CVAT writes obj.data): " + text
    if name == "labelstudio-combatbots":
        names = [n for n in (src / "classes.txt").read_text().splitlines() if n]
        text = yaml.safe_dump({"path": str(src), "train": "images", "val": "images",
                               "names": names})
        path = work / "full-labelstudio.yaml"
        path.write_text(text)
        return path, work, "a user's data.yaml (Label Studio writes classes.txt): " + text
    if name == "labelimg-roaddamage":
        return src / "data.yaml", src, "its own data.yaml (hand-written: ns:, /path/)"
    if name == "labelme2yolo-traffic":
        return src / "dataset.yaml", src, "its own dataset.yaml (a Windows path:)"
    raise KeyError(name)


def subset(name: str, root: Path, dest: Path, n_train: int, n_val: int, offset: int = 0
           ) -> tuple[Path, Path]:
    """A subset of the export in its own layout under dest: (data.yaml, folder to run from).

    `offset` shifts the evenly spaced picks: another offset, (mostly) other images.
    """
    src = root / EXPORTS[name].folder
    if dest.exists():
        shutil.rmtree(dest)
    if name == "roboflow-conescubes":
        for split, n in (("train", n_train), ("valid", n_val)):
            for im in _spaced(_images(src / split / "images"), n, offset):
                _copy(im, src / split / "labels" / f"{im.stem}.txt", dest / split / "images" /
                      im.name, dest / split / "labels" / f"{im.stem}.txt")
        shutil.copy2(src / "data.yaml", dest / "data.yaml")
        return dest / "data.yaml", dest
    if name == "roboflow-ricepest":
        for split, n in (("train", n_train), ("valid", n_val)):
            images = _images(src / "dataset_split" / split / "images")
            labels = {im: src / "dataset_split" / split / "labels" / f"{im.stem}.txt"
                      for im in images}
            polygons = [im for im in images if _has_polygon(labels[im])]
            rest = [im for im in images if im not in polygons]
            for im in polygons + _spaced(rest, n - len(polygons), offset):
                _copy(im, labels[im], dest / "dataset_split" / split / "images" / im.name,
                      dest / "dataset_split" / split / "labels" / f"{im.stem}.txt")
        shutil.copy2(src / "data.yaml", dest / "data.yaml")
        return dest / "data.yaml", dest
    if name == "cvat-mealtray":
        data = dest / "data"
        images = _images(src / "obj_train_data")
        labelled = [im for im in images if im.with_suffix(".txt").stat().st_size > 0]
        empty = [im for im in images if im not in labelled]
        picked = (_spaced(labelled, (n_train + n_val) * 4 // 5, offset)
                  + _spaced(empty, (n_train + n_val) // 5, offset))
        picked.sort()
        val = set(_spaced(picked, n_val))
        lines = {"train.txt": [], "valid.txt": []}
        for im in picked:
            _copy(im, im.with_suffix(".txt"), data / "obj_train_data" / im.name,
                  data / "obj_train_data" / f"{im.stem}.txt")
            lines["valid.txt" if im in val else "train.txt"].append(
                f"data/obj_train_data/{im.name}")
        for f, rows in lines.items():
            (data / f).write_text("".join(f"{r}\n" for r in rows))
        for f in ("obj.names", "obj.data"):
            shutil.copy2(src / f, data / f)
        names = [n for n in (src / "obj.names").read_text().splitlines() if n]
        (data / "data.yaml").write_text(yaml.safe_dump({"train": "train.txt", "val": "valid.txt",
                                                        "names": names}))
        return data / "data.yaml", dest  # CVAT's lines are relative to the folder above data/
    if name == "labelstudio-combatbots":
        images = _images(src / "images")
        picked = _spaced(images, n_train + n_val, offset)
        val = set(_spaced(picked, n_val))
        lines = {"train.txt": [], "val.txt": []}
        for im in picked:
            _copy(im, src / "labels" / f"{im.stem}.txt", dest / "images" / im.name,
                  dest / "labels" / f"{im.stem}.txt")
            lines["val.txt" if im in val else "train.txt"].append(f"./images/{im.name}")
        for f, rows in lines.items():
            (dest / f).write_text("".join(f"{r}\n" for r in rows))
        for f in ("classes.txt", "notes.json"):
            shutil.copy2(src / f, dest / f)
        names = [n for n in (src / "classes.txt").read_text().splitlines() if n]
        (dest / "data.yaml").write_text(yaml.safe_dump({"train": "train.txt", "val": "val.txt",
                                                        "names": names}))
        return dest / "data.yaml", dest
    if name == "labelimg-roaddamage":
        for split, n in (("train", n_train), ("valid", n_val)):
            for im in _spaced(_images(src / split), n, offset):
                _copy(im, im.with_suffix(".txt"), dest / split / im.name,
                      dest / split / f"{im.stem}.txt")
            shutil.copy2(src / split / "classes.txt", dest / split / "classes.txt")
        (dest / "data.yaml").write_text("train: train\nval: valid\nnc: 2\n"
                                        "names: [crack, potholed]\n")
        return dest / "data.yaml", dest
    if name == "labelme2yolo-traffic":
        for split, n in (("train", n_train), ("val", n_val)):
            for im in _spaced(_images(src / "images" / split), n, offset):
                _copy(im, src / "labels" / split / f"{im.stem}.txt",
                      dest / "images" / split / im.name, dest / "labels" / split / f"{im.stem}.txt")
        text = (src / "dataset.yaml").read_text()
        (dest / "dataset.yaml").write_text("\n".join(
            line for line in text.splitlines() if not line.startswith("path:")) + "\n")
        return dest / "dataset.yaml", dest
    raise KeyError(name)


def ultralytics_reads(data_yaml: Path) -> dict[str, dict[str, np.ndarray]]:
    """split -> image -> boxes, from ultralytics' own training datasets of the data.yaml."""
    from ultralytics.data import build_yolo_dataset
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils import LOGGER

    LOGGER.setLevel(40)
    trainer = DetectionTrainer(overrides=dict(
        data=str(data_yaml), model="yolo11n.yaml", imgsz=64, device="cpu", plots=False,
        project=str(Path(os.getcwd()) / ".ultralytics-runs"), name="read", exist_ok=True,
        verbose=False))
    out = {}
    for split in ("train", "val"):
        ds = build_yolo_dataset(trainer.args, trainer.data[split], 4, trainer.data,
                                mode="train" if split == "train" else "val", stride=32)
        out[split] = {os.path.abspath(lb["im_file"]): np.hstack([lb["cls"], lb["bboxes"]])
                      for lb in ds.labels}
    return out


def read_parity(data_yaml: Path, cwd: Path) -> dict:
    """What ultralytics trains on against what automl reads, and automl check's verdict."""
    from automl.data.checks import main_cause, usable
    from automl.data.dataset import load_dataset
    from automl.errors import AutoMLError

    before = os.getcwd()
    os.chdir(cwd)
    try:
        try:
            t0 = time.perf_counter()
            dataset, report = usable(load_dataset(data_yaml))
            automl_s = time.perf_counter() - t0
        except AutoMLError as e:
            return {"automl": f"refused: {e}"}
        try:
            theirs = ultralytics_reads(data_yaml)
        except Exception as e:  # noqa: BLE001 - the benchmark reports what ultralytics says
            theirs = None
            refused = " ".join(str(e).split())[:300]
    finally:
        os.chdir(before)
    kinds = Counter(p.kind for p in report.problems)
    row = {"listed": report.checked, "automl_train": len(dataset.train),
           "automl_val": len(dataset.val), "automl_boxes": report.n_boxes,
           "left_out": len(report.bad), "main_cause": main_cause(report)[0],
           "problems": dict(kinds), "polygon_files": len(report.polygons),
           "background": len(report.background) + len(report.empty),
           "headline": report.headline(), "automl_read_s": round(automl_s, 2)}
    if theirs is None:
        row["ultralytics"] = f"refused: {refused}"
        return row
    equal = True
    for split, files in (("train", dataset.train), ("val", dataset.val)):
        mine = [str(f) for f in files]
        equal &= mine == list(theirs[split])
        equal &= all(np.allclose(dataset.boxes[f], theirs[split][str(f)], atol=1e-6)
                     for f in files if str(f) in theirs[split])
    row.update(ultralytics_train=len(theirs["train"]), ultralytics_val=len(theirs["val"]),
               ultralytics_boxes=sum(len(b) for b in {**theirs["train"], **theirs["val"]}.values()),
               equal=bool(equal))
    return row


PLAIN = """\
import os, sys, json
os.environ["YOLO_OFFLINE"] = "1"
from ultralytics import YOLO
m = YOLO("yolo11n.yaml")
best = {}
def on_fit_epoch_end(tr):
    if tr.epoch + 1 > tr.epochs:  # the final re-validation of best.pt, not an epoch
        return
    mets = tr.metrics
    f = 0.1 * mets["metrics/mAP50(B)"] + 0.9 * mets["metrics/mAP50-95(B)"]
    if f > best.get("fitness", -1):
        best.update(fitness=f, map50=mets["metrics/mAP50(B)"], map50_95=mets["metrics/mAP50-95(B)"],
                    epoch=tr.epoch + 1)
m.add_callback("on_fit_epoch_end", on_fit_epoch_end)
m.train(data=sys.argv[1], epochs=int(sys.argv[2]), imgsz=int(sys.argv[3]), batch=int(sys.argv[4]),
        plots=False, project=sys.argv[5], name="plain", exist_ok=True, verbose=False)
print("RESULT " + json.dumps(best))
"""


def plain(data_yaml: Path, cwd: Path, args, out: Path) -> dict:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PLAIN, str(data_yaml), str(args.epochs),
                           str(args.imgsz), str(args.batch), str(out / "plain")], cwd=cwd,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        return {"error": done.stderr[-500:], "seconds": seconds}
    return {**json.loads(line[7:]), "seconds": round(seconds, 1)}


def search(data_yaml: Path, cwd: Path, args, out: Path, name: str) -> dict:
    import optuna

    from automl.study import BASELINE_ATTR, best_trial

    storage = f"sqlite:///{out / 'studies.db'}"
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "automl", "search", "--space", "lr_momentum",
                           "--data", str(data_yaml), "--epochs", str(args.epochs), "--imgsz",
                           str(args.imgsz), "--batch", str(args.batch), "--trials",
                           str(args.trials), "--study", name, "--storage", storage],
                          cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    (out / f"{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-500:], "seconds": round(seconds, 1)}
    study = optuna.load_study(study_name=name, storage=storage)
    first = next(t for t in study.trials if t.user_attrs.get(BASELINE_ATTR))
    best = best_trial(study)
    header = next((x for x in done.stdout.splitlines() if "trials train on" in x), "")
    return {"seconds": round(seconds, 1), "header": header,
            "trial0": {k: first.user_attrs.get(k) for k in ("fitness", "map50", "map50_95")},
            "best": {"number": best.number, "params": best.params,
                     **{k: best.user_attrs.get(k) for k in ("fitness", "map50", "map50_95")}},
            "states": dict(Counter(t.state.name for t in study.trials))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=Path("/work/datasets"))
    p.add_argument("--only", nargs="*", default=list(EXPORTS), choices=list(EXPORTS))
    p.add_argument("--train", type=int, default=150)
    p.add_argument("--val", type=int, default=50)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--imgsz", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--search", nargs="*", default=None,
                   help="exports to train on (default: all of --only)")
    p.add_argument("--only-read", action="store_true", help="read parity only, no training")
    p.add_argument("--out", type=Path, default=Path("/tmp/real_exports"))
    args = p.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.only:
        if not (args.root / EXPORTS[name].folder).is_dir():
            print(f"{name}: not under {args.root} (fetch it first); skipped", flush=True)
            continue
        work = args.out / name
        work.mkdir(parents=True, exist_ok=True)
        full, cwd, note = full_yaml(name, args.root, work)
        row = {"tool": EXPORTS[name].tool, "source": EXPORTS[name].source, "note": note,
               "full": read_parity(full, cwd)}
        print(f"{name} as exported: {json.dumps(row['full'])}", flush=True)
        sub_yaml, sub_cwd = subset(name, args.root, work / "subset", args.train, args.val)
        row["subset"] = read_parity(sub_yaml, sub_cwd)
        print(f"{name} subset: {json.dumps(row['subset'])}", flush=True)
        if not args.only_read and (args.search is None or name in args.search):
            row["plain"] = plain(sub_yaml, sub_cwd, args, work)
            print(f"{name} plain: {json.dumps(row['plain'])}", flush=True)
            row["search"] = search(sub_yaml, sub_cwd, args, work, name)
            print(f"{name} search: {json.dumps(row['search'])}", flush=True)
        results[name] = row
        (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(table(results, args))


def table(results: dict, args) -> str:
    lines = ["| export | tool | as exported: listed / ultralytics trains on / automl reads "
             "(equal) | check | subset: ultralytics / automl (equal) | plain mAP50-95 | "
             "trial #0 | search best (#) | search wall |", "|" + " --- |" * 9]
    for name, r in results.items():
        f, s = r["full"], r["subset"]

        def reads(x):
            if "ultralytics_train" not in x:
                return x.get("ultralytics") or x.get("automl", "?")
            return (f"{x['listed']} / {x['ultralytics_train']}+{x['ultralytics_val']} / "
                    f"{x['automl_train']}+{x['automl_val']} ({'yes' if x['equal'] else 'NO'})")

        check = ("refused" if "headline" not in f else
                 f"{f['left_out']} left out ({f['main_cause'] or '-'}), {f['polygon_files']} "
                 f"polygon files, {f['background']} background")
        pl, se = r.get("plain", {}), r.get("search", {})
        lines.append(
            f"| {name} | {r['tool']} | {reads(f)} | {check} | {reads(s)} | "
            f"{pl.get('map50_95', float('nan')):.3f} | "
            f"{(se.get('trial0') or {}).get('map50_95') or float('nan'):.3f} | "
            f"{(se.get('best') or {}).get('map50_95') or float('nan'):.3f} "
            f"(#{(se.get('best') or {}).get('number', '-')}) | {se.get('seconds', '-')} s |")
    lines.append(f"\nsubsets: {args.train} train + {args.val} val images, {args.epochs} epochs at "
                 f"{args.imgsz} px, batch {args.batch}, yolo11n.yaml from scratch; search: "
                 f"{args.trials} trials, automl's defaults")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
