"""The Python API: `automl.search(...)`, `automl.promote(...)`, ... The CLI is a thin layer over it.

Only the CLI modules and `automl/__init__.py` import this module (tests/test_layers.py): the
modules below it never reach back up.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from automl import defaults as D
from automl.config import SearchFlags
from automl.errors import ConfigError
from automl.results.deployment import deploy
from automl.results.promotion import promote
from automl.results.thresholds import tune_thresholds
from automl.results.validation import validate

# the steps after a search, re-exported as they are (typed, light to import: their heavy imports
# wait inside them)
__all__ = ["FitResult", "SearchResult", "deploy", "export_study", "fit", "promote", "report",
           "search", "status", "studies_table", "tune_thresholds", "validate"]


@dataclass
class SearchResult:
    """What a search leaves behind; everything is derived from the study."""

    study: Any
    best_hyperparameters_path: Path | None = None

    @classmethod
    def load(cls, study: str, *, storage: str | None = None) -> SearchResult:
        """An existing study as a SearchResult (default storage: studies/STUDY.db).

        Raises:
            StudyError: no such study in the storage.
        """
        from automl.study import open_study, study_dir

        the_study = open_study(study, storage, create=False)
        best = study_dir(study) / "best_hyperparameters.yaml"
        return cls(the_study, best if best.is_file() else None)

    @property
    def best(self):
        """The best COMPLETE trial (an optuna FrozenTrial), or None."""
        from automl.study import best_trial

        return best_trial(self.study)

    def to_dataframe(self):
        """All trials as a pandas DataFrame (Optuna's layout: params_*, user_attrs_*)."""
        return self.study.trials_dataframe()


def search(*, log: Callable[[str], None] | None = None, **flags: Any) -> SearchResult:
    """Run (or continue) a hyperparameter search whose every trial is an ultralytics training.

    Takes every `automl search` option as a keyword, with its default; automl.options.SEARCH
    declares each once (the Args below are written from it).

    Args:
        log: where progress lines go (default: stdout).

    Returns:
        A SearchResult over the study.

    Raises:
        AutoMLError: any bad flag, space, fitness or data, before the first trial.
    """
    started = time.monotonic()  # the budget's clock
    unknown = sorted(set(flags) - {f.name for f in fields(SearchFlags)})
    if unknown:
        raise TypeError(f"automl.search() got an unexpected keyword argument {unknown[0]!r}")
    say = log or (lambda line: print(line, flush=True))
    flags = SearchFlags(**flags)
    plan = _plan(flags, say, started)
    the_study = _open(flags, plan, say)
    _run(flags, plan, the_study, say, live=log is None and sys.stdout.isatty(), started=started)
    return _summarise(plan, the_study, say)


def _declared_search() -> None:
    """automl.search's signature and Args, from automl.options.SEARCH."""
    import inspect
    import textwrap

    from automl.options import SEARCH

    keyword = inspect.Parameter.KEYWORD_ONLY
    search.__signature__ = inspect.Signature(
        [*(inspect.Parameter(o.name, keyword, default=o.default, annotation=o.api_annotation())
           for o in SEARCH.options),
         inspect.Parameter("log", keyword, default=None,
                           annotation="Callable[[str], None] | None")],
        return_annotation="SearchResult")
    lines = [textwrap.fill(f"{o.name}: {o.api_help()}", 92, initial_indent=" " * 8,
                           subsequent_indent=" " * 12) for o in SEARCH.options]
    if search.__doc__:  # None under python -OO
        search.__doc__ = search.__doc__.replace("        log: where progress lines go",
                                                "\n".join(lines) + "\n        log: where progress lines go")


_declared_search()


def _plan(flags: SearchFlags, say: Callable[[str], None], started: float = 0.0,
          after: tuple[int, float] = (0, 0.0), *, cpu_count: int | None = None,
          gpu_count: int | None = None, checked: tuple[Any, Any] | None = None):
    """Check the flags, the space and the data, and decide everything (before any study exists).

    `after`: full-data trainings and seconds a budget keeps for after the search (automl fit).
    `checked`: the data as the trials read it and its check report, when already made (automl
    fit's check step), so its images are not checked twice.
    `cpu_count` and `gpu_count` default to this machine's.
    """
    from automl.config import check_model
    from automl.data.checks import refuse_heavy_loss, usable
    from automl.data.demo import ensure_demo_dataset
    from automl.data.tasks import check_space_task, check_task, task_fitness
    from automl.machine import machine_cpus, machine_gpus
    from automl.searching.planning import check_search, resolve_search, with_settings
    from automl.searching.settings import check_pretrained, read_as_trained
    from automl.searching.spaces import load_space, ultralytics_defaults
    from automl.study import STUDIES_DIR

    # the flags first: a typo must not wait for torch to load or demo data to be generated
    flags = check_search(with_settings(flags))
    if flags.replay:  # the recorded trainings' epochs, imgsz and batch unless the flags say
        from automl.execution.record import load_record, replay_space

        recorded = load_record(flags.replay).meta["flags"]
        flags = replace(flags, **{k: recorded[k] for k in ("epochs", "imgsz", "batch")
                                  if getattr(flags, k) is None and k in recorded})
        space = replay_space(flags.replay, flags.space)  # without --space, the record's own
    else:
        space = load_space(flags.space)
    check_model(flags.model)
    check_pretrained(flags.train_args)
    task = check_task(flags.model, None if flags.demo or flags.replay else flags.data)
    flags = replace(flags, fitness=task_fitness(task, flags.fitness, flags.model))
    check_space_task(space, task, flags.model)
    if flags.replay:
        from automl.execution.record import record_dataset

        dataset = record_dataset(load_record(flags.replay))
        say(f"replaying {flags.replay}: nothing trains")
    else:
        data_yaml = ensure_demo_dataset(task=task) if flags.demo else Path(flags.data)
        # as ultralytics reads it: the images it leaves out stay out; none left: an error. With
        # the user's fraction= and single_cls, the images and labels their training reads
        read, report = checked or (read_as_trained(data_yaml, flags.train_args), None)
        dataset, report = usable(read, single_cls=bool(flags.train_args.get("single_cls")),
                                 report=report)
        say(report.headline() if report.clean else f"{report.details(limit=20)}\n{report.summary()}")
        if not flags.drop_bad_images:
            refuse_heavy_loss(report)
        dataset = _as_trained(dataset, flags.train_args, say)
    cpus = machine_cpus() if cpu_count is None else cpu_count
    gpus = machine_gpus() if gpu_count is None else gpu_count

    def resolve(flags: SearchFlags):
        return resolve_search(flags, dataset=dataset, space=space,
                              ultralytics_defaults=ultralytics_defaults(),
                              cpu_count=cpus, gpu_count=gpus, studies_dir=STUDIES_DIR)

    plan = resolve(flags)
    if flags.replay:  # the record must have trained what this search's trials would
        from automl.execution.record import check_record

        check_record(load_record(flags.replay), plan.run)
    if flags.budget is not None:  # the trials, epochs and share that fit, from a timed epoch
        from automl.execution.budget import fit_budget

        plan = fit_budget(flags, resolve, started=started, cpu_count=cpus, gpu_count=gpus,
                          say=say, after=after[0], after_s=after[1])
        say(plan.budget.describe())
    return plan


def _as_trained(dataset, settings: Mapping[str, Any], say: Callable[[str], None]):
    """The dataset as the trials train on it under the user's `classes` and `single_cls`."""
    from automl.data.dataset import as_trained

    classes, single = settings.get("classes"), bool(settings.get("single_cls"))
    if (classes is None and not single) or dataset.class_folders:  # no boxes to keep or merge
        return dataset
    trained = as_trained(dataset, classes=classes, single_cls=single)
    n_all = sum(len(b) for b in dataset.boxes.values())
    n_kept = sum(len(b) for b in trained.boxes.values())
    say(f"trials train on {n_kept} of the {n_all} boxes"
        + (f" (classes={classes} only)" if classes is not None else "")
        + (" as one class (single_cls)" if single else "")
        + ": the mini split stratifies on those")
    return trained


def _open(flags: SearchFlags, plan, say: Callable[[str], None]):
    """Open (or create) the study, check it measures the same thing, queue its first trials."""
    from functools import partial

    from automl import study as studies

    storage_url = flags.storage or studies.default_storage(plan.name)
    the_study = studies.open_study(plan.name, flags.storage, directions=plan.config.goals.directions)
    seed = flags.seed
    if seed is not None:
        # the n-th driver of a study (a resume, a second process) draws from its own stream:
        # the same seed would otherwise propose the configurations already tried
        with studies.trial_slot_lock(storage_url):
            seed = studies.driver_seed(the_study, seed)
    _start_study(the_study, flags, plan, seed=seed,
                 lock=partial(studies.trial_slot_lock, storage_url), say=say)
    return the_study


def _start_study(the_study, flags: SearchFlags, plan, *, seed: int | None,
                 lock: Callable[[], Any], say: Callable[[str], None], sampler=None) -> None:
    """A study's start, the same for a search and its simulation: its sampler (`sampler`, else
    the searcher's), its config stored (a new study) or checked, interrupted trials recovered,
    and a new study's first trials queued (the plain training, ultralytics' default values)."""
    from automl import study as studies
    from automl.console import shown
    from automl.searching.samplers import make_sampler, queue_first_trials
    from automl.searching.settings import differences
    from automl.searching.spaces import ultralytics_defaults

    the_study.sampler = sampler if sampler is not None else make_sampler(
        plan.searcher, plan.space, seed=seed, n_trials=plan.trials, baseline=plan.baseline,
        ga_parent=flags.ga_parent or D.GA_PARENT)
    studies.check_config(the_study, plan.config)
    recovered = studies.recover_interrupted(the_study)
    if recovered:
        say(f"marked interrupted trials {recovered} as FAIL; their configurations run again")
    if flags.baseline:
        with lock():
            queued = queue_first_trials(the_study, plan.searcher, plan.space, plan.baseline,
                                        plan.start, outside=plan.outside, budget=plan.trials)
        if queued:
            plain = {"model": plan.run.model, "epochs": plan.run.epochs,
                     "imgsz": plan.run.imgsz, **plan.config.baseline_fixed}
            say(f"first trial: your plain training, yolo train with "
                f"{shown(differences(plain, ultralytics_defaults()))} (the rest ultralytics' "
                "defaults)"
                + (f"; outside the space ({plan.outside})" if plan.outside else ""))
        if len(queued) > 1:
            say(f"second trial: ultralytics' default values {shown(queued[1])}")
    mine = differences(plan.settings, ultralytics_defaults())
    if mine:
        say(f"your training settings, in every trial and the plain training: {shown(mine)}")


def _run(flags: SearchFlags, plan, the_study, say: Callable[[str], None], live: bool,
         started: float = 0.0) -> None:
    """Write the mini split, print the header, run the trials through Ray Tune."""
    from functools import partial

    from automl import study as studies
    from automl.console import ranges
    from automl.data.splits import make_mini_dataset, mini_size
    from automl.execution.ray_runner import Resources, run_search
    from automl.fitness import parse_fitness
    from automl.results.progress import LiveProgress
    from automl.searching.schedulers import rungs_text
    from automl.searching.settings import training_lines

    config, run, dataset = plan.config, plan.run, plan.dataset
    trainable = {}
    if run.replay:
        from automl.execution.replay import replay_trial

        trainable = {"trainable": replay_trial}
    else:
        make_mini_dataset(dataset, config.fraction, plan.mini_dir, seed=flags.seed or 0)
    storage_url = flags.storage or studies.default_storage(plan.name)
    done_before = len(studies.finished_trials(the_study))
    n_train, n_val = len(dataset.train), len(dataset.val)
    share = (f"all {n_train} train and {n_val} val images" if config.fraction >= 1 else
             f"a stratified {config.fraction:g}: {mini_size(n_train, config.fraction)} of "
             f"{n_train} train and {mini_size(n_val, config.fraction)} of {n_val} val images")
    if dataset.left_out:
        n = len(dataset.left_out)
        share += (f" ({n} listed image{'s are' if n > 1 else ' is'} left out, as ultralytics "
                  "leaves them out; automl check says why)")
    say(f"study '{plan.name}' ({storage_url}): {done_before}/{plan.trials} trials finished; "
        f"searcher {flags.searcher}, space {plan.space.name} ({ranges(plan.space.params)}), "
        f"fitness {parse_fitness(config.fitness).describe()}")
    if done_before >= plan.trials:
        say(f"the study is finished: nothing left to run. For more trials, run the same command "
            f"with a larger --trials (--trials {2 * plan.trials} runs {plan.trials} more); to "
            f"look at it: automl report --study {plan.name}")
        return
    say(f"data {dataset.yaml_path}: trials train on {share} ({plan.fraction_why}), model "
        f"{run.model}, {run.epochs} epochs at {run.imgsz} px, batch {run.batch}, nbs "
        f"{run.fixed.get('nbs', 64)}; optimizer {run.fixed.get('optimizer', 'from the space')}")
    say(f"{plan.concurrency} at a time ({plan.concurrency_why}), {plan.cpus:g} CPU / "
        f"{plan.gpus:g} GPU each; pruner "
        f"{config.pruner}" + (f" ({rungs_text(run.epochs)})" if config.pruner == "asha" else "")
        + (f"; no new trial after {flags.timeout:g} s" if flags.timeout else ""))
    for line in training_lines(plan.settings, model=run.model, epochs=run.epochs,
                               batch=run.batch, autobatch=plan.autobatch,
                               pruner=config.pruner, project=None if run.replay else run.project):
        say(line)
    if flags.seed is not None and plan.concurrency > 1:
        say(f"--seed {flags.seed}: the mini split, the first trials and the searcher's random "
            f"draws repeat; with {plan.concurrency} trials at once, which results a proposal "
            "sees depends on which trial finishes first, so a rerun may propose otherwise "
            "(--concurrency 1 repeats a search exactly on the same machine and threads)")
    if config.goals.measures:
        say(f"{config.goals.describe()}: each trial's trained weights are measured after its "
            f"final epoch (size of the stripped .pt; median CPU latency at batch 1, "
            f"{max(1, int(plan.cpus))} thread(s), "
            + ("the trial's imgsz)" if "imgsz" in plan.space.keys else f"{run.imgsz} px)"))
    # a redrawn table on a terminal when automl prints itself; plain lines into logs and `log`
    progress = LiveProgress(the_study, plan.trials, say, live=live)
    the_study.set_user_attr(studies.BUDGET_ATTR, {"trials": plan.trials,
                                                  "concurrency": plan.concurrency})
    options = dict(resources=Resources(plan.concurrency, plan.cpus, plan.gpus),
                   on_event=progress, address=flags.address, pruner=plan.pruner,
                   storage_url=storage_url, timeout=flags.timeout, goals=config.goals,
                   pace=_pace(plan, started), **trainable)
    try:
        _search_then_repeat(
            the_study, flags, plan,
            lambda n: run_search(the_study, plan.space.distributions(), run, n_trials=n,
                                 **options),
            lock=partial(studies.trial_slot_lock, storage_url), say=say)
    finally:
        progress.close()
    finished = len(studies.finished_trials(the_study))
    if options["pace"] is not None:
        say(options["pace"].ending(finished, plan.trials, time.monotonic() - started))
    if flags.timeout and finished < plan.trials:
        say(f"time budget of {flags.timeout:g} s reached: {finished}/{plan.trials} trials "
            "finished (the same command with a new --timeout continues the study)")


def _search_then_repeat(the_study, flags: SearchFlags, plan, run_trials: Callable[[int], None],
                        *, lock: Callable[[], Any], say: Callable[[str], None]) -> None:
    """The searched trials, then with --repeats the best ones trained once more: the loop a
    search and its simulation share. `run_trials(n)` runs trials until the study holds n."""
    from automl import study as studies

    searching = plan.trials - studies.repeat_slots(flags.repeats, flags.baseline)
    run_trials(searching)
    if flags.repeats and len(studies.finished_trials(the_study)) >= searching:
        with lock():
            again = studies.queue_repeats(the_study, flags.repeats)
        if again:
            say(f"training trials {', '.join(f'#{n}' for n in again)} once more with "
                "training seed 1 (the plain training too, so that means are compared with "
                "means): the best mean wins, not the luckiest training")
        run_trials(plan.trials)


def _pace(plan, started: float):
    """What keeps a budgeted search to its budget (None without --budget)."""
    if plan.budget is None:
        return None
    from automl.execution.budget import Pace

    return Pace.of(plan.budget, started)


def _summarise(plan, the_study, say: Callable[[str], None]) -> SearchResult:
    """The top trials, the gain over the plain training, best_hyperparameters.yaml.

    Raises:
        ConfigError: trials completed but none met the caps (names the closest one).
    """
    from automl import study as studies
    from automl.results.summary import front_table, top_table
    from automl.results.verdicts import baseline_verdict, no_feasible_trial

    result = SearchResult(the_study)
    problem = no_feasible_trial(the_study, plan.config.goals)
    if problem:
        raise ConfigError(problem)
    if result.best is not None:
        result.best_hyperparameters_path = studies.write_best_hyperparameters(
            the_study, studies.study_dir(plan.name) / "best_hyperparameters.yaml")
    say(top_table(the_study))
    if plan.config.goals.multi:
        say(front_table(the_study, plan.config.goals))
    verdict = baseline_verdict(the_study)
    if verdict:
        start = plan.run.model
        say(verdict + (f" (the plain training fine-tunes {start} with your settings)"
                       if start.endswith(".pt") else ""))
    if result.best_hyperparameters_path:
        say(f"best hyperparameters: {result.best_hyperparameters_path}")
    return result


def replay_plan(record_path: str | Path, **flags: Any):
    """The SearchPlan `automl.search(replay=record_path, **flags)` makes, without its files, on
    one CPU (a replay trains nothing). Flags default to those the record was made with
    (epochs, imgsz, batch, data)."""
    return _plan(_replay_flags(record_path, flags), _quiet, cpu_count=1, gpu_count=0)


def _replay_flags(record_path: str | Path, flags: Mapping[str, Any]) -> SearchFlags:
    from automl.execution.record import load_record

    recorded = load_record(record_path).meta["flags"]
    return SearchFlags(**{**recorded, "replay": str(record_path), **flags})


def _quiet(line: str) -> None:
    """A `say` that prints nothing (a simulated search)."""


def simulate_search(record_path: str | Path, *, storage=None, training_seed: int = 0,
                    sampler_factory: Callable[[Any], Any] | None = None, neighbours: int = 1,
                    bandwidth: float = 0.0, **flags: Any):
    """A whole replayed search in this process: `search`'s own plan, study start and trial
    loop, with automl.execution.simulator standing in for Ray Tune at concurrency 1. Returns
    its Optuna study.

    Args:
        record_path: the record to replay.
        storage: an Optuna storage or URL (default: in memory).
        training_seed: the training seed every trial trains with (a real search: 0). Another
            value replays another recorded seed: another draw of the training noise.
        sampler_factory: SearchPlan -> an Optuna sampler, instead of the `searcher` flag's
            (benchmarks: a baseline that automl does not ship).
        neighbours, bandwidth: 1 and 0 replay the nearest recorded configuration; more
            neighbours blend the k nearest, a bandwidth blends all by a Gaussian kernel
            (Record.neighbours).
        flags: `automl.search` flags (searcher, trials, seed, pruner, ...).
    """
    from contextlib import nullcontext

    import optuna

    from automl.execution.simulator import simulate

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search_flags = _replay_flags(record_path, flags)
    plan = _plan(search_flags, _quiet, cpu_count=1, gpu_count=0)
    if training_seed:
        plan = replace(plan, run=replace(plan.run, fixed={**plan.run.fixed, "seed": training_seed},
                                         baseline_fixed={**plan.run.baseline_fixed,
                                                         "seed": training_seed}))
    plan = replace(plan, run=replace(plan.run, replay_neighbours=neighbours,
                                     replay_bandwidth=bandwidth))
    the_study = optuna.create_study(storage=storage, direction="maximize", study_name=plan.name)
    _start_study(the_study, search_flags, plan, seed=search_flags.seed, lock=nullcontext,
                 say=_quiet, sampler=sampler_factory(plan) if sampler_factory else None)
    _search_then_repeat(the_study, search_flags, plan,
                        lambda n: simulate(the_study, plan, n_trials=n), lock=nullcontext,
                        say=_quiet)
    return the_study


def export_study(study: str, *, storage: str | None = None, out: str | Path | None = None) -> dict:
    """Write best_hyperparameters.yaml (ultralytics `cfg=` form) and trials.csv of a study.

    Returns:
        {"best_hyperparameters": path, "trials_csv": path} (the yaml only once a trial completed).
    """
    from automl.study import export_study, open_study, read_once, study_dir

    # trials.csv holds no intermediate values
    the_study = read_once(open_study(study, storage, create=False), intermediate=False)
    return export_study(the_study, out or study_dir(study))


def report(study: str, *, storage: str | None = None, out: str | Path | None = None) -> Path:
    """Write the study's HTML report (default studies/NAME/report.html) and return its path."""
    from automl.results.reporting import write_report
    from automl.study import open_study, read_once, study_dir

    # without the intermediate values: the report reads them for the curves it draws alone
    the_study = read_once(open_study(study, storage, create=False), intermediate=False)
    return write_report(the_study, out or study_dir(study) / "report.html")


def studies_table(storage: str | None = None) -> str:
    """`automl studies`: every study with trial counts, best fitness and latest promotion."""
    from automl.console import studies_table as table
    from automl.study import latest_promotion, list_studies, open_study

    rows = list_studies(storage)
    promoted = {(r["storage"], r["study"]): latest_promotion(open_study(r["study"], r["storage"],
                                                                        create=False))
                for r in rows}
    return table(rows, promoted, storage)


def status(study: str, *, storage: str | None = None) -> str:
    """`automl status`: a study's live progress, from its storage alone (see results.progress.status_text)."""
    from automl.results.progress import status_text
    from automl.study import open_study, read_once

    # a summary suffices: status_text reads the running trials' reports alone
    return status_text(read_once(open_study(study, storage, create=False), intermediate=False))


@dataclass
class FitResult:
    """What `automl fit` leaves in its folder (see automl.results.fitting)."""

    folder: Path
    weights: Path
    summary: dict[str, Any]


def fit(
    *,
    budget: str | float,
    data: str | Path | None = None,
    out: str | Path | None = None,
    study: str | None = None,
    space: str | Path = D.SPACE,
    searcher: str = D.SEARCHER,
    model: str = D.MODEL,
    epochs: int | None = None,
    imgsz: int | None = None,
    batch: int | None = None,
    device: str | None = None,
    seed: int | None = None,
    metric: str = D.THRESHOLD_METRIC,
    formats: str | None = None,
    train_args: Mapping[str, Any] | Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """From data to a deployable model inside one time budget, in one folder.

    The steps (automl.results.fitting.STEPS): check the data; search with `budget`, keeping time
    for two full-data trainings (the search's epoch extrapolated to all images) and the steps
    after; validate the top trials on the full data when the time left allows; promote the
    winner and the plain training on the full data; tune the winner's thresholds for `metric`;
    export it to `formats` (when given); write the report and the summary. Run again after an
    interruption, it goes on from the step it stopped at (steps.json in the folder).

    Args:
        budget: time for all of it ("45m", "2h", ...).
        data, study, space, searcher, model, epochs, imgsz, batch, device, seed, train_args: as
            `search` takes them (epochs: a cap the budget keeps).
        out: the folder (default runs/fit/STUDY; the study defaults to DATA-SPACE).
        metric: what the thresholds are chosen for (`automl thresholds --metric`; default f1).
        formats: onnx, openvino or both: export the final weights and measure them; None: no
            export.
        log: where progress lines go (default: stdout).

    Raises:
        AutoMLError: a bad flag, data or space, before anything is written; a budget too small
            for the search and the trainings after it (naming one that fits).
    """
    from automl.durations import parse_duration
    from automl.options import check
    from automl.outputs import output_folder
    from automl.results.fitting import STATE, StepState, run_steps
    from automl.results.operating_point import parse_metric

    check("fit", locals())
    say = log or (lambda line: print(line, flush=True))
    parse_metric(metric)
    if formats:
        from automl.results.deployment import check_installed, parse_formats

        check_installed(parse_formats(formats), False)
    name = study or f"{Path(data).stem if data is not None else _demo_of(model)}-{Path(str(space)).stem}"
    folder = output_folder(Path(out) if out is not None else Path("runs/fit") / name,
                           marker=STATE)
    settings = {"budget": parse_duration(budget), "data": None if data is None else
                str(Path(data).resolve()), "study": name, "space": str(space),
                "searcher": searcher, "model": model, "epochs": epochs, "imgsz": imgsz,
                "batch": batch, "device": device, "seed": seed, "metric": metric,
                "formats": formats, "train_args": list(train_args) if isinstance(
                    train_args, (list, tuple)) else train_args}
    state = StepState.load(folder, settings)
    flags = SearchFlags(data=data, space=space, searcher=searcher, study=name, seed=seed,
                        model=model, epochs=epochs, imgsz=imgsz, batch=batch, device=device,
                        budget=budget, train_args=train_args)
    steps = _FitSteps(flags, state, folder, say, metric=metric, formats=formats)
    if state.done:
        say(f"fit: going on in {folder} ({', '.join(state.done)} finished, "
            f"{state.spent_s:.0f} s of the budget spent)")
    run_steps(state, steps.table(), say=say)
    summary = state.done["summary"]["summary"]
    return FitResult(folder=folder, weights=Path(summary["weights"]), summary=summary)


def _demo_of(model: str) -> str:
    """The demo data's name for `model`'s task (demo, demo-seg, ...), once the model is checked."""
    from automl.config import check_model
    from automl.data.demo import demo_name
    from automl.data.tasks import model_task

    check_model(model)
    return demo_name(model_task(model))


class _FitSteps:
    """`fit`'s steps, each returning what it left (a JSON-able dict) or None when skipped."""

    def __init__(self, flags: SearchFlags, state, folder: Path, say: Callable[[str], None], *,
                 metric: str, formats: str | None) -> None:
        from automl.durations import parse_duration
        from automl.searching.budget_plan import MARGIN

        self.flags, self.state, self.folder, self.say = flags, state, folder, say
        self.metric, self.formats = metric, formats
        # the budget's clock: the finished steps' seconds are spent
        self.started = time.monotonic() - state.spent_s
        self.budget_s = parse_duration(flags.budget)
        self.checked = None  # (dataset, report) of the check step when it ran in this process
        self.end = self.started + self.budget_s * (1 - MARGIN)

    def table(self) -> dict[str, Callable[[], dict[str, Any] | None]]:
        return {"check": self.check, "search": self.search, "validate": self.validate,
                "promote": self.promote, "plain": self.plain, "thresholds": self.thresholds,
                "deploy": self.deploy, "report": self.report, "summary": self.summary}

    def left(self, name: str) -> dict[str, Any]:
        return self.state.done[name]

    def check(self) -> dict[str, Any]:
        from automl.data.checks import check_dataset
        from automl.data.demo import ensure_demo_dataset
        from automl.data.tasks import model_task
        from automl.searching.settings import read_as_trained, read_settings

        data = (ensure_demo_dataset(task=model_task(self.flags.model)) if self.flags.data is None
                else Path(self.flags.data))
        # the images and labels the trials read (fraction=, single_cls), as the search checks
        settings, _ = read_settings(self.flags.train_args)
        dataset = read_as_trained(data, settings)
        report = check_dataset(dataset, single_cls=bool(settings.get("single_cls")))
        self.checked = (dataset, report)  # the search's plan reads it instead of checking again
        if not report.clean:
            self.say(report.details(limit=20))
        self.say(report.summary())
        return {"data": str(data), "clean": report.clean}

    def search(self) -> dict[str, Any]:
        from optuna.trial import TrialState

        from automl import study as studies
        from automl.execution.budget import TRIAL_OVERHEAD_S
        from automl.results.fitting import after_search_s, training_s

        plan = _plan(self.flags, self.say, self.started,
                     after=(2, after_search_s(self.formats)), checked=self.checked)
        self.folder.mkdir(parents=True, exist_ok=True)  # planned: the fit's folder is made
        self.state.save()
        the_study = _open(self.flags, plan, self.say)
        _run(self.flags, plan, the_study, self.say, live=False, started=self.started)
        result = _summarise(plan, the_study, self.say)
        if result.best is None:
            from automl.results.promotion import PromoteError

            raise PromoteError("fit: no trial completed (every trial failed or was stopped); "
                               "see the errors above")
        b = plan.budget
        whole = [(t.datetime_complete - t.datetime_start).total_seconds()
                 for t in the_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if t.datetime_start and t.datetime_complete]
        return {"trials": len(studies.finished_trials(the_study)), "best": result.best.number,
                "epochs": b.epochs, "fraction": b.fraction, "planned_s": b.eta_s + b.reserve_s,
                "train_s": training_s(epochs=b.epochs, epoch_s=b.epoch_s, fraction=b.fraction,
                                      overhead_s=TRIAL_OVERHEAD_S["train"], trials_s=whole)}

    def validate(self) -> dict[str, Any] | None:
        from automl.results.fitting import after_search_s, choose_validation
        from automl.study import BASELINE_ATTR, open_study, ranked_trials

        searched = self.left("search")
        the_study = open_study(self.flags.study, None, create=False)
        candidates = [t for t, _ in ranked_trials(the_study)
                      if not t.user_attrs.get(BASELINE_ATTR)]
        train_s = searched["train_s"]
        left = self.end - time.monotonic()
        choice = choose_validation(left_s=left, train_s=train_s,
                                   kept_s=2 * train_s + after_search_s(self.formats),
                                   candidates=len(candidates))
        if choice is None:
            self.say(f"fit: no validation on the full data: {left:.0f} s left, ~{train_s:.0f} s "
                     "a full-data training, two of them kept for the promotions")
            return None
        top, seeds = choice
        result = validate(study=self.flags.study, top=top, seeds=seeds, device=self.flags.device,
                          project=self.folder / "validate", log=self.say, live=False)
        v = result.verdict
        return {"top": top, "seeds": seeds, "full_winner": v.full_winner,
                "gain": None if v.gain != v.gain else v.gain}

    def _promoted(self, trial: int | None) -> dict[str, Any]:
        r = promote(study=self.flags.study, trial=trial, device=self.flags.device,
                    project=str(self.folder / "promote"), log=self.say)
        return {"trial": r.trial, "weights": str(r.weights), "fitness": r.fitness,
                "metrics": r.metrics}

    def promote(self) -> dict[str, Any]:
        return self._promoted(None)

    def plain(self) -> dict[str, Any]:
        from automl.study import BASELINE_ATTR, open_study

        the_study = open_study(self.flags.study, None, create=False)
        plain = next((t.number for t in the_study.get_trials(deepcopy=False)
                      if t.user_attrs.get(BASELINE_ATTR)), 0)
        if plain == self.left("promote")["trial"]:
            self.say("fit: the plain training is the winner; it is promoted already")
            return dict(self.left("promote"))
        return self._promoted(plain)

    def thresholds(self) -> dict[str, Any] | None:
        from automl.data.tasks import model_task

        task = model_task(self.flags.model)
        if task != "detect":  # the sweep reads detection outputs (NMS); classify has none
            self.say(f"fit: no thresholds: {self.flags.model} trains task '{task}', and "
                     "thresholds reads detection outputs only")
            return None
        chosen = tune_thresholds(weights=self.left("promote")["weights"],
                                 data=self.left("check")["data"], metric=self.metric,
                                 device=self.flags.device, log=self.say)
        return {"path": str(chosen.yaml_path), "conf": chosen.best_conf, "iou": chosen.best_iou,
                "metric": self.metric, "score": chosen.best_score}

    def deploy(self) -> dict[str, Any] | None:
        if not self.formats:
            return None
        result = deploy(weights=self.left("promote")["weights"], formats=self.formats,
                        data=self.left("check")["data"], study=self.flags.study,
                        thresholds=self.left("thresholds").get("path"), log=self.say)
        return {"exports": {a.name: a.path for a in result.artifacts}}

    def report(self) -> dict[str, Any]:
        return {"path": str(report(self.flags.study, out=self.folder / "report.html"))}

    def summary(self) -> dict[str, Any]:
        import json

        from automl.durations import duration_text
        from automl.results.fitting import comparison, summary_markdown

        spent_s = time.monotonic() - self.started
        tuned, plain = self.left("promote"), self.left("plain")
        validated = self.state.done.get("validate", {})
        steps = {name: None if d.get("skipped") else d["seconds"]
                 for name, d in self.state.done.items()}
        summary = {
            "study": self.flags.study, "data": self.left("check")["data"],
            "budget": duration_text(self.budget_s), "budget_s": self.budget_s,
            "spent": duration_text(spent_s), "spent_s": spent_s,
            "planned": duration_text(self.left("search")["planned_s"]),
            "planned_s": self.left("search")["planned_s"],
            "trial": tuned["trial"], "weights": tuned["weights"],
            "plain_weights": plain["weights"],
            "thresholds": None if self.left("thresholds").get("skipped") else
            self.left("thresholds"),
            "exports": (self.state.done.get("deploy") or {}).get("exports", {}),
            "report": self.left("report")["path"],
            "comparison": comparison({**tuned["metrics"], "fitness": tuned["fitness"]},
                                     {**plain["metrics"], "fitness": plain["fitness"]}),
            "validation": (f"top {validated['top']} x {validated['seeds']} seed(s), winner "
                           f"#{validated['full_winner']}") if "top" in validated else "",
            "steps": steps,
        }
        (self.folder / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        text = summary_markdown(summary)
        (self.folder / "summary.md").write_text(text)
        self.say(text.rstrip())
        return {"summary": summary}
