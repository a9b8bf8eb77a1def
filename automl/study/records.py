"""What a study hands on: a trial's training args, best_hyperparameters.yaml, the trials CSV, and
the records of promotions and validation kept on the study."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from automl.errors import StudyError
from automl.fitness import ALL_METRICS
from automl.study.attrs import BASELINE_ATTR, PROMOTIONS_ATTR, VALIDATION_ATTR
from automl.study.ranking import best_trial, fitness_of, repeat_means
from automl.study.storage import study_config


def trial_args(study, trial) -> dict[str, Any]:
    """The training args a trial ran with beyond ultralytics' defaults (the run's plumbing aside).

    The space's fixed args with the trial's params over them; for the baseline, the plain
    training's own args (which may lie outside the space).
    """
    config = study_config(study)
    if trial.user_attrs.get(BASELINE_ATTR) and config.baseline_fixed is not None:
        return dict(config.baseline_fixed)
    return {**config.fixed, **trial.params}


def _best(study):
    best = best_trial(study)
    if best is None:
        raise StudyError(f"study '{study.study_name}' has no COMPLETE trial yet")
    return best


def best_hyperparameters(study) -> dict[str, Any]:
    """The best trial's training args (see trial_args): ready for `yolo train cfg=`."""
    return trial_args(study, _best(study))


def write_best_hyperparameters(study, path: str | Path, best=None) -> Path:
    """Write best_hyperparameters.yaml (derived from the study) with a provenance header; `best`:
    the study's best trial where the caller has it (ranking 10,000 trials takes a while)."""
    best = best or _best(study)
    params = trial_args(study, best)
    config = study_config(study)
    attrs = best.user_attrs
    plain = " (the plain training: no searched configuration beat it)" \
        if attrs.get(BASELINE_ATTR) else ""
    means = repeat_means(study)
    mean = (f", mean of {means[best.number][1]} trainings {means[best.number][0]:.5f}"
            if best.number in means else "")
    header = [
        f"# best of study '{study.study_name}': trial {best.number}{plain}, fitness "
        f"{fitness_of(best):.5f}{mean} ({config.fitness})",
        "# " + ", ".join(
            f"{k} {attrs[k]:.4f}" for k in ALL_METRICS
            if isinstance(attrs.get(k), (int, float))
        ),
        f"# searched on {config.data or '?'} (fraction {config.fraction}),"
        f" model {config.model or '?'}, {config.epochs or '?'} epochs,"
        f" imgsz {config.imgsz or '?'}",
        "# use: yolo train cfg=best_hyperparameters.yaml data=... model=...",
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(header) + "\n" + yaml.safe_dump(params, sort_keys=False))
    return path


def export_study(study, out_dir: str | Path) -> dict[str, Path]:
    """best_hyperparameters.yaml (for `yolo train cfg=`) and trials.csv, both from the study.

    trials.csv's weights column lists only the files there are where it is written: a trial's
    record keeps the path its weights had, and `--keep-weights best` deletes a former best's.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"trials_csv": out / "trials.csv"}
    frame = study.trials_dataframe()
    if "user_attrs_weights" in frame:
        frame["user_attrs_weights"] = [w if isinstance(w, str) and Path(w).is_file() else None
                                       for w in frame["user_attrs_weights"]]
    frame.to_csv(paths["trials_csv"], index=False)
    best = best_trial(study)
    if best is not None:
        paths["best_hyperparameters"] = write_best_hyperparameters(
            study, out / "best_hyperparameters.yaml", best)
    return paths


def record_promotion(study, record: Mapping[str, Any]) -> None:
    """Store a promotion (trial, metrics, fitness, weights, ...) on the study, keyed by trial number."""
    records = dict(study.user_attrs.get(PROMOTIONS_ATTR) or {})
    records[str(record["trial"])] = dict(record)
    study.set_user_attr(PROMOTIONS_ATTR, records)


def promotions(study) -> dict[int, dict[str, Any]]:
    """The study's promotions by trial number (empty when none)."""
    return {int(k): v for k, v in (study.user_attrs.get(PROMOTIONS_ATTR) or {}).items()}


def validation(study) -> dict[str, Any] | None:
    """The verdict `automl validate` stored on the study (automl.results.validation.Verdict
    .as_dict), or None."""
    return study.user_attrs.get(VALIDATION_ATTR)


def latest_promotion(study) -> dict[str, Any] | None:
    """The promotion recorded last (by its finished_at time), or None."""
    records = list(promotions(study).values())
    return max(records, key=lambda r: str(r.get("finished_at", ""))) if records else None
