"""A search decided before it runs: flags + data + space -> a `SearchPlan`.

`resolve_search` is a pure function: it reads only its arguments (and ultralytics' optimizer
rule), writes nothing, and is tested without training anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl import defaults as D
from automl.config import RunSpec, SearchFlags, StudyConfig, training_profile
from automl.errors import ConfigError


@dataclass(frozen=True)
class SearchPlan:
    """Everything a search does, decided before anything runs (see `resolve_search`)."""

    name: str
    config: StudyConfig
    run: RunSpec
    space: Any  # the SearchSpace, ranges for the optimizer that trains
    dataset: Any  # the checked Dataset the mini split is drawn from
    trials: int
    fraction_why: str
    mini_dir: Path
    baseline: dict[str, Any]  # the plain training's values of the space's keys
    start: dict[str, Any]  # ultralytics' default.yaml values of the space's keys (trial #1)
    outside: str | None  # why the plain training is not a point of the space
    concurrency: int
    settings: dict[str, Any]  # the user's training settings (KEY=VALUE, --cfg, the space's fixed)
    cpus: float
    gpus: float
    concurrency_why: str = "--concurrency"
    budget: Any = None  # the BudgetPlan of --budget (automl.searching.budget_plan), or None
    searcher: Any = None  # the SearcherEntry chosen (automl.searching.samplers); its name: config
    pruner: Any = None  # the PrunerEntry chosen (automl.searching.schedulers); its name: config
    autobatch: bool = False  # batch -1 asked (--batch or batch=): ultralytics' AutoBatch


def _demo_or(flags: SearchFlags, dataset) -> str:
    """The default study name's first part: the demo data's name for the model's task (demo,
    demo-seg, ...), else the data.yaml's stem."""
    if not flags.demo:
        return Path(dataset.yaml_path).stem
    from automl.data.demo import demo_name
    from automl.data.tasks import model_task

    return demo_name(model_task(flags.model))


def resolve_search(flags: SearchFlags, *, dataset, space, ultralytics_defaults: Mapping[str, Any],
                   cpu_count: int, gpu_count: int, studies_dir: Path) -> SearchPlan:
    """Decide everything a search does from its flags, its data and its space.

    Pure: reads only its arguments (and ultralytics' optimizer rule), writes nothing.

    Args:
        flags: the user's flags, checked by `check_search`.
        dataset: the checked Dataset the search runs on (its usable images).
        space: the loaded SearchSpace.
        ultralytics_defaults: ultralytics' default training args (its default.yaml).
        cpu_count, gpu_count: what this machine has (trials share them).
        studies_dir: where per-study folders go.

    Raises:
        ConfigError: a space that cannot serve these flags (a grid of a continuous key, ...).
    """
    from automl.data.splits import mini_size
    from automl.fitness import parse_fitness
    from automl.searching.baseline import resolve_auto, trial_fixed
    from automl.searching.fraction import auto_fraction
    from automl.searching.samplers import searcher_entry
    from automl.searching.schedulers import default_pruner, pruner_entry
    from automl.searching.settings import check_against_space, for_trials

    entry = searcher_entry(flags.searcher)
    fit = parse_fitness(flags.fitness)
    epochs, imgsz, batch = training_profile(flags)
    plan_batch = batch
    autobatch = batch == -1
    if batch == -1:  # AutoBatch, as ultralytics does it on the trials' device
        on_gpu = gpu_count > 0 and flags.device != "cpu" and flags.gpus_per_trial != 0
        if not on_gpu:  # its fallback on the CPU: the default batch, known now
            batch = plan_batch = int(ultralytics_defaults["batch"])
    goals = search_goals(flags)
    timed = (flags.train_args or {}).get("time")
    if timed:
        refuse_timed(timed, flags)
    pruner = pruner_entry("none" if goals.multi or timed else flags.pruner
                          if flags.pruner is not None else default_pruner(epochs))

    name = flags.study or f"{_demo_or(flags, dataset)}-{space.name}"
    user = dict(flags.train_args or {})
    check_against_space(user, space)
    # the user's training: the space's fixed args, their KEY=VALUE and --cfg settings over them
    settings = {**space.fixed, **user}
    # run-level args every trial shares, the plain training included (see DEMO_PROFILE)
    run_args: dict[str, Any] = {"batch": batch, **({"nbs": plan_batch if plan_batch > 0 else
                                                     D.DEMO_PROFILE["batch"]} if flags.demo else {})}
    if "nbs" in settings:
        run_args["nbs"] = settings["nbs"]
    nbs = int(run_args.get("nbs", ultralytics_defaults["nbs"]))
    if plan_batch < 1:  # AutoBatch on a GPU picks it as each trial starts; one up to nbs
        plan_batch = nbs  # changes no optimizer step count (ultralytics steps once per nbs)
    fraction = flags.fraction  # read by check_search
    if fraction == D.AUTO:
        fraction, why = auto_fraction(len(dataset.train), epochs=epochs, batch=plan_batch,
                                      nbs=nbs)
    else:
        why = "--fraction"
    # the user's plain `yolo train` on the trial's data: ultralytics' optimizer=auto resolved
    auto = resolve_auto(n_images=mini_size(len(dataset.train), fraction), epochs=epochs,
                        batch=plan_batch, nbs=nbs,
                        nc=1 if settings.get("single_cls") else dataset.nc)
    named = str(settings.get("optimizer", D.AUTO))
    if "optimizer" not in space.keys:  # the ranges for the optimizer that trains
        space = space.for_optimizer(auto.optimizer if named == D.AUTO else named)
    fixed = {**trial_fixed(settings, space.keys, auto), **run_args}
    # `yolo train` with those settings: under optimizer=auto, auto's choice replaces lr0 & co.
    plain = {**settings, **(auto.as_args() if named == D.AUTO else {}), **run_args}
    # a searched model or imgsz starts, for the plain training and trial #1 alike, at the flag's
    run_values = {"model": flags.model, "imgsz": imgsz}
    baseline = {k: run_values[k] if k in run_values else plain.get(k, ultralytics_defaults.get(k))
                for k in space.keys}
    start = {k: run_values[k] if k in run_values else ultralytics_defaults[k]
             for k in space.keys if k in run_values or k in ultralytics_defaults}
    trials = flags.trials if flags.trials is not None else D.TRIALS
    if entry.max_trials is not None:
        trials = min(trials, entry.max_trials(space) + (1 if flags.baseline else 0))

    out_dir = studies_dir / name
    if flags.concurrency is None:
        concurrency, concurrency_why = auto_concurrency(
            trials=trials, cpu_count=cpu_count, gpu_count=gpu_count,
            cpus_per_trial=flags.cpus_per_trial, gpus_per_trial=flags.gpus_per_trial,
            device=flags.device,
            one_at_a_time="--replay" if flags.replay else "--address" if flags.address else None)
    else:
        concurrency, concurrency_why = flags.concurrency, "--concurrency"
    cpus, gpus = trial_resources(
        concurrency=concurrency, cpus_per_trial=flags.cpus_per_trial,
        gpus_per_trial=flags.gpus_per_trial, device=flags.device, cpu_count=cpu_count,
        gpu_count=gpu_count, local=not flags.address and not flags.replay)
    config = StudyConfig(
        space=space.name, space_source=space.source, space_keys=tuple(space.keys), fixed=fixed,
        baseline_fixed=plain, auto_optimizer={**auto.as_args(), "iterations": auto.iterations},
        fitness=fit.spec, searcher=flags.searcher, data=str(dataset.yaml_path), model=flags.model,
        settings=user,
        epochs=epochs, imgsz=imgsz, fraction=fraction, batch=batch, seed=flags.seed,
        pruner=pruner.name, objectives=goals.objectives if goals.multi else None,
        max_size_mb=goals.max_size_mb, max_latency_ms=goals.max_latency_ms)
    run = RunSpec(
        # what make_mini_dataset returns: a data.yaml, or the folder of class folders
        data=str((out_dir / "mini" / ("" if getattr(dataset, "class_folders", False)
                                      else "data.yaml")).resolve()),
        model=flags.model, epochs=epochs,
        imgsz=imgsz, batch=batch, device=flags.device, fitness=fit.spec, fixed=for_trials(fixed),
        baseline_fixed=for_trials(plain), project=str((out_dir / "trials").resolve()),
        threads=max(1, int(cpus)), keep_weights=flags.keep_weights,
        min_batch=flags.min_batch, measure=bool(goals.measures),
        replay=str(Path(flags.replay).resolve()) if flags.replay else None,
        replay_epoch_seconds=flags.replay_epoch_seconds)
    return SearchPlan(name=name, config=config, run=run, space=space, dataset=dataset,
                      trials=trials,
                      fraction_why=why, mini_dir=out_dir / "mini", baseline=baseline, start=start,
                      outside=outside_space(space, fixed, plain, baseline, ultralytics_defaults),
                      concurrency=concurrency, cpus=cpus, gpus=gpus,
                      concurrency_why=concurrency_why, settings=settings, searcher=entry,
                      pruner=pruner, autobatch=autobatch)


def refuse_timed(hours: float, flags: SearchFlags) -> None:
    """`time=`: a trial trains that long, its epochs re-estimated from its own speed; what counts
    in epochs (a pruner's rungs, --budget's plan) cannot serve it.

    Raises:
        ConfigError: naming the flag that cannot go with time= and what to do instead.
    """
    if flags.pruner not in (None, "none"):
        raise ConfigError(f"time={hours} and --pruner {flags.pruner}: with time= each trial "
                          "trains that long and its epochs vary with its speed, so rungs in "
                          "epochs compare unlike trainings; leave --pruner out (none with time=)")
    if flags.budget is not None:
        raise ConfigError(f"time={hours} and --budget {flags.budget}: give one of them (time= "
                          "sets each trial's time, --budget the whole search's)")
    measured = [f"--{k.replace('_', '-')}" for k in ("objectives", "max_size_mb", "max_latency_ms")
                if getattr(flags, k) not in (None, "fitness")]
    if measured:
        raise ConfigError(f"time={hours} and {measured[0]}: the trained weights are measured after "
                          "epoch --epochs, which time= moves; give one of them")


def with_settings(flags: SearchFlags) -> SearchFlags:
    """The flags with the user's `yolo train` settings read and checked (automl.searching.settings):
    `train_args` becomes the settings that differ from ultralytics' defaults, and a KEY=VALUE
    that names one of automl's flags (epochs=, model=, ...) sets that flag.

    Raises:
        ConfigError: a setting ultralytics refuses, one automl sets itself, or a KEY=VALUE and
            its flag given with different values.
    """
    from dataclasses import fields, replace

    from automl.searching.settings import merge_flags, read_settings

    settings, as_flags = read_settings(flags.train_args, flags.cfg)
    current = {f.name: getattr(flags, f.name) for f in fields(flags)}
    defaults = {f.name: f.default for f in fields(flags)}
    if "epochs" in as_flags:  # ultralytics accepts epochs=1e2
        as_flags["epochs"] = int(as_flags["epochs"])
    return replace(flags, train_args=settings, **merge_flags(current, as_flags, defaults))


def search_goals(flags: SearchFlags):
    """The search's objectives and caps (automl.objectives.Goals).

    Raises:
        ConfigError: an unknown objective.
    """
    from automl.objectives import Goals, parse_objectives

    return Goals(objectives=parse_objectives(flags.objectives), max_size_mb=flags.max_size_mb,
                 max_latency_ms=flags.max_latency_ms)


def check_search(flags: SearchFlags) -> SearchFlags:
    """Every check of a search's flags, in one place, before anything is loaded or started:
    each option's own (automl.options: ranges, types, registries' names) and those that involve
    several options.

    Returns:
        The flags as checked, `fraction` read (a share, or "auto"): resolve_search takes these.

    Raises:
        ConfigError: the first problem, in one line naming the flag(s) and the fix.
    """
    from dataclasses import asdict, replace

    from automl.options import check, fraction_value
    from automl.searching.samplers import SEARCHERS, searcher_entry
    from automl.searching.schedulers import pruner_entry
    from automl.study import check_storage, check_study_name

    check("search", asdict(flags))
    flags = replace(flags, fraction=fraction_value(flags.fraction))
    entry = searcher_entry(flags.searcher)
    if flags.pruner is not None:
        pruner_entry(flags.pruner)
    if flags.study is not None:
        check_study_name(flags.study)
    if flags.storage is not None:
        check_storage(flags.storage)
    if flags.ga_parent is not None and flags.searcher != "ga":
        raise ConfigError(f"--ga-parent {flags.ga_parent}: applies to --searcher ga only (this "
                          f"search uses {flags.searcher}); leave it out")
    trials = flags.trials if flags.trials is not None else D.TRIALS
    if flags.repeats and not flags.repeats < trials - 1:
        raise ConfigError(f"--repeats {flags.repeats}: must be below --trials - 1 "
                          f"({trials - 1}): the repeats, and the plain training's, are the "
                          "last trials of the budget")
    if flags.budget is not None:
        from automl.searching.budget_plan import check_budget

        check_budget(flags)
    if flags.replay_epoch_seconds and not flags.replay:
        raise ConfigError(f"--replay-epoch-seconds {flags.replay_epoch_seconds}: applies to "
                          "--replay only (a training takes the time it takes); leave it out")
    goals = search_goals(flags)
    if goals.measures and flags.replay:
        raise ConfigError("--replay: a record holds no sizes or latencies; leave out "
                          "--objectives, --max-size-mb and --max-latency-ms")
    if goals.multi and flags.repeats:
        raise ConfigError(f"--repeats {flags.repeats}: repeats rank trials by fitness alone; "
                          "a multi-objective study keeps its whole front (leave --repeats out)")
    if goals.multi and not entry.multi_objective:
        raise ConfigError(f"--searcher {flags.searcher}: cannot drive a multi-objective study "
                          f"(--objectives {','.join(goals.objectives)}); use one of "
                          f"{', '.join(n for n, e in SEARCHERS.items() if e.multi_objective)} "
                          "(tpe: multi-objective TPE, nsga2: NSGA-II)")
    if goals.multi and flags.pruner not in (None, "none"):
        raise ConfigError(f"--pruner {flags.pruner}: pruning judges fitness alone, so a "
                          "multi-objective study runs every trial to its end; leave --pruner out")
    return flags


def outside_space(space, fixed: Mapping[str, Any], plain: Mapping[str, Any],
                  baseline: Mapping[str, Any], defaults: Mapping[str, Any]) -> str | None:
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


# --concurrency left out: at most this many trials at once (each holds its own model, data
# loader and torch in memory)
AUTO_CONCURRENCY_MAX = 4


def auto_concurrency(*, trials: int, cpu_count: int, gpu_count: int,
                     cpus_per_trial: float | None, gpus_per_trial: float | None,
                     device: str | None, one_at_a_time: str | None) -> tuple[int, str]:
    """Trials at once when --concurrency is left out, and why (for the search header).

    On the CPU one trial per core (or per --cpus-per-trial cores), each on its own thread: a
    small detector uses a second thread poorly (benchmarks/README.md, "Seconds per epoch"), so
    two 1-thread trials at once train more epochs per second than one 2-thread trial. On a GPU
    one trial per GPU (or per --gpus-per-trial share).
    Never more than a quarter of the budget at once, so that the searcher proposes most trials
    from finished ones (8 trials: 2 at once), nor more than AUTO_CONCURRENCY_MAX. One at a time
    for a replay (deterministic) and on a cluster (--address: its size is not known here).
    """
    if one_at_a_time:
        return 1, f"auto: one at a time with {one_at_a_time}"
    on_gpu = gpu_count > 0 and device != "cpu" and gpus_per_trial != 0
    slots = int(gpu_count / (gpus_per_trial or 1) if on_gpu else cpu_count / (cpus_per_trial or 1))
    unit = "GPU" if on_gpu else "core"
    concurrency = max(1, min(slots, trials // 4, AUTO_CONCURRENCY_MAX))
    return concurrency, (f"auto: one per {unit}, at most a quarter of the {trials} trials and "
                         f"{AUTO_CONCURRENCY_MAX}")


def trial_resources(*, concurrency: int, cpus_per_trial: float | None,
                    gpus_per_trial: float | None, device: str | None, cpu_count: int,
                    gpu_count: int, local: bool) -> tuple[float, float]:
    """CPUs and GPUs per trial: the flags', else this machine's shared by `concurrency`.

    `local`: the trials run on this machine (no --address), so cores, a GPU or a CUDA device
    it lacks are refused here instead of Ray waiting for them for ever.

    Raises:
        ConfigError: more cores or GPUs per trial than the machine has, GPUs asked for on a
            machine without one, or a CUDA index it lacks.
    """
    cpus = cpus_per_trial or max(1, cpu_count // concurrency)
    gpus = (gpus_per_trial if gpus_per_trial is not None
            else min(1.0, gpu_count / concurrency) if gpu_count else 0.0)
    if gpus > 0 and not gpu_count and local:
        raise ConfigError(f"--gpus-per-trial {gpus:g}: this machine has no GPU that torch can "
                          "use; leave the flag out (or 0) to train on the CPU, or join a cluster "
                          "with GPUs (--address)")
    for flag, asked, have, unit in (("--cpus-per-trial", cpus, cpu_count, "CPU cores"),
                                    ("--gpus-per-trial", gpus, gpu_count, "GPUs")):
        if local and asked > have:
            raise ConfigError(f"{flag} {asked:g}: this machine has {have} {unit}, so no trial "
                              f"could ever start; pass at most {have}, or join a cluster with "
                              "larger nodes (--address)")
    if device and local:
        _check_device(device, gpu_count)
    return cpus, gpus


def _check_device(device: str, gpu_count: int) -> None:
    """Refuse CUDA indices this machine does not have (every trial would fail on them)."""
    indices = str(device).lower().removeprefix("cuda:").replace(" ", "").split(",")
    if not all(i.isdigit() for i in indices):
        return  # cpu, mps, ...: ultralytics' own check
    missing = [i for i in indices if int(i) >= gpu_count]
    if missing:
        have = f"GPUs 0-{gpu_count - 1}" if gpu_count > 1 else "GPU 0" if gpu_count else "no GPU"
        raise ConfigError(f"--device {device}: this machine has {have} that torch can use; "
                          "pass an index it has, or --device cpu")
