"""Promote a trial: train its hyperparameters on the full data, record the result on the study.

The search tunes on a mini split; the promoted training uses every image of the original
data.yaml (optionally train+val as the training set), the study's model, epochs, imgsz and
batch unless overridden, and the device ultralytics picks (a GPU when there is one). An
interrupted promotion continues from its last.pt when the same command runs again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from automl import defaults as D
from automl.errors import AutoMLError, ConfigError, StudyError
from automl.study import fitness_of

PROMOTE_DIR = Path("runs/promote")


class PromoteError(AutoMLError, RuntimeError):
    """The promoted training itself failed (not a user mistake in the flags)."""


@dataclass
class PromoteResult:
    """What a promotion leaves behind (the same record is stored on the study)."""

    study: str
    trial: int
    run_dir: Path
    weights: Path  # best.pt
    last: Path
    metrics: dict[str, float]
    fitness: float
    record: dict[str, Any]
    resumed: bool = False
    thresholds: Any = None  # a ThresholdsResult with --tune-thresholds


def _pick_trial(study, number: int | None, say: Callable[[str], None]):
    """The trial to promote: `number`, else the full-data winner of `automl validate`, else the
    best COMPLETE trial of the search."""
    from optuna.trial import TrialState

    from automl.objectives import feasible
    from automl.study import best_trial, multi_objective, pareto_trials, study_config, validation

    if number is None:
        best = best_trial(study)
        if best is None:
            within = " within its caps" if study_config(study).goals.caps else ""
            raise StudyError(f"study '{study.study_name}' has no COMPLETE trial{within} to "
                             f"promote; run `automl search --study {study.study_name}` until "
                             "one completes")
        if multi_objective(study):
            front = ", ".join(f"#{t.number}" for t in pareto_trials(study))
            say(f"multi-objective study: promoting the Pareto front's fittest trial #{best.number}"
                f"; the front is {front} (pick one with --trial N)")
        verdict = validation(study) or {}
        winner = verdict.get("full_winner")
        validated = {r["number"]: r for r in verdict.get("rows", [])}
        if winner is not None and winner in validated:
            row = validated[winner]
            say(f"promoting the validated full-data winner #{winner} (full-data fitness "
                f"{row['full_mean']:.4f} +- {row['full_std']:.4f} over {len(row['full'])} seeds; "
                f"automl validate)" + ("" if winner == best.number else
                                       f" instead of the best mini-data trial #{best.number}"))
            number = winner
        else:
            return best
    for t in study.get_trials(deepcopy=False):
        if t.number == number:
            if t.state != TrialState.COMPLETE:
                raise StudyError(f"--trial {number}: trial is {t.state.name}, not COMPLETE; "
                                 "promote a COMPLETE trial (omit --trial for the best one)")
            if not feasible(t):
                say(f"note: trial #{number} is over the study's caps (size_mb "
                    f"{t.user_attrs.get('size_mb', '?')}, latency_ms "
                    f"{t.user_attrs.get('latency_ms', '?')}); promoting it as asked")
            return t
    raise StudyError(f"--trial {number}: study '{study.study_name}' has no trial {number} "
                     f"(trials 0..{len(study.trials) - 1})")


def full_data_yaml(data: Path, mode: str, out_dir: Path) -> Path:
    """The data.yaml the promotion trains on: the user's own for 'train'; for 'train+val' a
    derived one whose train list holds train and val images (lists only, nothing copied; of
    class folders, folders of links)."""
    from automl.data.dataset import load_dataset
    from automl.data.splits import write_dataset

    dataset = load_dataset(data)
    if mode == "train":
        return dataset.yaml_path
    # an image listed in both is trained on once, as ultralytics would from one list
    both = list(dict.fromkeys([*dataset.train, *dataset.val]))
    return write_dataset(out_dir, dataset, both, dataset.val)


def _resumable(last: Path) -> bool:
    """last.pt of an unfinished training: ultralytics strips epoch to -1 once training ends."""
    if not last.is_file():
        return False
    from automl.weights import read_weights

    try:  # our own file, but a pickle all the same: read as any weights are
        ckpt = read_weights(last, "--resume").checkpoint
    except Exception:  # a half-written (or refused) checkpoint: start over
        return False
    return isinstance(ckpt, dict) and ckpt.get("epoch", -1) >= 0 and ckpt.get("optimizer") is not None


def promote(
    *,
    study: str,
    storage: str | None = None,
    trial: int | None = None,
    data: str | Path | None = None,
    full_data: str = D.FULL_DATA,
    epochs: int | None = None,
    model: str | None = None,
    device: str | None = None,
    imgsz: int | None = None,
    batch: int | None = None,
    min_batch: int = D.MIN_BATCH,
    project: str | Path = str(PROMOTE_DIR),
    tune_thresholds: bool = False,
    metric: str = D.THRESHOLD_METRIC,
    per_class: bool = False,
    folds: int = D.THRESHOLD_FOLDS,
    conf_grid: Iterable[str | float] | None = None,
    iou_grid: Iterable[str | float] | None = None,
    log: Callable[[str], None] | None = None,
) -> PromoteResult:
    """Train a study's trial (the best COMPLETE one by default) on the full data.

    Args:
        study, storage: the study (default storage sqlite:///studies/NAME.db).
        trial: trial number to promote; None takes the full-data winner when the study was
            validated (`automl validate`), else the best COMPLETE trial.
        data: data.yaml (default: the data the study searched on, in full, not the mini split).
        full_data: 'train' trains on train; 'train+val' trains on train and val images
            (val metrics are then measured on images the model saw).
        epochs, model, imgsz, batch: default to the study's search settings.
        min_batch: out of memory, the training starts again at half its batch, down to this.
        device: ultralytics device (default: auto, a GPU when present).
        project: runs go to PROJECT/STUDY-trialN.
        tune_thresholds: afterwards sweep NMS IoU x conf on best.pt (see automl.results.thresholds);
            metric, per_class, folds, conf_grid, iou_grid go to it, as `automl thresholds`.
        log: where progress lines go (default: stdout).

    Returns:
        A PromoteResult; the same record is stored on the study (automl.study.promotions).

    Raises:
        StudyError: no such study, trial, or no COMPLETE trial.
        ConfigError: a bad flag or data.yaml, before any training.
        PromoteError: the training failed.
    """
    from automl import study as studies
    from automl.config import check_model
    from automl.data.tasks import check_task, refuse_thresholds
    from automl.fitness import parse_fitness
    from automl.options import check

    check("promote", locals())
    say = log or (lambda line: print(line, flush=True))
    the_study = studies.open_study(study, storage, create=False)
    chosen = _pick_trial(the_study, trial, say)
    config = studies.study_config(the_study)
    plan = resolve_promotion(config, study=study, trial_number=chosen.number,
                             params=studies.trial_args(the_study, chosen), data=data,
                             full_data=full_data, epochs=epochs, model=model, device=device,
                             imgsz=imgsz, batch=batch, project=project)
    check_model(plan.model)
    task = check_task(plan.model, plan.data)
    fit = parse_fitness(config.fitness or None)
    if tune_thresholds:  # check the grids now, not after hours of training
        refuse_thresholds(task, plan.model)
        from automl.results.thresholds import check_per_class, parse_grid, parse_metric

        parse_grid(conf_grid, "--conf-grid", ())
        parse_grid(iou_grid, "--iou-grid", ())
        check_per_class(parse_metric(metric), per_class)

    result = _already_promoted(the_study, chosen, plan, study, say)
    if result is None:
        result = _train(the_study, chosen, plan, fit, study, say, min_batch)
    if tune_thresholds:
        _tune(result, the_study, plan.data, dict(metric=metric, per_class=per_class, folds=folds,
              conf_grid=conf_grid, iou_grid=iou_grid), plan.imgsz, device, say)
    return result


@dataclass(frozen=True)
class PromotionPlan:
    """What a promotion trains, decided from the study's config and the flags (see resolve_promotion)."""

    name: str  # STUDY-trialN, the run folder's name
    run_dir: Path
    data: Path  # the data.yaml the study searched on (in full), or --data
    full_data: str
    params: dict[str, Any]  # the trial's training args
    model: str
    epochs: int
    imgsz: int
    batch: int | None
    device: str | None
    project: Path

    @property
    def last(self) -> Path:
        return self.run_dir / "weights" / "last.pt"

    @property
    def best(self) -> Path:
        return self.run_dir / "weights" / "best.pt"


def resolve_promotion(config, *, study: str, trial_number: int, params: dict[str, Any],
                      data: str | Path | None, full_data: str, epochs: int | None,
                      model: str | None, device: str | None, imgsz: int | None,
                      batch: int | None, project: str | Path) -> PromotionPlan:
    """The promotion's settings: each flag, else the study's search setting, else the default.

    Pure: reads only its arguments.

    Raises:
        ConfigError: the study does not record its data and --data is missing.
    """
    data_path = data or config.data
    if not str(data_path or ""):
        raise ConfigError(f"study '{study}' does not record its data; pass --data path/to/data.yaml")
    name = f"{study}-trial{trial_number}"
    params = dict(params)
    searched = {k: params.pop(k) for k in ("model", "imgsz") if k in params}  # the trial's own
    return PromotionPlan(
        name=name, run_dir=(Path(project) / name).resolve(), data=Path(data_path),
        full_data=full_data, params=params,
        model=model or searched.get("model") or config.model or D.MODEL,
        epochs=int(epochs or config.epochs or D.EPOCHS),
        imgsz=int(imgsz or searched.get("imgsz") or config.imgsz or D.IMGSZ),
        batch=batch or config.batch,
        device=device, project=Path(project).resolve())


def _already_promoted(the_study, chosen, plan: PromotionPlan, study: str,
                      say: Callable[[str], None]) -> PromoteResult | None:
    """The recorded result when this trial's promotion finished before (nothing to train)."""
    from automl import study as studies

    done = studies.promotions(the_study).get(chosen.number)
    if _resumable(plan.last) or not done or not plan.last.is_file() \
            or done.get("weights") != str(plan.best.resolve()):
        return None
    say(f"trial #{chosen.number} is already promoted ({plan.best}, fitness "
        f"{done.get('fitness')}); delete {plan.run_dir} to train it again")
    return PromoteResult(study=study, trial=chosen.number, run_dir=plan.run_dir,
                         weights=plan.best, last=plan.last, metrics=done.get("metrics", {}),
                         fitness=done.get("fitness") or math.nan, record=done)


def _train(the_study, chosen, plan: PromotionPlan, fit, study: str,
           say: Callable[[str], None], min_batch: int = D.MIN_BATCH) -> PromoteResult:
    """Train the promotion (continuing from last.pt when one was cut short) and record it."""
    from automl import study as studies
    from automl.config import RunSpec
    from automl.console import metrics_text
    from automl.execution.memory import memory_record
    from automl.execution.trainer import train_once
    from automl.fitness import ALL_METRICS
    from automl.machine import machine_cpus

    train_yaml = full_data_yaml(plan.data, plan.full_data, plan.run_dir / "data")
    resumed = _resumable(plan.last)
    params = dict(plan.params)
    run = RunSpec(data=str(train_yaml), model=str(plan.last) if resumed else plan.model,
                  epochs=plan.epochs, imgsz=plan.imgsz, batch=plan.batch, device=plan.device,
                  fitness=fit.spec, project=str(plan.project), threads=machine_cpus(), save=True,
                  final_eval=True, min_batch=min_batch)
    if resumed:
        params["resume"] = True  # ultralytics restores args, optimizer and epoch
        say(f"resuming {plan.name} from {plan.last}")
    shown = ", ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in chosen.params.items())
    say(f"promoting trial #{chosen.number} of study '{study}' (search fitness "
        f"{fitness_of(chosen):.4f}): {shown}")
    settings = studies.study_config(the_study).settings
    if settings:  # in plan.params, as in every trial of the study
        say("with your training settings " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    say(f"full data {train_yaml} ({plan.full_data}), model {plan.model}, {plan.epochs} epochs at "
        f"{plan.imgsz} px, batch {plan.batch}, device {plan.device or 'auto'} -> {plan.run_dir}")

    reports = []

    def report(epoch) -> None:
        reports.append(epoch)
        if epoch.epoch <= plan.epochs:
            say(f"epoch {epoch.epoch}/{plan.epochs}  fitness {epoch.fitness:.4f}  "
                f"{metrics_text(epoch.metrics())}  ({epoch.train_seconds:.0f}s)")

    outcome = train_once(params, run, name=plan.name, report=report)
    if "error" in outcome:
        raise PromoteError(f"promoting trial #{chosen.number} failed: {outcome['error']}")
    if not plan.best.is_file():
        raise PromoteError(f"training finished but {plan.best} is missing")
    # With final_eval the last report is best.pt re-validated; without reports (nothing ran)
    # there is nothing to record.
    final = reports[-1].metrics() if reports else {}
    metrics = {k: float(final[k]) for k in ALL_METRICS if k in final}
    value = fit(metrics)
    record: dict[str, Any] = {
        "trial": chosen.number, "params": plan.params,
        "search_fitness": fitness_of(chosen), "fitness_spec": fit.spec,
        "fitness": value if math.isfinite(value) else None, "metrics": metrics,
        "weights": str(plan.best.resolve()), "last": str(plan.last.resolve()),
        "run_dir": str(plan.run_dir), "data": str(train_yaml), "full_data": plan.full_data,
        "model": plan.model, "epochs": plan.epochs, "imgsz": plan.imgsz, "batch": plan.batch,
        "device": plan.device or "auto", "resumed": resumed,
        # the training's own seconds at its last epoch (train_once returns none; it was None)
        "train_seconds": reports[-1].train_seconds if reports else None,
        "trained_on": reports[-1].device if reports else None,  # the device auto resolved to
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if reports:  # the batch it trained with (smaller after out of memory), peak GPU memory
        memory, notes = memory_record(reports[-1])
        record.update(memory)
        for note in notes:
            say(note)
    studies.record_promotion(the_study, record)
    say(f"promoted: {plan.best}  fitness {value:.4f} ({fit.describe()})  {metrics_text(metrics)}")
    return PromoteResult(study=study, trial=chosen.number, run_dir=plan.run_dir,
                         weights=plan.best, last=plan.last, metrics=metrics, fitness=value,
                         record=record, resumed=resumed)


def _tune(result: PromoteResult, the_study, data: Path, choice: dict[str, Any], imgsz: int,
          device: str | None, say: Callable[[str], None]) -> None:
    """Tune best.pt's thresholds on the val split of the user's data.yaml; record them too."""
    from automl import study as studies
    from automl.results.thresholds import tune_thresholds

    result.thresholds = tune_thresholds(weights=result.weights, data=data, imgsz=imgsz,
                                        device=device, log=say, **choice)
    result.record["thresholds"] = result.thresholds.as_dict()
    studies.record_promotion(the_study, result.record)

