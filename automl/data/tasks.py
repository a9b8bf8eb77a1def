"""Which ultralytics task a model trains, decided as ultralytics decides it, and whether the data
is data of that task: checked before anything trains, one line per mismatch.

A model YAML's task is its head's (ultralytics' `guess_model_task`); a .pt's is the one its
checkpoint carries. Each task reads its own kind of data: classify a folder of class folders,
the others a data.yaml, pose with `kpt_shape`, segment with polygons and obb with rotated boxes
(4 corner points) in every label file that has rows. automl searches every one of them.
"""

from __future__ import annotations

import os
from pathlib import Path

from automl.errors import ConfigError, DataError

# What each task trains, in words, and the model YAML to pass for it.
TASKS = {
    "detect": ("detection (boxes)", "yolo11n.yaml"),
    "segment": ("segmentation (masks)", "yolo11n-seg.yaml"),
    "pose": ("pose (keypoints)", "yolo11n-pose.yaml"),
    "obb": ("oriented boxes (obb)", "yolo11n-obb.yaml"),
    "classify": ("classification (one class per image)", "yolo11n-cls.yaml"),
}
# The tasks automl searches, promotes and validates end to end (thresholds: detect).
SUPPORTED = ("detect", "segment", "pose", "obb", "classify")
# Segment and obb labels: a row longer than class + box is a polygon (ultralytics' own rule).
_BOX_COLUMNS = 6


def model_task(model: str | Path) -> str:
    """The task ultralytics trains `model` for: 'detect', 'segment', 'pose', 'obb', 'classify', ...

    Call after automl.config.check_model (the file exists; a .pt's pickle is checked).
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.nn.tasks import guess_model_task, yaml_model_load

    from automl.ultralytics_env import quiet_ultralytics

    if Path(model).suffix == ".pt":
        from automl.weights import read_weights

        # the checkpoint of its checked bytes, as ultralytics would pick its model (its EMA
        # first); ultralytics' own loader would open the path again, unrestricted
        ckpt = read_weights(model, "--model").checkpoint
        net = ckpt.get("ema") or ckpt.get("model")
        task = getattr(net, "task", None)
        if task is None and net is not None:  # an older checkpoint: told by its head
            with quiet_ultralytics():
                task = guess_model_task(net)
    else:
        with quiet_ultralytics():
            task = guess_model_task(yaml_model_load(str(model)))
    return str(task or "unknown")  # a head ultralytics cannot name


def _words(task: str) -> str:
    return TASKS.get(task, (task,))[0]


def _example(task: str) -> str:
    return TASKS.get(task, ("", "a model of that task"))[1]


def check_data_fits(task: str, model: str | Path, data: str | Path) -> None:
    """Refuse data that is not data of the model's task, naming both and what to pass instead.

    Raises:
        DataError: a class-folder directory for a data.yaml task or the reverse, a data.yaml
            without kpt_shape for pose (or with it for another task), box-only label files for
            segment or obb (ultralytics refuses those too).
    """
    source = Path(data)
    trains = f"--model {model} trains {_words(task)}"
    if task == "classify":
        if not source.is_dir():
            raise DataError(f"--data {data}: not a folder of class folders (train/CLASS/*.jpg, "
                            f"val/CLASS/*.jpg), and {trains}; pass such a folder, or a detection "
                            f"model such as {_example('detect')} for a data.yaml")
        return
    if source.is_dir():
        raise DataError(f"--data {data}: a folder (class folders are a classification dataset), "
                        f"and {trains}, which reads a data.yaml; pass a data.yaml, or a "
                        f"classification model such as {_example('classify')}")
    raw = _raw(source)
    if raw is None:  # missing or unreadable: the data check says what is wrong
        return
    keypoints = raw.get("kpt_shape")
    if task == "pose" and not _valid_kpt_shape(keypoints):
        raise DataError(f"--data {data}: no valid kpt_shape (e.g. kpt_shape: [17, 3]), so not a "
                        f"pose dataset, and {trains}; add kpt_shape and keypoints to the labels, "
                        f"or pass a detection model such as {_example('detect')}")
    if task != "pose" and keypoints is not None:
        raise DataError(f"--data {data}: has kpt_shape (a pose dataset), and {trains}; pass a "
                        f"pose model such as {_example('pose')}, or data of that task")
    if task in ("segment", "obb"):
        _refuse_box_only(task, model, data)


def _raw(source: Path) -> dict | None:
    import yaml

    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8-sig"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return raw if isinstance(raw, dict) else None


def _valid_kpt_shape(value) -> bool:
    """ultralytics' own test: [keypoints > 0, dims 2 (x, y) or 3 (x, y, visible)]."""
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            and value[0] > 0 and value[1] in (2, 3))


def box_only_labels(labels: list[str]) -> tuple[list[str], int]:
    """Label files with rows but no polygon row (a file with one is all polygons to ultralytics),
    and how many label files have rows at all."""
    box_only, with_rows = [], 0
    for label in labels:
        try:
            rows = [line.split() for line in Path(label).read_text(errors="replace").splitlines()]
        except OSError:  # no label file: a background image
            continue
        rows = [r for r in rows if r]
        if rows:
            with_rows += 1
            if not any(len(r) > _BOX_COLUMNS for r in rows):
                box_only.append(label)
    return box_only, with_rows


def _refuse_box_only(task: str, model: str | Path, data: str | Path) -> None:
    from automl.data.yolo_reader import image_files, label_files, resolve_yaml

    resolved = resolve_yaml(data)
    try:
        images = [i for split in ("train", "val") for i in image_files(resolved[split])]
    except FileNotFoundError:  # the data check names the missing path
        return
    box_only, with_rows = box_only_labels(label_files(images))
    if box_only:
        shape = ("polygons (class x1 y1 x2 y2 ...)" if task == "segment" else
                 "rotated boxes (class x1 y1 x2 y2 x3 y3 x4 y4)")
        raise DataError(f"--data {data}: {len(box_only)} of {with_rows} label files hold boxes "
                        f"only (class x y w h), e.g. {box_only[0]}; --model {model} trains "
                        f"{_words(task)} from {shape}, and ultralytics refuses box-only labels "
                        f"for it; label them so, or pass a detection model such as "
                        f"{_example('detect')}")


def refuse_unsupported(task: str, model: str | Path, flag: str = "--model") -> None:
    """Refuse a task that automl does not search (one ultralytics names beyond TASKS, or a head
    it cannot name).

    Raises:
        ConfigError: naming the model, its task and a model of a supported task.
    """
    if task not in SUPPORTED:
        raise ConfigError(f"{flag} {model}: a {_words(task)} model (task '{task}'); automl "
                          f"searches {', '.join(_words(t) for t in SUPPORTED)}; pass a "
                          f"detection model such as {_example('detect')}")


def check_task(model: str | Path, data: str | Path | None, flag: str = "--model") -> str:
    """The model's task, once the data is known to be that task's and the task is supported.

    `data` None: the built-in demo data (detection). Call after automl.config.check_model.

    Raises:
        DataError: the data is not data of the model's task (check_data_fits).
        ConfigError: a task automl does not support yet (refuse_unsupported).
    """
    task = model_task(model)
    if data is not None:
        check_data_fits(task, model, data)
    refuse_unsupported(task, model, flag)
    return task


def refuse_other_task_data(source: Path, raw: dict) -> None:
    """A pose data.yaml's kpt_shape is one ultralytics can read (else its keypoint rows would be
    read wrong, or not at all).

    Raises:
        DataError: naming the file, the value and the fix.
    """
    keypoints = raw.get("kpt_shape")
    if keypoints is not None and not _valid_kpt_shape(keypoints):
        raise DataError(f"{source}: kpt_shape {keypoints} is not [keypoints, 2 or 3] (e.g. "
                        "kpt_shape: [17, 3] for x, y, visible); fix it, or delete it for a "
                        "detection dataset")


def task_fitness(task: str, spec: str | None, model: str | Path) -> str:
    """The fitness a search of `task` measures: `spec`, else the task's default.

    Raises:
        FitnessError: `spec` weighs mask metrics and the model does not segment, keypoint
            metrics and it does not estimate pose, top1/top5 and it does not classify, or box
            metrics and it classifies.
    """
    from automl.errors import FitnessError
    from automl.fitness import CLS_METRICS, DEFAULT_BY_TASK, parse_fitness

    if spec is None:
        return DEFAULT_BY_TASK[task]
    weighed = [m for m, _ in parse_fitness(spec).weights]
    if task == "classify" and any(m not in CLS_METRICS for m in weighed):
        other = next(m for m in weighed if m not in CLS_METRICS)
        raise FitnessError(f"--fitness {spec}: {other} is a detection metric, and --model {model} "
                           f"trains {_words(task)}, which measures top1 and top5 only; use "
                           f"{DEFAULT_BY_TASK['classify']}, top1 or top5")
    if task != "classify" and any(m in CLS_METRICS for m in weighed):
        other = next(m for m in weighed if m in CLS_METRICS)
        raise FitnessError(f"--fitness {spec}: {other} is a classification metric, and --model "
                           f"{model} trains {_words(task)}; use {DEFAULT_BY_TASK.get(task, 'v5')} "
                           f"or a sum of its metrics, or a classification model such as "
                           f"{_example('classify')}")
    for prefix, (owner, kind) in _OWN_METRICS.items():
        own = [m for m, _ in parse_fitness(spec).weights if m.startswith(prefix)]
        if own and task != owner:
            raise FitnessError(f"--fitness {spec}: {own[0]} is a {kind} metric, and --model "
                               f"{model} trains {_words(task)}, which has no {kind}s; use v5 or "
                               f"a sum of box metrics, or a {_words(owner).split()[0]} model "
                               f"such as {_example(owner)}")
    return spec


# The metrics only one task measures, by the prefix of their names: its task and what it is.
_OWN_METRICS = {"mask_": ("segment", "mask"), "pose_": ("pose", "keypoint")}


def refuse_thresholds(task: str, model: str | Path) -> None:
    """The NMS threshold sweep reads detection outputs only.

    Raises:
        ConfigError: naming the model and its task.
    """
    if task == "classify":
        raise ConfigError(f"--tune-thresholds: {model} is a classification model, which has no "
                          "NMS and no confidence or IoU thresholds; leave --tune-thresholds out")
    if task != "detect":
        raise ConfigError(f"--tune-thresholds: tunes the NMS thresholds of detection models only "
                          f"for now, and {model} trains {_words(task)} (task '{task}'); "
                          "leave --tune-thresholds out")


def check_space_task(space, task: str, model: str | Path) -> None:
    """A space that searches `model` searches models of --model's task (one fitness for all).

    Raises:
        ConfigError: naming the space, a choice of another task and --model.
    """
    for param in space.params:
        if param.name == "model":
            other = next((c for c in param.choices if model_task(c) != task), None)
            if other is not None:
                raise ConfigError(f"--space {space.source}: model choice {other} trains "
                                  f"{_words(model_task(other))}, and --model {model} trains "
                                  f"{_words(task)}; search models of one task")
