"""What a user runs after each command: one line with the exact command, in one place.

Each `after_*` function takes a command's result and returns the `NextStep` the CLI prints last
(tests/test_next_steps.py runs every `automl` step through the command's own parser).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class NextStep:
    """One command to run next, and what it is for."""

    argv: tuple[str, ...]  # as a shell splits it: ("automl", "promote", "--study", "x")
    why: str
    also: tuple[str, ...] = ()  # a second way on, e.g. the same args as a plain `yolo train`

    @property
    def line(self) -> str:
        also = f"; or: {shlex.join(self.also)}" if self.also else ""
        return f"next: {shlex.join(self.argv)}  ({self.why}){also}"


def _study_args(study: str, storage: str | None) -> tuple[str, ...]:
    return ("--study", study, *(("--storage", storage) if storage else ()))


def yolo_train(cfg: str | Path, config) -> tuple[str, ...]:
    """`yolo train` with a study's best args (cfg=) on its data, model, epochs and imgsz."""
    return ("yolo", "train", f"cfg={cfg}", f"data={config.data}", f"model={config.model}",
            f"epochs={config.epochs}", f"imgsz={config.imgsz}")


def after_search(study, storage: str | None, best_yaml: str | Path | None) -> NextStep | None:
    """After `automl search`: validate the top trials on the full data when there are several to
    compare, else promote the best; also the plain `yolo train` of the best args."""
    from optuna.trial import TrialState

    from automl.study import study_config

    if best_yaml is None:
        return None
    name = study.study_name
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    also = yolo_train(best_yaml, study_config(study))
    if done >= 3:
        return NextStep(("automl", "validate", *_study_args(name, storage)),
                        "does the mini split's winner win on the full data? then automl promote",
                        also)
    return NextStep(("automl", "promote", *_study_args(name, storage)),
                    "train the best trial on the full data", also)


def after_status(study: str, storage: str | None) -> NextStep:
    return NextStep(("automl", "report", *_study_args(study, storage)),
                    "every trial so far in one HTML page")


def after_report(study: str, storage: str | None) -> NextStep:
    return NextStep(("automl", "validate", *_study_args(study, storage)),
                    "the top trials on the full data, then automl promote")


def after_validate(study: str, storage: str | None) -> NextStep:
    return NextStep(("automl", "promote", *_study_args(study, storage)),
                    "train the full-data winner on the full data")


def after_promote(result) -> NextStep:
    """After `automl promote` (a PromoteResult): tune its thresholds, or, tuned (or a
    classification model, which has none), deploy it."""
    weights = str(result.weights)
    if result.thresholds is not None or "top1" in result.metrics:
        return after_thresholds(weights)
    return NextStep(("automl", "thresholds", "--weights", weights, "--data",
                     str(result.record.get("data"))),
                    "the NMS IoU and confidence for these weights, then automl deploy")


def after_thresholds(weights: str | Path) -> NextStep:
    return NextStep(("automl", "deploy", "--weights", str(weights)),
                    "export to ONNX and measure size, latency and accuracy")


def after_deploy(study: str | None, storage: str | None) -> NextStep | None:
    if study is None:
        return None
    return NextStep(("automl", "report", *_study_args(study, storage)),
                    "the study's HTML report, promotions and exports included")


def after_fit(result) -> NextStep:
    """After `automl fit` (a FitResult): predict with the final weights at their thresholds."""
    t = result.summary.get("thresholds") or {}
    return NextStep(("yolo", "predict", f"model={result.weights}", "source=path/to/images",
                     *((f"conf={t['conf']:g}", f"iou={t['iou']:g}") if t else ())),
                    f"the final model{' at its thresholds' if t else ''}; the summary: "
                    f"{result.folder}/summary.md")


def after_data(data: str | Path, *, clean: bool = True) -> NextStep:
    """After check, eda, demo-data, split or import: check the data, or search it once clean."""
    if not clean:
        return NextStep(("automl", "check", "--data", str(data)),
                        "again once the files above are fixed")
    # a folder is class folders: a classification model trains on it
    model = ("--model", "yolo11n-cls.yaml") if Path(data).is_dir() else ()
    return NextStep(("automl", "search", "--data", str(data), *model),
                    "a search on this data (add --budget 1h to fit an hour)")


def after_export(files: Mapping[str, Any], config) -> NextStep | None:
    """After `automl export`: the plain `yolo train` of the best args."""
    best = files.get("best_hyperparameters")
    if best is None:
        return None
    return NextStep(yolo_train(best, config), "the best trial's args as a plain training")


def show(step: NextStep | None) -> None:
    """Print the next step, the last line a command prints (nothing when there is none)."""
    if step is not None:
        print(step.line)
