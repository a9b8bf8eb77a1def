"""The Python API: `automl.search(...)`. The CLI is a thin layer over these functions."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl.errors import ConfigError

DEFAULT_SPACE = "lr_momentum"
DEFAULT_SEARCHER = "tpe"
DEFAULT_TRIALS = 8
DEFAULT_EPOCHS = 30
DEFAULT_FRACTION = "auto"  # see automl.data.auto_fraction
DEFAULT_MODEL = "yolo11n.yaml"
DEFAULT_IMGSZ = 640
DEFAULT_BATCH = 16
# The built-in demo data (160 + 64 images of 128 px) trains with its own profile, so that the
# default search fits in minutes on a laptop CPU. Flags the user passes always win.
# nbs = batch: at 80 images a batch of 8 gives 10 iterations an epoch; ultralytics' nominal batch
# of 64 would accumulate 8 of them into one optimizer step and leave ~12 steps for a whole trial
# (measured: mAP50 0.0 after 9 epochs with accumulation, 0.58 without).
DEMO_PROFILE = {"epochs": 10, "imgsz": 128, "batch": 8}


@dataclass
class SearchResult:
    """What a search leaves behind; everything is derived from the study."""

    study: Any
    best_hyperparameters_path: Path | None = None

    @property
    def best(self):
        """The best COMPLETE trial (an optuna FrozenTrial), or None."""
        from automl.study import best_trial

        return best_trial(self.study)

    def to_dataframe(self):
        """All trials as a pandas DataFrame (Optuna's layout: params_*, user_attrs_*)."""
        return self.study.trials_dataframe()


def _check_flags(
    *, trials: int, concurrency: int, cpus_per_trial: float | None, gpus_per_trial: float | None,
    fraction: float | str, epochs: int, imgsz: int, batch: int, timeout: float | None = None,
) -> None:
    checks = [
        (timeout is None or timeout > 0,
         f"--timeout {timeout}: must be > 0 seconds (leave it out for no time limit)"),
        (trials >= 1, f"--trials {trials}: must be at least 1"),
        (concurrency >= 1, f"--concurrency {concurrency}: must be at least 1"),
        (cpus_per_trial is None or cpus_per_trial > 0,
         f"--cpus-per-trial {cpus_per_trial}: must be > 0"),
        (gpus_per_trial is None or gpus_per_trial >= 0,
         f"--gpus-per-trial {gpus_per_trial}: must be >= 0 (fractions such as 0.25 share a GPU)"),
        (fraction == AUTO or 0 < fraction <= 1,
         f"--fraction {fraction}: must be in (0, 1] (1 uses all images) or auto"),
        (epochs >= 1, f"--epochs {epochs}: must be at least 1"),
        (imgsz >= 32, f"--imgsz {imgsz}: must be at least 32"),
        (batch >= 1, f"--batch {batch}: must be at least 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def check_model(model: str) -> None:
    """Fail early, offline-safe: a .pt must exist locally; a .yaml must be one ultralytics can build."""
    path = Path(model)
    if path.suffix == ".pt":
        if not path.is_file():
            raise ConfigError(
                f"--model {model}: weights file not found (nothing is downloaded); pass a local "
                "path, or a model YAML such as yolo11n.yaml to train from scratch"
            )
        return
    if path.suffix not in {".yaml", ".yml"}:
        raise ConfigError(f"--model {model}: expected a .yaml model config or local .pt weights")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.nn.tasks import yaml_model_load

    try:
        yaml_model_load(model)
    except (FileNotFoundError, OSError) as e:
        raise ConfigError(
            f"--model {model}: no such model YAML, locally or in ultralytics' cfg/models "
            "(e.g. yolo11n.yaml, yolov8s.yaml)"
        ) from e


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def search(
    *,
    data: str | Path | None = None,
    space: str | Path = DEFAULT_SPACE,
    searcher: str = DEFAULT_SEARCHER,
    trials: int = DEFAULT_TRIALS,
    fitness: str | None = None,
    study: str | None = None,
    storage: str | None = None,
    seed: int | None = None,
    concurrency: int = 1,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
    fraction: float | str = DEFAULT_FRACTION,
    model: str = DEFAULT_MODEL,
    epochs: int | None = None,
    imgsz: int | None = None,
    batch: int | None = None,
    device: str | None = None,
    ga_parent: str = "single",
    pruner: str | None = None,
    address: str | None = None,
    defaults_first: bool = True,
    timeout: float | None = None,
    log: Callable[[str], None] | None = None,
) -> SearchResult:
    """Run (or continue) a hyperparameter search whose every trial is an ultralytics training.

    Args:
        data: data.yaml; None uses the built-in demo data (generated once into the cache).
        space: built-in space name or path to a space YAML.
        searcher: ga, tpe, gp, cmaes, random, grid or nsga2.
        trials: trials in the study in total (finished ones from earlier runs count).
        fitness: preset (v5, map50_95, map50, map75, f1) or a sum like "0.2*map50+0.8*map75".
        study: study name (default: DATA-SPACE); storage: Optuna URL (default sqlite under studies/).
        seed: makes the searcher and the mini split reproducible.
        concurrency, cpus_per_trial, gpus_per_trial: trials at once and each one's resources.
        fraction: stratified share of train and of val each trial uses.
        model, epochs, imgsz, batch, device: the training of each trial (epochs, imgsz and
            batch default to 30, 640 and 16; on the demo data to its profile, DEMO_PROFILE).
        ga_parent: GA parent selection, single or weighted.
        pruner: asha, median or none; default asha when the epochs leave room for two rungs.
        address: join this Ray cluster instead of starting a local one.
        defaults_first: a new study's first trial is ultralytics' defaults for the space's keys,
            whatever the searcher (the GA always does this; the grid never).
        timeout: seconds after which no new trial starts (running ones finish and are kept);
            `trials` stays the upper bound. None: no time limit.
        log: where progress lines go (default: stdout).

    Returns:
        A SearchResult over the study.

    Raises:
        AutoMLError: any bad flag, space, fitness or data, before the first trial.
    """
    from automl import study as studies
    from automl.baseline import resolve_auto, trial_fixed
    from automl.checks import usable
    from automl.data import auto_fraction, load_dataset, make_mini_dataset, mini_size
    from automl.demo import ensure_demo_dataset
    from automl.execution.ray_runner import PRUNERS, Resources, default_pruner, run_search
    from automl.fitness import parse_fitness
    from automl.searchers import SEARCHERS, grid_size, make_sampler, queue_first_trials
    from automl.spaces import load_space, ultralytics_defaults

    say = log or (lambda line: print(line, flush=True))
    if searcher not in SEARCHERS:
        raise ConfigError(f"--searcher {searcher}: unknown; choose one of {', '.join(SEARCHERS)}")
    fit = parse_fitness(fitness)
    search_space = load_space(space)
    demo = data is None
    profile = DEMO_PROFILE if demo else {
        "epochs": DEFAULT_EPOCHS, "imgsz": DEFAULT_IMGSZ, "batch": DEFAULT_BATCH}
    epochs = epochs if epochs is not None else profile["epochs"]
    imgsz = imgsz if imgsz is not None else profile["imgsz"]
    batch = batch if batch is not None else profile["batch"]
    fraction = _fraction_flag(fraction)
    _check_flags(trials=trials, concurrency=concurrency, cpus_per_trial=cpus_per_trial,
                 gpus_per_trial=gpus_per_trial, fraction=fraction, epochs=epochs, imgsz=imgsz,
                 batch=batch, timeout=timeout)
    if pruner is not None and pruner not in PRUNERS:
        raise ConfigError(f"--pruner {pruner}: unknown; choose one of {', '.join(PRUNERS)}")
    pruner = pruner or default_pruner(epochs)
    check_model(model)
    data_yaml = ensure_demo_dataset() if demo else Path(data)
    dataset = load_dataset(data_yaml)
    dataset, check_report = usable(dataset)  # bad images stay out of the split; none left: DataError
    say(check_report.headline() if check_report.clean
        else f"{check_report.details(limit=20)}\n{check_report.summary()}")

    name = study or f"{'demo' if demo else Path(data_yaml).stem}-{search_space.name}"
    defaults = ultralytics_defaults()
    # run-level args every trial shares, the plain training included (see DEMO_PROFILE)
    run_args = {"batch": batch, **({"nbs": batch} if demo else {})}
    if "nbs" in search_space.fixed:
        run_args["nbs"] = search_space.fixed["nbs"]
    nbs = int(run_args.get("nbs", defaults["nbs"]))
    if fraction == AUTO:
        fraction, why = auto_fraction(len(dataset.train), epochs=epochs, batch=batch, nbs=nbs)
    else:
        why = "--fraction"
    # the user's plain `yolo train` on the trial's data: ultralytics' optimizer=auto resolved
    auto = resolve_auto(n_images=mini_size(len(dataset.train), fraction), epochs=epochs,
                        batch=batch, nbs=nbs, nc=dataset.nc)
    search_space = search_space.for_optimizer(
        str(search_space.fixed.get("optimizer", AUTO)).replace(AUTO, auto.optimizer))
    fixed = {**trial_fixed(search_space.fixed, search_space.keys, auto), **run_args}
    plain = {**auto.as_args(), **run_args}
    baseline = {k: plain.get(k, defaults.get(k)) for k in search_space.keys}
    outside = _outside_space(search_space, fixed, plain, baseline, defaults)
    if searcher == "grid":
        trials = min(trials, grid_size(search_space) + (1 if defaults_first else 0))
    sampler = make_sampler(searcher, search_space, seed=seed, n_trials=trials,
                           defaults=baseline, ga_parent=ga_parent)
    the_study = studies.open_study(name, storage, sampler)
    config = {
        "space": search_space.name, "space_source": search_space.source,
        "space_keys": list(search_space.keys), "fixed": fixed, "baseline_fixed": plain,
        "auto_optimizer": {**auto.as_args(), "iterations": auto.iterations},
        "fitness": fit.spec, "searcher": searcher, "data": str(dataset.yaml_path),
        "model": model, "epochs": epochs, "imgsz": imgsz, "fraction": fraction,
        "batch": batch, "seed": seed, "pruner": pruner,
    }
    studies.check_config(the_study, config)
    recovered = studies.recover_interrupted(the_study)
    if recovered:
        say(f"marked interrupted trials {recovered} as FAIL; their configurations run again")
    storage_url = storage or studies.default_storage(name)
    if defaults_first:
        start = {k: defaults[k] for k in search_space.keys if k in defaults}
        with studies.trial_slot_lock(storage_url):
            queued = queue_first_trials(the_study, searcher, search_space, baseline, start,
                                        outside=outside, budget=trials)
        if queued:
            say(f"first trial: your plain training (yolo train with these flags: "
                f"{_shown(plain)})" + (f"; outside the space ({outside})" if outside else ""))
        if len(queued) > 1:
            say(f"second trial: ultralytics' default values {_shown(queued[1])}")

    out_dir = studies.study_dir(name)
    mini_yaml = make_mini_dataset(dataset, fraction, out_dir / "mini", seed=seed or 0)
    cpus = cpus_per_trial or max(1, _cpu_count() // concurrency)
    gpus = gpus_per_trial if gpus_per_trial is not None else _default_gpus(concurrency)
    run = {
        "data": str(mini_yaml.resolve()), "model": model, "epochs": epochs, "imgsz": imgsz,
        "batch": batch, "device": device, "fitness": fit.spec, "fixed": fixed,
        "baseline_fixed": plain,
        "project": str((out_dir / "trials").resolve()), "threads": max(1, int(cpus)),
    }
    done_before = len(studies.finished_trials(the_study))
    say(f"study '{name}' ({storage_url}): {done_before}/{trials} "
        f"trials finished; searcher {searcher}, space {search_space.name} "
        f"({_ranges(search_space)}), fitness {fit.describe()}")
    say(f"data {dataset.yaml_path} -> mini split {fraction:g} of {len(dataset.train)} train "
        f"images ({why}; {mini_yaml.parent}), model {model}, {epochs} epochs at {imgsz} px, "
        f"batch {batch}, nbs {nbs}; optimizer {fixed.get('optimizer', 'from the space')}")
    say(f"{concurrency} at a time, {cpus:g} CPU / {gpus:g} GPU each; pruner {pruner}"
        + (f" ({_rungs_text(epochs)})" if pruner == "asha" else "")
        + (f"; no new trial after {timeout:g} s" if timeout else ""))

    progress = _Progress(the_study, trials, say)
    run_search(the_study, search_space.distributions(), run, n_trials=trials,
               resources=Resources(concurrency, cpus, gpus), on_event=progress,
               address=address, pruner=pruner, storage_url=storage_url, timeout=timeout)
    finished = len(studies.finished_trials(the_study))
    if timeout and finished < trials:
        say(f"time budget of {timeout:g} s reached: {finished}/{trials} trials finished "
            "(the same command with a new --timeout continues the study)")

    result = SearchResult(the_study)
    if result.best is not None:
        result.best_hyperparameters_path = studies.write_best_hyperparameters(
            the_study, out_dir / "best_hyperparameters.yaml"
        )
    say(format_top_table(the_study))
    verdict = baseline_verdict(the_study)
    if verdict:
        say(verdict)
    if result.best_hyperparameters_path:
        say(f"best hyperparameters: {result.best_hyperparameters_path}")
    return result


AUTO = "auto"


def _fraction_flag(value: float | str) -> float | str:
    """`--fraction`: a share in (0, 1] or 'auto'."""
    if isinstance(value, str):
        if value.strip().lower() == AUTO:
            return AUTO
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"--fraction {value}: use a share in (0, 1] or 'auto'") from None
    return float(value)


def _outside_space(space, fixed: dict, plain: dict, baseline: dict, defaults: dict) -> str | None:
    """Why the plain training is not a point of the space (None when it is)."""
    for key, value in fixed.items():
        own = plain.get(key, defaults.get(key))
        if own != value:
            return f"the space fixes {key}={value!r}, the plain training has {own!r}"
    for p in space.params:
        value = baseline[p.name]
        if p.clip(value) != value:
            return f"{p.name}={value!r} is outside the space's range"
    return None


def _shown(values: dict) -> str:
    return ", ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def _ranges(space) -> str:
    def one(p) -> str:
        if p.kind == "categorical":
            return f"{p.name} {list(p.choices)}"
        return f"{p.name} {p.low:g}..{p.high:g}{' log' if p.log else ''}"

    return ", ".join(one(p) for p in space.params)


def _rungs_text(epochs: int) -> str:
    from automl.execution.ray_runner import SCORED, asha_rungs

    return (f"rungs at epochs {', '.join(map(str, asha_rungs(epochs)))}; a rung stops trials only "
            f"once half of those there have fitness >= {SCORED:g}")


def baseline_verdict(study) -> str | None:
    """One line: how much the best trial beats the plain training (trial #0), or that it does not."""
    from optuna.trial import TrialState

    from automl.study import BASELINE_ATTR, best_trial

    plain = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
             if t.user_attrs.get(BASELINE_ATTR)]
    best = best_trial(study)
    if not plain or best is None:
        return None
    base = plain[-1]
    if best.number == base.number or best.value <= base.value:
        return (f"the plain training (#{base.number}, fitness {base.value:.4f}) is the best: no "
                "searched configuration beat it; use its settings (or search longer)")
    gain = best.value - base.value
    rel = f" ({gain / base.value:+.0%})" if base.value > 0 else ""
    return (f"best #{best.number} {best.value:.4f} beats the plain training #{base.number} "
            f"{base.value:.4f} by {gain:+.4f}{rel} on the search's data")


def _default_gpus(concurrency: int) -> float:
    """Share the visible GPUs among the concurrent trials (0 without a GPU)."""
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:
        count = 0
    return min(1.0, count / concurrency) if count else 0.0


class _Progress:
    """Prints one line per finished trial: i/N, its outcome, and the best so far."""

    def __init__(self, study, total: int, say: Callable[[str], None]) -> None:
        self._study, self._total, self._say = study, total, say

    def __call__(self, event) -> None:
        from automl.study import best_trial, finished_trials

        done = len(finished_trials(self._study))
        best = best_trial(self._study)
        best_text = f"best {best.value:.4f} (#{best.number})" if best else "best -"
        if event.state == "COMPLETE":
            m = event.metrics
            outcome = (f"fitness {event.value:.4f}  mAP50 {m.get('map50', math.nan):.3f}  "
                       f"mAP50-95 {m.get('map50_95', math.nan):.3f}")
        elif event.state == "PRUNED":
            outcome = f"PRUNED after {event.epochs} epochs (fitness {event.value:.4f})"
        else:
            outcome = f"{event.state}: {event.error}"
        plain = " (plain training)" if event.baseline else ""
        self._say(f"trial {done}/{self._total}  #{event.number}{plain}  {outcome}  "
                  f"({event.seconds:.1f}s)  |  {best_text}")


def format_top_table(study, n: int = 5) -> str:
    """The top trials as a text table (fitness, metrics, params)."""
    from automl.study import BASELINE_ATTR, top_trials

    top = top_trials(study, n)
    if not top:
        return "no COMPLETE trial yet"
    keys = list(dict.fromkeys(k for t in top for k in t.params))
    header = ["trial", "fitness", "mAP50", "mAP50-95", "mAP75", "P", "R", *keys]
    rows = []
    for t in top:
        a = t.user_attrs
        rows.append([
            f"#{t.number}" + (" plain" if t.user_attrs.get(BASELINE_ATTR) else ""), f"{t.value:.4f}",
            *(f"{a.get(k, math.nan):.3f}" for k in ("map50", "map50_95", "map75",
                                                    "precision", "recall")),
            *(_fmt(t.params.get(k)) for k in keys),
        ])
    return f"top {len(top)} trials of study '{study.study_name}':\n" + text_table(header, rows)


def text_table(header: list[str], rows: list[list[Any]], *, right: bool = True) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    pad = str.rjust if right else str.ljust
    return "\n".join("  ".join(pad(str(c), w) for c, w in zip(r, widths, strict=True))
                     for r in [header, *rows])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def export(study: str, *, storage: str | None = None, out: str | Path | None = None) -> dict:
    """Write best_hyperparameters.yaml (ultralytics `cfg=` form) and trials.csv of a study.

    Returns:
        {"best_hyperparameters": path, "trials_csv": path} (the yaml only once a trial completed).
    """
    from automl.study import export_study, open_study, study_dir

    the_study = open_study(study, storage, create=False)
    return export_study(the_study, out or study_dir(study))


def report(study: str, *, storage: str | None = None, out: str | Path | None = None) -> Path:
    """Write the study's HTML report (default studies/NAME/report.html) and return its path."""
    from automl.report import write_report
    from automl.study import open_study, study_dir

    the_study = open_study(study, storage, create=False)
    return write_report(the_study, out or study_dir(study) / "report.html")


def studies_table(storage: str | None = None) -> str:
    """`automl studies`: every study with trial counts and best fitness."""
    from automl.study import list_studies

    rows = list_studies(storage)
    if not rows:
        return "no studies found" + ("" if storage else " under studies/")
    header = ["study", "trials", "complete", "pruned", "fail", "running", "best fitness",
              "best trial", "promoted", "storage"]
    body = [[r["study"], r["trials"], r["complete"], r["pruned"], r["fail"], r["running"],
             "-" if r["best_fitness"] is None else f"{r['best_fitness']:.4f}",
             "-" if r["best_trial"] is None else f"#{r['best_trial']}",
             _promoted_cell(r), r["storage"]]
            for r in rows]
    return text_table(header, body, right=False)


def _promoted_cell(row: dict) -> str:
    """`#N 0.1234` (trial, full-data fitness) of the study's latest promotion, '-' when none."""
    from automl.study import latest_promotion, open_study

    record = latest_promotion(open_study(row["study"], row["storage"], create=False))
    if not record:
        return "-"
    fitness = record.get("fitness")
    return f"#{record['trial']} " + ("?" if fitness is None else f"{fitness:.4f}")


def promote(**kwargs):
    """Train a study's best (or chosen) trial on the full data; see `automl.promote.promote`."""
    from automl.promote import promote as _promote

    return _promote(**kwargs)


def tune_thresholds(**kwargs):
    """Sweep NMS IoU x confidence on cached raw predictions; see `automl.thresholds.tune_thresholds`."""
    from automl.thresholds import tune_thresholds as _tune

    return _tune(**kwargs)
