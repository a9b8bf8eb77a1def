"""`automl validate`: does the mini-data winner win on the full data?

A search ranks configurations on a mini split with short trainings; nothing guarantees the
full data ranks them the same way. Validation trains the study's top K configurations and its
plain training (trial #0) with R training seeds each on the full data the study searched, as
trials of a companion study NAME-validate in the same storage (the dashboard shows it; each
trial links to its searched trial), through the same Ray execution as a search. Then it
measures how well the mini ranking predicted the full one (Spearman and Kendall with a
bootstrap 90% interval), whether the mini winner is the full winner, and what the full winner
gains over the plain training, and stores that verdict on the study (`automl promote` then
promotes the validated winner; the report draws it).

An interrupted validation continues when the same command runs again: finished runs are kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from automl import defaults as D
from automl.errors import ConfigError, StudyError

VALIDATE_DIR = Path("runs/validate")
SUFFIX = "-validate"
MIN_RHO = 0.3  # a Spearman interval reaching below this: the mini ranking is not to be trusted
# what the validation's trainings must share for their results to be compared (resume check)
DEFINING = ("data", "full_data", "model", "epochs", "imgsz", "batch", "fixed", "fitness")


@dataclass(frozen=True)
class Candidate:
    """A searched trial to validate: its number, params, what it scored on the mini data."""

    number: int
    params: dict[str, Any]
    mini: float
    baseline: bool


@dataclass(frozen=True)
class Row:
    """One configuration's results: its mini fitness and its full-data fitness per seed."""

    number: int
    baseline: bool
    mini: float
    full: dict[int, float]  # training seed -> full-data fitness

    @property
    def mean(self) -> float:
        return sum(self.full.values()) / len(self.full) if self.full else math.nan

    @property
    def std(self) -> float:
        if len(self.full) < 2:
            return 0.0 if self.full else math.nan
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.full.values()) / (len(self.full) - 1))


@dataclass(frozen=True)
class Verdict:
    """What a validation found (stored on the study as a dict: `as_dict`)."""

    rows: list[Row]
    spearman: float
    spearman_ci: tuple[float, float]
    kendall: float
    kendall_ci: tuple[float, float]
    mini_winner: int | None
    full_winner: int | None
    baseline: int | None
    gain: float  # full winner's mean minus the plain training's mean (NaN without a baseline)
    wins: int  # seeds where the full winner beat the plain training (same seed)
    compared: int  # seeds both trained
    advice: list[str] = field(default_factory=list)

    @property
    def same_winner(self) -> bool:
        return self.mini_winner is not None and self.mini_winner == self.full_winner

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = [{"number": r.number, "baseline": r.baseline, "mini": r.mini,
                        "full": {str(k): v for k, v in r.full.items()}, "full_mean": r.mean,
                        "full_std": r.std} for r in self.rows]
        out["same_winner"] = self.same_winner
        return out

    def lines(self) -> list[str]:
        """The verdict in words (what the command prints after its table)."""
        def ci(pair) -> str:
            return f"90% interval {pair[0]:.2f}..{pair[1]:.2f}"

        out = [f"mini vs full ranking over {len(self.rows)} configurations: Spearman "
               f"{self.spearman:.2f} ({ci(self.spearman_ci)}), Kendall {self.kendall:.2f} "
               f"({ci(self.kendall_ci)})"]
        if self.full_winner is not None:
            out.append(f"mini winner #{self.mini_winner}, full winner #{self.full_winner}: "
                       + ("the same" if self.same_winner else "different"))
        if self.baseline is not None and self.full_winner is not None:
            if self.full_winner == self.baseline:
                out.append(f"the plain training #{self.baseline} is the full winner")
            elif f"{self.gain:.4f}" in ("0.0000", "-0.0000"):
                out.append(f"full winner #{self.full_winner} ties the plain training "
                           f"#{self.baseline} on the full data: no measurable gain")
            else:
                out.append(f"full winner #{self.full_winner} beats the plain training "
                           f"#{self.baseline} by {self.gain:+.4f} on the full data (wins "
                           f"{self.wins} of {self.compared} seeds)")
        return out + self.advice


def rank_correlations(x, y):
    """Spearman's rho and Kendall's tau-b (as scipy.stats computes them, ties included) of each
    row of `x` against the same row of `y` (arrays (n,) or (draws, n)); NaN where a row is
    constant or shorter than 3. Vectorised: a bootstrap's thousands of draws at once."""
    import numpy as np
    from scipy.stats import rankdata

    x, y = np.atleast_2d(np.asarray(x, float)), np.atleast_2d(np.asarray(y, float))
    if x.shape[1] < 3:
        nan = np.full(x.shape[0], np.nan)
        return nan, nan
    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx, ry = rx - rx.mean(axis=1, keepdims=True), ry - ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry).sum(axis=1) / np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
        sx = np.sign(x[:, :, None] - x[:, None, :])
        sy = np.sign(y[:, :, None] - y[:, None, :])
        tau = (sx * sy).sum(axis=(1, 2)) / np.sqrt(np.abs(sx).sum(axis=(1, 2))
                                                   * np.abs(sy).sum(axis=(1, 2)))
    return rho, tau


def judge(rows: Sequence[Row], *, fraction: float = 0.5, resamples: int = 2000,
          seed: int = 0) -> Verdict:
    """The verdict on validated configurations (pure: reads only its arguments).

    Rank correlations between mini fitness and full-data mean over the configurations with at
    least one full-data result; their 90% intervals from a bootstrap that redraws the
    configurations and, within each, its seeds (both are samples: of the space, of the noise).
    `fraction`: the share of the data the search trained on (the advice differs when it was all
    of it: then only training noise and the schedule can tell mini and full apart).
    A draw whose ranks are all tied says nothing and counts as no correlation (0).
    """
    import numpy as np

    rows = [r for r in rows if r.full and math.isfinite(r.mini)]
    mini = np.array([r.mini for r in rows])
    full = np.array([r.mean for r in rows])
    rho, tau = (float(v[0]) for v in rank_correlations(mini, full))
    intervals = [(math.nan, math.nan)] * 2
    if len(rows) >= 3:
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, len(rows), (resamples, len(rows)))
        runs = [np.array(list(r.full.values())) for r in rows]
        means = np.empty((resamples, len(rows)))
        for j, values in enumerate(runs):  # every configuration's seeds redrawn per draw
            means[:, j] = values[rng.integers(0, len(values), (resamples, len(values)))].mean(1)
        draws = rank_correlations(mini[pick], np.take_along_axis(means, pick, axis=1))
        intervals = [tuple(float(q) for q in np.percentile(np.nan_to_num(d, nan=0.0), [5, 95]))
                     for d in draws]
    spearman_ci, kendall_ci = intervals

    by_mini = max(rows, key=lambda r: (r.mini, -r.number), default=None)
    by_full = max(rows, key=lambda r: (r.mean, -r.number), default=None)
    base = next((r for r in rows if r.baseline), None)
    gain, wins, compared = math.nan, 0, 0
    if base is not None and by_full is not None:
        gain = by_full.mean - base.mean
        common = sorted(set(by_full.full) & set(base.full))
        compared = len(common)
        wins = sum(by_full.full[s] > base.full[s] for s in common)
    advice = []
    if len(rows) < 3:
        advice.append(f"too few configurations ({len(rows)}) to judge the ranking: validate "
                      "with --top 3 or more")
    elif not spearman_ci[0] >= MIN_RHO and fraction < 1:  # NaN too
        advice.append(f"the mini split's ranking does not reliably predict the full data's "
                      f"(Spearman's interval reaches {spearman_ci[0]:.2f} < {MIN_RHO}): search "
                      "with a larger --fraction (e.g. 1), more --epochs, or a smaller space")
    elif not spearman_ci[0] >= MIN_RHO:
        advice.append(f"the search's ranking does not hold on other training seeds (Spearman's "
                      f"interval reaches {spearman_ci[0]:.2f} < {MIN_RHO}; it trained on all "
                      "images, so this is training noise): pick by the mean of several seeds "
                      "(automl search --repeats K), or train longer (--epochs)")
    if base is not None and by_full is not None and (by_full is base or gain <= 0):
        advice.append(f"the plain training #{base.number} wins on the full data: the search "
                      "found nothing better there; keep ultralytics' defaults, or search again "
                      "with a larger --fraction, more --epochs or another --space")
    return Verdict(rows=list(rows), spearman=rho, spearman_ci=spearman_ci, kendall=tau,
                   kendall_ci=kendall_ci, mini_winner=by_mini.number if by_mini else None,
                   full_winner=by_full.number if by_full else None,
                   baseline=base.number if base else None, gain=gain, wins=wins,
                   compared=compared, advice=advice)


def candidates(study, top: int) -> list[Candidate]:
    """The study's `top` best COMPLETE trials (the noise-aware ranking: see
    automl.study.ranked_trials) and its plain training (trial #0) when it completed."""
    from automl.study import BASELINE_ATTR, ranked_trials

    ranked = ranked_trials(study)
    chosen = ranked[:top]
    chosen += [(t, v) for t, v in ranked[top:] if t.user_attrs.get(BASELINE_ATTR)][:1]
    return [Candidate(number=t.number, params=dict(t.params), mini=float(v),
                      baseline=bool(t.user_attrs.get(BASELINE_ATTR))) for t, v in chosen]


def companion_name(study: str) -> str:
    return f"{study}{SUFFIX}"


def _jobs_done(companion) -> dict[tuple[int, int], Any]:
    """(searched trial, seed) -> its trial in the companion that counts: finished, running or
    waiting (an interrupted run's FAIL does not count: it runs again)."""
    from optuna.trial import TrialState

    from automl.study import INTERRUPTED_ATTR, SEED_ATTR, VALIDATES_ATTR

    out = {}
    for t in companion.get_trials(deepcopy=False):
        if VALIDATES_ATTR not in t.user_attrs:
            continue
        if t.state == TrialState.FAIL and t.user_attrs.get(INTERRUPTED_ATTR):
            continue
        key = (int(t.user_attrs[VALIDATES_ATTR]), int(t.user_attrs.get(SEED_ATTR) or 0))
        if key not in out or t.state == TrialState.COMPLETE:
            out[key] = t
    return out


def results(companion, picks: Sequence[Candidate]) -> list[Row]:
    """Each candidate's full-data fitness per seed, from the companion's COMPLETE trials."""
    from optuna.trial import TrialState

    done = _jobs_done(companion)
    rows = []
    for c in picks:
        full = {seed: float(t.value) for (number, seed), t in sorted(done.items())
                if number == c.number and t.state == TrialState.COMPLETE
                and t.value is not None and math.isfinite(t.value)}
        rows.append(Row(number=c.number, baseline=c.baseline, mini=c.mini, full=full))
    return rows


@dataclass
class ValidationResult:
    """What `validate` leaves behind: the companion study and the verdict (also on the study)."""

    study: Any
    companion: Any
    verdict: Verdict


def validate(
    *,
    study: str,
    storage: str | None = None,
    top: int = D.VALIDATE_TOP,
    seeds: int = D.VALIDATE_SEEDS,
    epochs: int | None = None,
    full_data: str = D.FULL_DATA,
    data: str | Path | None = None,
    device: str | None = None,
    concurrency: int = 1,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
    min_batch: int = D.MIN_BATCH,
    address: str | None = None,
    project: str | Path = VALIDATE_DIR,
    log: Callable[[str], None] | None = None,
    live: bool | None = None,
) -> ValidationResult:
    """Train the study's top configurations and its plain training on the full data; judge.

    Args:
        study, storage: the searched study (default storage sqlite:///studies/NAME.db); the
            companion study NAME-validate goes to the same storage.
        top: how many of the best trials (noise-aware ranking); the plain training is added.
        seeds: training seeds 0..seeds-1 per configuration.
        epochs: default the study's; full_data: train or train+val; data: default the data the
            study searched (in full, not its mini split).
        device, concurrency, cpus_per_trial, gpus_per_trial, min_batch, address: as for
            `automl search`.
        project: the trainings' run folders go to PROJECT/NAME-validate (weights not kept).
        log: where progress lines go (default: stdout); live: redraw progress (default: on a terminal when
            automl prints itself).

    Raises:
        StudyError: no such study, or no COMPLETE trial.
        ConfigError: a bad flag or data, or a companion made with other settings.
    """
    from automl import study as studies
    from automl.config import RunSpec
    from automl.data.dataset import load_dataset
    from automl.execution.ray_runner import Resources, run_search
    from automl.machine import machine_cpus, machine_gpus
    from automl.options import check
    from automl.results.progress import LiveProgress
    from automl.results.promotion import full_data_yaml
    from automl.searching.planning import trial_resources

    check("validate", locals())
    say = log or (lambda line: print(line, flush=True))
    if live is None:  # redraw on a terminal when automl prints itself
        import sys

        live = log is None and sys.stdout.isatty()
    url = storage or studies.default_storage(study)
    searched = studies.open_study(study, url, create=False)
    config = studies.study_config(searched)
    picks = candidates(searched, top)
    if not picks:
        raise StudyError(f"study '{study}' has no COMPLETE trial to validate; run `automl search "
                         f"--study {study}` until trials complete")
    data_path = data or config.data
    if not str(data_path or ""):
        raise ConfigError(f"study '{study}' does not record its data; pass --data path/to/data.yaml")
    if data is not None and config.model:  # other data than the study's: of the model's task?
        from automl.data.tasks import check_task

        check_task(config.model, data)
    dataset = load_dataset(Path(data_path))  # ConfigError on a missing or malformed data.yaml
    cpus, gpus = trial_resources(concurrency=concurrency, cpus_per_trial=cpus_per_trial,
                                 gpus_per_trial=gpus_per_trial, device=device,
                                 cpu_count=machine_cpus(), gpu_count=machine_gpus(),
                                 local=not address)
    name = companion_name(study)
    run_dir = (Path(project) / name).resolve()
    settings = {"study": study, "data": str(dataset.yaml_path), "full_data": full_data,
                "model": config.model, "epochs": int(epochs or config.epochs),
                "imgsz": int(config.imgsz), "batch": config.batch, "fixed": dict(config.fixed),
                "fitness": config.fitness}
    companion = studies.open_study(name, url)
    _check_settings(companion, settings, url)
    run = RunSpec(data=str(full_data_yaml(dataset.yaml_path, full_data, run_dir / "data")),
                  model=config.model, epochs=settings["epochs"], imgsz=settings["imgsz"],
                  batch=config.batch, fitness=config.fitness, device=device,
                  fixed=dict(config.fixed), baseline_fixed=dict(config.baseline_fixed or {}),
                  project=str(run_dir), threads=max(1, int(cpus)), keep_weights="none",
                  min_batch=min_batch)
    with studies.trial_slot_lock(url):
        studies.recover_interrupted(companion)
        queued = _queue(companion, picks, seeds)
    jobs = _jobs_done(companion)
    total = len(jobs)
    finished = sum(t.state.is_finished() for t in jobs.values())
    say(f"validating study '{study}' on the full data ({dataset.yaml_path}, {full_data}: "
        f"{len(dataset.train)} train images): trials "
        + ", ".join(f"#{c.number}" + (" (plain training)" if c.baseline else "") for c in picks)
        + f" x {seeds} seeds, {run.epochs} epochs at {run.imgsz} px; {finished}/{total} runs "
        f"finished before, {len(queued)} queued now -> study '{name}' ({url})")
    companion.set_user_attr(studies.BUDGET_ATTR, {"trials": total, "concurrency": concurrency})
    progress = LiveProgress(companion, total, say, live=live)
    distributions = {k: v for c in picks
                     for k, v in _distributions(searched, c.number).items()}
    try:
        run_search(companion, distributions, run, n_trials=total,
                   resources=Resources(concurrency, cpus, gpus), on_event=progress,
                   address=address, pruner="none", storage_url=url)
    finally:
        progress.close()
    # a search on every image with the same epochs differs from its validation only by noise
    same_schedule = settings["epochs"] == config.epochs
    verdict = judge(results(companion, picks),
                    fraction=float(config.fraction or 1.0) if same_schedule else 0.0)
    searched.set_user_attr(studies.VALIDATION_ATTR, {
        **verdict.as_dict(), "settings": {k: v for k, v in settings.items() if k != "fixed"}
        | {"top": top, "seeds": seeds, "companion": name},
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    say(table(verdict))
    for line in verdict.lines():
        say(line)
    return ValidationResult(study=searched, companion=companion, verdict=verdict)


def _distributions(study, number: int) -> dict[str, Any]:
    return dict(next(t for t in study.get_trials(deepcopy=False) if t.number == number)
                .distributions)


def _check_settings(companion, settings: Mapping[str, Any], url: str) -> None:
    """Record the validation's settings on a new companion; refuse to mix in other settings."""
    from automl.study import CONFIG_ATTR

    stored = companion.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        companion.set_user_attr(CONFIG_ATTR, {**settings, "fraction": 1.0, "space": "validate",
                                              "space_keys": []})
        return
    for key in DEFINING:
        if key in stored and stored[key] != settings[key]:
            flag = {"data": "--data", "full_data": "--full-data", "epochs": "--epochs"}.get(key)
            fix = f"pass {flag} {stored[key]} to continue it" if flag else "it was made before " \
                "the study changed"
            raise ConfigError(
                f"validation '{companion.study_name}' trained with {key}={stored[key]!r}, not "
                f"{settings[key]!r}: {fix}, or delete it first (optuna delete-study "
                f"--study-name {companion.study_name} --storage {url})")


def _queue(companion, picks: Sequence[Candidate], seeds: int) -> list[tuple[int, int]]:
    """Queue each (candidate, seed) run the companion does not hold yet; the caller holds the
    trial-slot lock."""
    from automl.study import BASELINE_ATTR, SEED_ATTR, VALIDATES_ATTR

    have = _jobs_done(companion)
    queued = []
    for c in picks:
        for seed in range(seeds):
            if (c.number, seed) in have:
                continue
            attrs = {VALIDATES_ATTR: c.number, SEED_ATTR: seed, "mini_fitness": c.mini}
            if c.baseline:
                attrs[BASELINE_ATTR] = True
            companion.enqueue_trial(dict(c.params), user_attrs=attrs)
            queued.append((c.number, seed))
    return queued


def table(verdict: Verdict) -> str:
    """Per configuration: mini fitness, full-data mean and std, seeds; best on the full data first."""
    from automl.console import text_table

    rows = sorted(verdict.rows, key=lambda r: (-r.mean, r.number))
    return text_table(
        ["trial", "mini fitness", "full mean", "full std", "seeds"],
        [[f"#{r.number}" + (" (plain)" if r.baseline else ""), f"{r.mini:.4f}", f"{r.mean:.4f}",
          f"{r.std:.4f}", str(len(r.full))] for r in rows])
