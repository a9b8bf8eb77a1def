"""`automl deploy`: export trained weights for small devices and measure what each artifact costs
and keeps.

ultralytics' own exporter writes the artifacts beside the weights: ONNX (fp32, and int8 by ONNX
Runtime static quantisation) and OpenVINO (fp32, and int8 by NNCF), the int8 ones calibrated on
the data's training images. Each artifact (and the .pt itself) is then measured on this
machine: file size, CPU latency at batch 1 (median and p90 over `runs` timed runs after a
warm-up, on a stated number of threads, the model alone: no pre- or post-processing), and
accuracy on the val split through ultralytics' validator loading the exported file, all at
batch 1: the task's own metrics and the drop against the .pt (detect and obb: mAP50, mAP75,
mAP50-95; segment and pose: those of the boxes and of the masks or keypoints; classify: top-1,
top-5). One table is printed,
`deploy.yaml` written beside the weights, and when the weights are a promotion's
(runs/promote/STUDY-trialN) the table is added to that promotion's record on the study.

Nothing is installed or downloaded: the exporters' packages come from automl's `deploy` extra,
and ultralytics' auto-install is switched off.
"""

from __future__ import annotations

import importlib.util
import math
import os
import platform
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from automl.errors import ConfigError
from automl.execution.footprint import latency, size_mb

EXTRA = 'pip install -e ".[deploy]"'
FORMATS = ("onnx", "openvino")
# the packages each export needs (import names), beyond automl's own
NEEDS = {("onnx", False): ("onnx", "onnxslim"), ("onnx", True): ("onnx", "onnxslim", "onnxruntime"),
         ("openvino", False): ("openvino",), ("openvino", True): ("openvino", "nncf")}
RUNTIME = {"onnx": "onnxruntime", "openvino": "openvino"}  # what runs the artifact here


@dataclass
class Artifact:
    """One deployable file and what it measured."""

    name: str  # e.g. "onnx int8"
    path: str
    size_mb: float
    latency_ms: float  # median at batch 1
    latency_p90_ms: float
    metrics: dict[str, float]  # the task's (SHOWN): map50, map75, map50_95, mask_map50, ...
    drop: dict[str, float] = field(default_factory=dict)  # the .pt's minus this one's
    # precision, recall, f1 of the boxes kept at thresholds.yaml's thresholds (when there is one)
    at_thresholds: dict[str, float] = field(default_factory=dict)
    export_seconds: float | None = None


@dataclass
class DeployResult:
    weights: Path
    yaml: Path
    artifacts: list[Artifact]
    threads: int
    runs: int
    study: str | None = None  # the promotion's study the table was recorded on


def parse_formats(formats: str | Sequence[str]) -> list[str]:
    """`--formats onnx,openvino` (or a list) -> known format names, in order, once each.

    Raises:
        ConfigError: an unknown format, naming the known ones.
    """
    items = [formats] if isinstance(formats, str) else list(formats)
    names = [f.strip().lower() for item in items for f in str(item).split(",") if f.strip()]
    for name in names:
        if name not in FORMATS:
            raise ConfigError(f"--formats {name}: unknown format; choose from {', '.join(FORMATS)}")
    if not names:
        raise ConfigError(f"--formats: name at least one of {', '.join(FORMATS)}")
    return list(dict.fromkeys(names))


def check_installed(formats: Sequence[str], int8: bool) -> None:
    """Every package the exports and their runtimes need is importable (nothing installs later).

    Raises:
        ConfigError: naming the missing packages and the extra that brings them.
    """
    needed = []
    for fmt in formats:
        needed += [*NEEDS[(fmt, int8)], RUNTIME[fmt]]
    missing = [m for m in dict.fromkeys(needed) if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"--formats {','.join(formats)}{' --int8' if int8 else ''}: needs "
                          f"{', '.join(missing)}, not installed; install automl's deploy extra: "
                          f"{EXTRA}")


def _no_autoinstall() -> None:
    """ultralytics' exporter pip-installs what it misses: never here (offline, reproducible)."""
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.utils import checks

    checks.AUTOINSTALL = False  # read at import: set it on the loaded module too


def _maps(prefix: str = "", word: str = "") -> dict[str, str]:
    """mAP50, mAP75 and mAP50-95 of the boxes (or, with a prefix, of the masks or keypoints)."""
    return {f"{prefix}{k}": f"{word}{v}" for k, v in
            (("map50", "mAP50"), ("map75", "mAP75"), ("map50_95", "mAP50-95"))}


# What deploy measures of each task's model (the first: the drop it shows), and the heads.
SHOWN = {"detect": {"map50_95": "mAP50-95", **_maps()},
         "obb": {"map50_95": "mAP50-95", **_maps()},
         "segment": {"mask_map50_95": "mask mAP50-95", **_maps(), **_maps("mask_", "mask ")},
         "pose": {"pose_map50_95": "pose mAP50-95", **_maps(), **_maps("pose_", "pose ")},
         "classify": {"top1": "top-1", "top5": "top-5"}}


def accuracy(path: Path, data: Path, imgsz: int, task: str = "detect") -> dict[str, float]:
    """The task's metrics (SHOWN) on the val split: ultralytics' validator loading the file
    (an export too: the task is told, as `YOLO(path, task=...)`), batch 1."""
    from ultralytics import YOLO

    from automl.epochs import task_metrics
    from automl.ultralytics_env import quiet_ultralytics

    with quiet_ultralytics():
        results = YOLO(str(path), task=task).val(
            data=str(data), imgsz=imgsz, batch=1, device="cpu", split="val", plots=False,
            verbose=False, save_json=False, project=str(path.parent / ".deploy-val"), exist_ok=True)
    m = task_metrics(results)
    return {k: m[k] for k in SHOWN[task]}


def export_model(model_path: Path, fmt: str, *, int8: bool, data: Path, imgsz: int) -> Path:
    """ultralytics' exporter, fp32 or int8 calibrated on the training images; the artifact's path."""
    import logging

    from ultralytics import YOLO

    from automl.ultralytics_env import quiet_ultralytics

    args = {"format": fmt, "imgsz": imgsz, "device": "cpu", "batch": 1, "dynamic": False}
    if fmt == "onnx":
        args["simplify"] = True
    if int8:
        args |= {"quantize": 8, "data": str(data), "split": "train"}
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ONNX Runtime's quantiser warns through the root logger
    try:
        with quiet_ultralytics(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notes while tracing
            out = YOLO(str(model_path)).export(**args)
    finally:
        root.setLevel(level)
    return Path(out).resolve()


def _promotion_of(weights: Path, study: str | None, storage: str | None):
    """(study, trial number) when `weights` are the best.pt of a recorded promotion, else None."""
    from automl import study as studies

    name, number = study, None
    match = re.fullmatch(r"(.+)-trial(\d+)", weights.resolve().parent.parent.name)
    if match:
        name = name or match.group(1)
        number = int(match.group(2))
    if name is None:
        return None
    url = storage or studies.default_storage(name)
    path = studies.storage_file(url)
    if path is not None and not path.exists():
        return None
    try:
        the_study = studies.open_study(name, url, create=False)
    except Exception:  # not a study of ours: nothing to record on
        return None
    for trial, record in studies.promotions(the_study).items():
        if record.get("weights") == str(weights.resolve()) and (number is None or trial == number):
            return the_study, trial
    return None


def deploy(
    *,
    weights: str | Path,
    formats: str | Sequence[str] = "onnx",
    int8: bool = False,
    data: str | Path | None = None,
    imgsz: int | None = None,
    threads: int | None = None,
    runs: int = 50,
    warmup: int = 10,
    study: str | None = None,
    storage: str | None = None,
    thresholds: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> DeployResult:
    """Export `weights` to each format (fp32, and int8 with `int8`) and measure every artifact.

    Args:
        weights: a trained .pt of any task (e.g. a promotion's best.pt).
        formats: onnx and/or openvino (a list or "onnx,openvino").
        int8: also export int8 artifacts, calibrated on the data's training images.
        data: data.yaml (default: the one the weights were trained on); its val split measures
            accuracy, its train split calibrates int8.
        imgsz: export and measure size (default: the weights' training imgsz).
        threads: CPU threads for the latency runs (default: all cores).
        runs, warmup: timed and untimed batch-1 runs per artifact.
        study, storage: the study whose promotion these weights are (default: from the run
            folder's name STUDY-trialN); the table is added to that promotion's record.
        thresholds: a thresholds.yaml from `automl thresholds` (default: the one beside the
            weights, when there is one); each artifact's precision, recall and F1 at its
            thresholds (per class when it holds per_class) are measured too.
        log: where lines go (default: stdout).

    Raises:
        ConfigError: a bad flag, weights that are not a YOLO model, a missing extra, data
            whose classes are not the model's, --thresholds for a model without NMS
            thresholds; all before anything is written.
    """
    from automl.options import check
    from automl.weights import detection_weights

    check("deploy", locals())
    if warmup < 0:
        raise ConfigError(f"warmup {warmup}: must be at least 0")
    say = log or (lambda line: print(line, flush=True))
    names = parse_formats(formats)
    check_installed(names, int8)
    weights = Path(weights)
    _no_autoinstall()
    with detection_weights(weights, "deploy exports", tasks=tuple(SHOWN)) as (model, checked):
        return _deploy(model, checked, weights, names, data, imgsz, int8, threads, runs, warmup,
                       study, storage, say, thresholds)


def _deploy(model, checked: Path, weights: Path, names: list[str], data, imgsz, int8: bool,
            threads, runs: int, warmup: int, study, storage, say, thresholds=None) -> DeployResult:
    """deploy's work once the weights are checked: `checked` is the private copy of their bytes
    that ultralytics reads (measured, exported); the artifacts land beside `weights`."""
    from automl.console import text_table
    from automl.data.dataset import load_dataset
    from automl.machine import machine_cpus
    from automl.weights import check_classes

    train_args = dict(getattr(model, "ckpt", {}).get("train_args") or {})
    data_path = data or train_args.get("data")
    if not data_path:
        raise ConfigError(f"--weights {weights}: no training data recorded in it; pass --data "
                          "path/to/data.yaml")
    dataset = load_dataset(Path(data_path))
    check_classes(model, dataset, data_path, weights, "deploy with")
    task = model.task
    if task == "classify" and thresholds is not None:
        raise ConfigError(f"--thresholds {thresholds}: {weights} is a classification model, "
                          "which has no thresholds; leave --thresholds out")
    if task != "detect" and thresholds is not None:
        raise ConfigError(f"--thresholds {thresholds}: {weights} is a '{task}' model, and "
                          "thresholds are tuned for detection models only; leave --thresholds out")
    applied = _thresholds_of(weights, thresholds, model.names) if task == "detect" else None
    size = int(imgsz or train_args.get("imgsz") or 640)
    threads = threads or machine_cpus()
    promotion = _promotion_of(weights, study, storage)
    load = os.getloadavg()[0]
    if load > 0.5:
        say(f"note: the machine is busy (load {load:.1f}); latencies are only comparable when "
            "measured on a quiet one, and threads beyond the idle cores slow torch down a lot")
    say(f"deploying {weights} ({size} px) with data {data_path}: formats {', '.join(names)}"
        f"{' fp32 + int8 (calibrated on the train images)' if int8 else ' fp32'}; latency: batch "
        f"1, {threads} CPU threads, median/p90 of {runs} runs after {warmup} warm-up runs")

    if applied is not None:
        say(f"precision, recall and F1 at {applied.describe()}")
    artifacts = [_measure("pytorch", checked, None, data_path, size, threads, runs, warmup,
                          applied, task)]
    artifacts[0].path = str(weights.resolve())
    say(_line(artifacts[0], task))
    # int8 first: ultralytics' ONNX int8 export removes the fp32 .onnx it quantised from
    for fmt in names:
        for quantised in ((True, False) if int8 else (False,)):
            start = time.perf_counter()
            path = _beside(export_model(checked, fmt, int8=quantised, data=Path(data_path),
                                        imgsz=size), weights)
            spent = time.perf_counter() - start
            artifact = _measure(f"{fmt} {'int8' if quantised else 'fp32'}", path, spent,
                                data_path, size, threads, runs, warmup, applied, task)
            artifact.drop = {k: artifacts[0].metrics[k] - v for k, v in artifact.metrics.items()}
            artifacts.append(artifact)
            say(_line(artifact, task))
    at = ["P", "R", "F1"] if applied is not None else []
    shown = SHOWN[task]
    first = next(iter(shown))
    order = [*list(shown)[1:], first]  # e.g. mAP50, mAP75, mAP50-95, then the drop
    say(text_table(["artifact", "size MB", "latency ms", "p90 ms", *(shown[k] for k in order),
                    f"drop {shown[first]}", *at],
                   [[a.name, f"{a.size_mb:.2f}", f"{a.latency_ms:.1f}", f"{a.latency_p90_ms:.1f}",
                     *(f"{a.metrics[k]:.4f}" for k in order),
                     f"{a.drop[first]:+.4f}" if a.drop else "-",
                     *(f"{a.at_thresholds[k]:.4f}" for k in ("precision", "recall", "f1") if at)]
                    for a in artifacts]))
    record = _record(weights, data_path, size, threads, runs, warmup, artifacts)
    if applied is not None:
        record["thresholds"] = {"file": str(applied.path.resolve()), "iou": applied.iou,
                                "per_class": applied.per_class}
    out = weights.parent / "deploy.yaml"
    import yaml

    out.write_text(yaml.safe_dump(record, sort_keys=False))
    say(f"wrote {out}")
    recorded = None
    if promotion is not None:
        from automl import study as studies

        the_study, number = promotion
        entry = dict(studies.promotions(the_study)[number])
        entry["deploy"] = record
        studies.record_promotion(the_study, entry)
        recorded = the_study.study_name
        say(f"recorded on the promotion of trial #{number} of study '{recorded}'")
    return DeployResult(weights=weights, yaml=out, artifacts=artifacts, threads=threads,
                        runs=runs, study=recorded)


def _beside(artifact: Path, weights: Path) -> Path:
    """Move an artifact exported beside the private copy to beside the user's weights."""
    import shutil

    dest = weights.resolve().parent / artifact.name
    if dest.is_dir():
        shutil.rmtree(dest)
    elif dest.exists():
        dest.unlink()
    return Path(shutil.move(artifact, dest))


def _thresholds_of(weights: Path, given: str | Path | None, names: dict[int, str]):
    """The AppliedThresholds of --thresholds, else of thresholds.yaml beside the weights, else None."""
    from automl.results.threshold_files import read_thresholds_file

    beside = weights.with_name("thresholds.yaml")
    if given is None and not beside.is_file():
        return None
    if given is not None and not Path(given).is_file():
        raise ConfigError(f"--thresholds {given}: file not found; automl thresholds --weights "
                          f"{weights} writes {beside}")
    return read_thresholds_file(given or beside, dict(names))


def _measure(name: str, path: Path, export_seconds: float | None, data, imgsz: int,
             threads: int, runs: int, warmup: int, applied=None, task: str = "detect"
             ) -> Artifact:
    from automl.results.threshold_files import operating_point_of

    median, p90 = latency(path, imgsz, threads=threads, runs=runs, warmup=warmup)
    at = ({} if applied is None else
          operating_point_of(path, applied, data=Path(data), imgsz=imgsz))
    return Artifact(name=name, path=str(path), size_mb=size_mb(path), latency_ms=median,
                    latency_p90_ms=p90, metrics=accuracy(path, Path(data), imgsz, task),
                    at_thresholds=at, export_seconds=export_seconds)


def _line(a: Artifact, task: str) -> str:
    made = f", exported in {a.export_seconds:.0f} s" if a.export_seconds is not None else ""
    key, head = next(iter(SHOWN[task].items()))
    return (f"{a.name}: {a.size_mb:.2f} MB, {a.latency_ms:.1f} ms (p90 {a.latency_p90_ms:.1f}), "
            f"{head} {a.metrics[key]:.4f}{made}  ({a.path})")


def _record(weights: Path, data, imgsz: int, threads: int, runs: int, warmup: int,
            artifacts: list[Artifact]) -> dict[str, Any]:
    import ultralytics

    versions = {"ultralytics": ultralytics.__version__}
    for module in ("onnx", "onnxruntime", "openvino", "nncf", "torch"):
        if importlib.util.find_spec(module) is not None:
            versions[module] = str(getattr(__import__(module), "__version__", "?"))
    return {
        "weights": str(weights.resolve()), "data": str(data), "imgsz": imgsz,
        "latency": {"batch": 1, "threads": threads, "runs": runs, "warmup": warmup,
                    "what": "the model's forward pass alone (no pre/post-processing)",
                    "cpu": _cpu_name(), "machine": platform.machine(),
                    "load_before": round(os.getloadavg()[0], 2)},
        "accuracy": "val split through ultralytics' validator, batch 1",
        "versions": versions,
        "artifacts": [{k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
                       for k, v in asdict(a).items()} for a in artifacts],
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
