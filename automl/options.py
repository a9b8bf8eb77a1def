"""Every option of every `automl` command, declared once: name, type, default, help and check.

The command line's parsers are built from these declarations (automl.cli), the API's keyword
arguments carry the same names and defaults (tests/test_options.py holds `automl.search`'s
signature and SearchFlags to them), and `check` runs each option's own check in one place: a
value out of range ends in one line naming the flag, the value and the fix. Help texts that list
searchers or pruners name their registry, which the command line fills in; fitness presets
and metrics are read from automl.fitness.

Checks that involve several options or the data (a searcher that cannot drive several
objectives, --repeats against --trials) stay with the step that decides them (automl.searching.planning).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from automl import defaults as D
from automl.errors import ConfigError

Check = Callable[[Any], "str | None"]  # value -> what is wrong with it ("must be ..."), or None


@dataclass(frozen=True)
class Option:
    """One option of one command.

    Attributes:
        name: the keyword argument (`cpus_per_trial`); the flag is `--cpus-per-trial`.
        help: the help text, or a function of nothing that writes it (registries).
        type: what the command line parses the value with (None for a switch).
        default: the value when the option is left out (the API's default too).
        check: what must hold of a given value (None: anything the type accepts).
        flag: the command-line flag when it is not derived from the name.
        switch: "on" (--x sets True) or "off" (--no-x sets False) for boolean options.
        required, nargs, metavar, choices: as argparse's.
        registry: the registry whose names the help lists at `{registry}` ("samplers",
            "schedulers").
        annotation: the API keyword's type, as text, where the parser's does not say it (a
            path or a mapping the API also takes).
    """

    name: str
    help: str | Callable[[], str]
    type: Callable[[str], Any] | None = str
    default: Any = None
    check: Check | None = None
    flag: str | None = None
    switch: str | None = None
    required: bool = False
    nargs: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    registry: str | None = None
    annotation: str | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def help_text(self, registries: Mapping[str, Mapping[str, Any]] | None = None) -> str:
        """The help, with `{registry}` written as the named registry's names and help lines
        (the command line passes the registries: they live in the layers above this one)."""
        text = self.help() if callable(self.help) else self.help
        if self.registry and registries is not None:
            entries = registries[self.registry]
            text = text.format(registry="; ".join(f"{name}: {entry.help}"
                                                  for name, entry in entries.items()))
        elif self.registry:
            text = text.format(registry=f"a name in automl.searching.{self.registry}'s registry")
        return text

    def api_annotation(self) -> str:
        """The API keyword's type, as text (SearchFlags and automl.search are made from it)."""
        if self.annotation:
            return self.annotation
        base = "bool" if self.type is None else {int: "int", number: "float"}.get(self.type, "str")
        return base if self.default is not None else f"{base} | None"

    def api_help(self) -> str:
        """The help as the API's docstring shows it: argparse's placeholders written out, and a
        switch named by its keyword's value."""
        text = self.help_text().replace("%(default)s", str(self.default)).replace("%%", "%")
        return f"False is {self.cli_flag}: {text}" if self.switch == "off" else text


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    options: tuple[Option, ...]

    def option(self, name: str) -> Option:
        return next(o for o in self.options if o.name == name)


# --- checks ------------------------------------------------------------------------------------

def at_least(low: float) -> Check:
    return lambda v: None if v is None or v >= low else f"must be at least {low:g}"


def above(low: float, why: str = "") -> Check:
    return lambda v: None if v is None or v > low else f"must be > {low:g}{why}"


def seed(v: Any) -> str | None:
    """A seed: numpy's and Optuna's samplers take 0..2**32-1."""
    return None if v is None or 0 <= v < 2**32 else f"must be in 0..{2**32 - 1}"


def cap(v: Any) -> str | None:
    """A cap on a trial's size or latency."""
    return (None if v is None or (math.isfinite(v) and v > 0) else
            "must be a positive number (leave it out for no cap)")


def share(v: Any) -> str | None:
    """A share in (0, 1]."""
    return None if v is None or 0 < v <= 1 else "must be in (0, 1]; 1 uses all images"


def open_share(v: Any) -> str | None:
    return None if v is None or 0 < v < 1 else "must be in (0, 1)"


def not_empty(v: Any) -> str | None:
    return None if v is None or str(v).strip() else "must not be empty"


def plain_text(v: Any) -> str | None:
    """What every text option must be: not empty, and free of control characters and of bytes
    that are not UTF-8 (argv's surrogates), which no name, path, URL or expression holds."""
    import unicodedata

    if v is None:
        return None
    text = str(v)
    if not text.strip():
        return "must not be empty"
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        return ("holds control characters or bytes that are not UTF-8; type it plainly (rename "
                "a file whose name is not UTF-8)")
    # file names are made from these (studies/NAME-validate.db.automl-schema.lock): room is left
    # within the file system's 255 bytes a name and 4096 a path
    if len(text.encode()) > 3800 or any(len(part.encode()) > 200 for part in text.split("/")):
        return "is too long (at most 200 bytes between slashes, 3800 in all)"
    return None


def shown(value: Any) -> str:
    """A value as a one-line message shows it: as given, or quoted and escaped when it is empty
    or holds what would break the line (or the terminal's encoding)."""
    text = str(value)
    return text if text and text.isprintable() and text == text.strip() else repr(text)


def number(text: str) -> float:
    """A float the command line accepts: nan and inf mean nothing here."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def fraction_value(value: float | str) -> float | str:
    """`--fraction`: a share in (0, 1], or 'auto'."""
    if isinstance(value, str):
        if value.strip().lower() == D.AUTO:
            return D.AUTO
        try:
            return number(value)
        except ValueError:
            raise ConfigError(f"--fraction {value}: use a share in (0, 1] or 'auto'") from None
    return float(value)


def _fraction(v: Any) -> str | None:
    try:
        v = fraction_value(v)
    except ConfigError:
        return "use a share in (0, 1] or 'auto'"
    return None if v == D.AUTO or 0 < v <= 1 else "must be in (0, 1] (1 uses all images) or auto"


def _duration(v: Any) -> str | None:
    from automl.durations import parse_duration

    try:
        parse_duration(v) if v is not None else None
    except ValueError:
        return "use a duration such as 45m, 2h, 1h30m or 90s"
    return None


def _keep_weights(v: Any) -> str | None:
    return None if v in D.KEEP_WEIGHTS_MODES else f"choose one of {', '.join(D.KEEP_WEIGHTS_MODES)}"


def parser_check(parse: Callable[[Any], Any]) -> Check:
    """The check of an option whose value a parser reads: what the parser says is wrong with
    it (its ValueError, automl's errors included), or None."""
    def check(v: Any) -> str | None:
        if v is None:
            return None
        try:
            parse(v)
        except ValueError as e:
            return str(e)
        return None

    return check


def _fitness_help() -> str:
    from automl.fitness import (
        CLS_METRICS,
        DEFAULT,
        DEFAULT_BY_TASK,
        MASK_METRICS,
        METRICS,
        POSE_METRICS,
        PRESETS,
    )

    def written(weights: Mapping[str, float]) -> str:
        return "+".join(f"{w:g}*{m}" if w != 1 else m for m, w in weights.items())

    presets = " | ".join(name if written(w) == name else f"{name} ({written(w)})"
                         for name, w in PRESETS.items())
    return (f"{presets} | a weighted sum of {', '.join(METRICS)} (segment models also "
            f"{', '.join(MASK_METRICS)}; pose models also {', '.join(POSE_METRICS)}; classify "
            f"models only {', '.join(CLS_METRICS)}) such as 0.2*map50+0.8*map75 (default: "
            f"{DEFAULT}; segment models: {DEFAULT_BY_TASK['segment']}; pose models: "
            f"{DEFAULT_BY_TASK['pose']}; classify models: {DEFAULT_BY_TASK['classify']})")


# --- shared options ----------------------------------------------------------------------------

STORAGE = Option("storage", "Optuna storage URL (default: sqlite:///studies/NAME.db)")
STUDY = Option("study", "study name", required=True)
DEVICE = Option("device", "ultralytics device, e.g. cpu, 0 (default: auto)")
CONCURRENCY_HELP = ("trials at once (default: one per core on the CPU, one per GPU, at most a "
                    "quarter of --trials and 4)")
# the smallest share of a CPU or GPU Ray schedules (it counts resources in ten-thousandths)
RAY_SHARE = 0.0001
MIN_BATCH = Option("min_batch", "out of memory: a training starts again at half its batch, "
                   "down to this (default: %(default)s)", type=int, default=D.MIN_BATCH,
                   check=at_least(1))
CPUS = Option("cpus_per_trial", "CPU cores per trial (default: all cores / concurrency)",
              type=number, check=lambda v: None if v is None or v >= RAY_SHARE else
              f"must be at least {RAY_SHARE:g} (fractions such as 0.5 share a core)")
GPUS = Option("gpus_per_trial", "GPUs per trial, fractions share a GPU (default: GPUs / "
              "concurrency, 0 without)", type=number,
              check=lambda v: None if v is None or v == 0 or v >= RAY_SHARE else
              f"must be 0 or at least {RAY_SHARE:g} (fractions such as 0.25 share a GPU)")
def ray_address(v: Any) -> str | None:
    if v is None:
        return None
    if not str(v).strip():
        return "must not be empty"
    if str(v).startswith("ray://"):
        # Ray Client runs Tune's driver on the cluster, away from the study this process holds
        return ("Ray Client addresses are not supported (Tune would drive the trials away from "
                "the study); run automl on a node of the cluster with --address HOST:PORT")
    return None


ADDRESS = Option("address", "join this Ray cluster (auto | HOST:PORT of its head)",
                 check=ray_address)
FULL_DATA = Option("full_data", "train on train, or on train+val images (default: %(default)s)",
                   default=D.FULL_DATA, choices=D.FULL_DATA_MODES)


def grid_values(values: Iterable[str | float]) -> list[float]:
    """Thresholds given as `0.1 0.2` or `0.1,0.2` (or as numbers), each in (0, 1).

    Raises:
        ValueError: what is wrong with them, in words.
    """
    out: list[float] = []
    for item in values:
        for part in item.split(",") if isinstance(item, str) else [item]:
            if isinstance(part, str) and not part.strip():
                continue
            try:
                value = float(part)
            except (TypeError, ValueError):
                raise ValueError(f"{part!r}: not a number; give values in (0, 1) such as "
                                 "0.5 0.6 0.7") from None
            if not 0 < value < 1:
                raise ValueError(f"{value:g}: every value must be in (0, 1), e.g. 0.001 for "
                                 "conf or 0.7 for IoU")
            out.append(value)
    if not out:
        raise ValueError("empty; give at least one value in (0, 1)")
    return out


def parse_grid(values: Iterable[str | float] | None, flag: str,
               default: Sequence[float]) -> tuple[float, ...]:
    """Grid values from the CLI or the API, sorted (`default` when left out).

    Raises:
        ConfigError: a value that is not a number or lies outside (0, 1).
    """
    if values is None:
        return tuple(default)
    try:
        return tuple(sorted(set(grid_values(values))))
    except ValueError as e:
        raise ConfigError(f"{flag} {e}") from None


def _grid_option(name: str, help_text: str) -> Option:
    return Option(name, help_text, nargs="+", metavar=name[0].upper(),
                  check=parser_check(grid_values))


CONF_GRID = _grid_option("conf_grid", "confidence thresholds in (0, 1), e.g. 0.001 0.01 0.1 or "
                         "0.001,0.01 (default: 10 values from 0.001 to 0.35)")
IOU_GRID = _grid_option("iou_grid", "NMS IoU thresholds in (0, 1) (default: 0.4 to 0.85 in steps "
                        "of 0.05)")
THRESHOLD_METRIC = Option("metric", "what the model is for. Deployed, judged on the boxes kept: "
                          "f1 (default) | precision@recall=R | recall@precision=P. Ranked: "
                          "fitness (0.1*map50+0.9*map50_95) | map50_95 | map75 | map50 | an "
                          "expression such as 0.5*map75+0.5*map50", default=D.THRESHOLD_METRIC)
PER_CLASS = Option("per_class", "also choose one conf per class (at the chosen IoU), written to "
                   "thresholds.yaml", type=None, default=False, switch="on")
FOLDS = Option("folds", "thresholds chosen on K-1 folds of the images, measured on the one left "
               "out, in turn: the held-out figures (default: %(default)s)", type=int,
               default=D.THRESHOLD_FOLDS,
               check=at_least(2))

# --- the commands ------------------------------------------------------------------------------

SEARCH = Command("search", "run or continue a search (trials via Ray Tune, record in Optuna)", (
    Option("data", "data.yaml, or a folder of class folders for a classify model (default: the "
           "built-in demo data of the model's task)", check=not_empty,
           annotation="str | Path | None"),
    Option("space", f"built-in space name or a YAML path (default: {D.SPACE})", default=D.SPACE,
           annotation="str | Path",
           check=not_empty),
    Option("searcher", f"{{registry}} (default: {D.SEARCHER})", default=D.SEARCHER,
           registry="samplers"),
    Option("trials", f"trials in the study in total, earlier runs included (default: "
           f"{D.TRIALS}; with --budget: as many as fit)", type=int, check=at_least(1)),
    Option("fitness", _fitness_help),
    Option("study", "study name (default: DATA-SPACE, e.g. demo-lr_momentum; demo-seg-... for "
           "a segment model)", check=not_empty),
    Option("storage", "Optuna storage URL (default: sqlite:///studies/NAME.db)", check=not_empty),
    Option("seed", "repeats the mini split and the searcher's draws; a whole search repeats "
           "exactly with --concurrency 1 (with trials at once, proposals depend on which trial "
           "finishes first)", type=int, check=seed),
    Option("concurrency", CONCURRENCY_HELP, type=int,
           check=lambda v: None if v is None or v >= 1 else
           "must be at least 1 (leave it out for one per core)"),
    CPUS, GPUS,
    Option("fraction", "stratified share of train and of val per trial, or auto (default): half, "
           "unless that leaves a trial under 100 optimizer steps (small data: more, up to all "
           "images)", default=D.FRACTION, check=_fraction,
           annotation="float | str"),
    Option("model", "model YAML or local .pt (default: %(default)s)", default=D.MODEL,
           check=not_empty),
    Option("epochs", f"epochs per trial (default: {D.EPOCHS}; demo data: "
           f"{D.DEMO_PROFILE['epochs']})", type=int, check=at_least(1)),
    Option("imgsz", f"training image size (default: {D.IMGSZ}; demo data: "
           f"{D.DEMO_PROFILE['imgsz']})", type=int, check=at_least(32)),
    Option("batch", f"batch size, or -1 for ultralytics' AutoBatch (default: {D.BATCH}; demo "
           f"data: {D.DEMO_PROFILE['batch']})", type=int,
           check=lambda v: None if v is None or v >= 1 or v == -1 else
           "must be at least 1, or -1 for ultralytics' AutoBatch"),
    MIN_BATCH,
    DEVICE,
    Option("ga_parent", "GA parent selection: single | weighted (default: single; --searcher ga "
           "only)", choices=D.GA_PARENT_MODES),
    Option("pruner", "early stopping: {registry} (default: asha when the epochs allow two rungs, "
           "else none; no pruner stops a trial while fitness cannot tell trials apart)",
           registry="schedulers"),
    ADDRESS,
    Option("baseline", "do not make your plain training (yolo train with these flags) trial "
           "#0 of a new study, nor ultralytics' default values trial #1", type=None, default=True,
           switch="off", flag="--no-baseline"),
    Option("timeout", "seconds after which no new trial starts; running ones finish (--trials "
           "stays the cap)", type=number,
           check=lambda v: None if v is None or v > 0 else
           "must be > 0 seconds (leave it out for no time limit)"),
    Option("repeats", "the last K trials train the K best, and the plain training, once more "
           "with another training seed; the best mean wins (default: 0)", type=int, default=0,
           check=at_least(0)),
    Option("keep_weights", "which finished trials keep their weights: best (default: only the "
           "study's best trial, replaced when a better one completes), all, none",
           default=D.KEEP_WEIGHTS, check=_keep_weights),
    Option("replay", "replay a record of learning curves (benchmarks/records/*.npz) instead of "
           "training: searcher and pruner studies in seconds; without --space, the "
           "record's own space", check=not_empty,
           annotation="str | Path | None"),
    Option("objectives", "fitness (default), or fitness,latency | fitness,size | "
           "fitness,latency,size: a multi-objective study over fitness and the trained weights' "
           "CPU latency or size (no pruning); the summary and the report show its Pareto front"),
    Option("max_size_mb", "trials whose trained weights (stripped .pt) are larger are "
           "infeasible: never the best, never a GA parent (e.g. 100, an edge device's cap)",
           type=number, check=cap),
    Option("max_latency_ms", "trials whose median CPU latency at batch 1 (measured after the "
           "final epoch, on the trial's threads) is higher are infeasible", type=number,
           check=cap),
    Option("replay_epoch_seconds", "with --replay: each replayed epoch takes this long, a "
           "stand-in for training time (scale benchmarks; default: 0)", type=number, default=0.0,
           check=at_least(0)),
    Option("budget", "time for the whole search, e.g. 45m, 2h, 1h30m, 90s: automl times one "
           "epoch, then plans the trials, epochs, share and trials at once that fit, and ends "
           "inside it (--trials and --epochs stay caps)", metavar="DURATION", check=_duration,
           annotation="str | float | None"),
    Option("drop_bad_images", "search even when ultralytics would leave out more than 5%% of "
           "the images (automl check says why); without it the search stops first", type=None,
           default=False, switch="on"),
    Option("cfg", "a yolo train cfg= YAML of your training settings (your own, or a "
           "best_hyperparameters.yaml); KEY=VALUE settings go over it", check=not_empty,
           annotation="str | Path | None"),
    Option("train_args", "your yolo train settings, as yolo train takes them (cos_lr=True "
           "close_mosaic=5 freeze=10 ...): every trial trains with them, the plain training "
           "(trial #0) included", flag="train_args", nargs="*", metavar="KEY=VALUE",
           annotation="Mapping[str, Any] | Sequence[str] | None"),
))

PROMOTE = Command("promote", "train a study's best trial on the full data", (
    STUDY, STORAGE,
    Option("trial", "trial number to promote (default: the validated winner, else the best "
           "COMPLETE trial)", type=int, check=at_least(0)),
    Option("data", "data.yaml (default: the data the study searched on, in full)",
           check=not_empty),
    FULL_DATA,
    Option("epochs", "default: the study's epochs", type=int, check=at_least(1)),
    Option("model", "model YAML or local .pt (default: the study's)", check=not_empty),
    Option("imgsz", "default: the study's imgsz", type=int, check=at_least(32)),
    Option("batch", "default: the study's batch", type=int, check=at_least(1)),
    MIN_BATCH,
    DEVICE,
    Option("project", "runs go to PROJECT/STUDY-trialN (default: %(default)s)",
           default="runs/promote", check=not_empty),
    Option("tune_thresholds", "then tune NMS IoU and conf on best.pt (see automl thresholds)",
           type=None, default=False, switch="on"),
    THRESHOLD_METRIC, PER_CLASS, FOLDS, CONF_GRID, IOU_GRID,
))

VALIDATE = Command("validate", "train a study's top trials and its plain training on the full "
                               "data: does the mini winner win?", (
    STUDY,
    Option("storage", "Optuna storage URL (default: sqlite:///studies/NAME.db); the validation "
           "goes to the study NAME-validate there"),
    Option("top", "how many of the best trials (noise-aware where --repeats ran); the plain "
           "training #0 is added (default: %(default)s)", type=int, default=D.VALIDATE_TOP,
           check=at_least(1)),
    Option("seeds", "training seeds per configuration (default: %(default)s)", type=int,
           default=D.VALIDATE_SEEDS, check=at_least(1)),
    Option("epochs", "default: the study's epochs", type=int, check=at_least(1)),
    FULL_DATA,
    Option("data", "data.yaml (default: the data the study searched on, in full)",
           check=not_empty),
    DEVICE,
    Option("concurrency", "trainings at once (default: 1)", type=int, default=1,
           check=at_least(1)),
    Option("cpus_per_trial", "CPU cores per training (default: all cores / concurrency)",
           type=number, check=CPUS.check),
    Option("gpus_per_trial", "GPUs per training, fractions share a GPU (default: GPUs / "
           "concurrency)", type=number, check=GPUS.check),
    MIN_BATCH,
    ADDRESS,
))

DEPLOY = Command("deploy", "export weights (ONNX, OpenVINO; fp32 and int8) and measure size, CPU "
                           "latency and accuracy of each", (
    Option("weights", "trained detection weights (.pt)", required=True, check=not_empty),
    Option("formats", "onnx, openvino or both: onnx,openvino (default: %(default)s)",
           default="onnx"),
    Option("int8", "also export int8, calibrated on the data's training images", type=None,
           default=False, switch="on"),
    Option("data", "data.yaml: val measures accuracy, train calibrates int8 (default: the data "
           "the weights were trained on)", check=not_empty),
    Option("imgsz", "default: the weights' training imgsz", type=int, check=at_least(32)),
    Option("threads", "CPU threads for the latency runs (default: all cores)", type=int,
           check=at_least(1)),
    Option("runs", "timed runs per artifact (default: %(default)s)", type=int, default=50,
           check=at_least(1)),
    Option("study", "record the table on this study's promotion of the weights (default: from "
           "the run folder's name, runs/promote/STUDY-trialN)", check=not_empty),
    Option("storage", "the study's storage URL"),
    Option("thresholds", "thresholds.yaml from automl thresholds: also measure precision, "
           "recall and F1 at its thresholds, per class when it holds them (default: the one "
           "beside the weights, if any)", check=not_empty),
))

THRESHOLDS = Command("thresholds", "tune NMS IoU and confidence thresholds from cached "
                                   "predictions", (
    Option("weights", "trained detection weights (.pt)", required=True, check=not_empty),
    Option("data", "data.yaml", required=True, check=not_empty),
    Option("split", "split to measure on (default: %(default)s)", default="val",
           choices=("train", "val", "test")),
    Option("imgsz", "default: the weights' training imgsz", type=int, check=at_least(32)),
    Option("batch", "validation batch (default: 16, as model.val)", type=int, check=at_least(1)),
    DEVICE, THRESHOLD_METRIC, PER_CLASS, FOLDS, CONF_GRID, IOU_GRID,
))

CHECK = Command("check", "validate every image and label as ultralytics reads them; exit 1 if "
                         "anything is wrong", (
    Option("data", "data.yaml, or a folder of class folders", required=True),
    Option("workers", "processes for large datasets (default: all cores)", type=int,
           check=at_least(1)),
    Option("train_args", "your yolo train settings (fraction=0.5 single_cls=True ...): checked "
           "as that training reads the data", flag="train_args", nargs="*", metavar="KEY=VALUE"),
))

SPLIT = Command("split", "stratified k-fold and/or mini splits (image lists, no copies)", (
    Option("data", "data.yaml or a folder of class folders (train and val are pooled for "
           "--folds)", required=True),
    Option("folds", "K stratified folds: foldI/ per fold", type=int, check=at_least(2)),
    Option("fold", "write only fold I (0-based)", type=int, check=at_least(0)),
    Option("mini", "also write a stratified fraction F of train and of val (foldI/mini/, or OUT "
           "itself without --folds); the same code as search --fraction", type=number,
           check=share),
    Option("seed", "seed of the stratified draws (default: %(default)s)", type=int, default=0,
           check=seed),
    Option("out", "output folder (new, or empty, or an earlier split's)", required=True),
))

EDA = Command("eda", "dataset statistics: a self-contained plotly HTML + text summary", (
    Option("data", "data.yaml, or a folder of class folders", required=True),
    Option("out", "HTML file, or a folder to write eda.html into (default: %(default)s)",
           default="eda.html"),
    Option("small_area", "boxes under this area in pixels count as small (default: 32*32)",
           type=number, check=above(0, " px")),
))

IMPORT_COCO = Command("import coco", "COCO JSON -> YOLO labels + data.yaml (images linked, not "
                                     "copied)", (
    Option("json", "COCO annotation file", required=True),
    Option("images", "folder the JSON's file_name entries are under", required=True),
    Option("out", "output folder (new or empty)", required=True),
    Option("class_from", "take the class from the image path (group 1, else the whole match) "
           "instead of category_id", metavar="REGEX"),
    Option("names", "class names in id order, comma separated (with --class-from)"),
    Option("val", "stratified share of images for val (default: %(default)s)",
           type=number, default=0.2, check=open_share),
    Option("seed", "seed of the stratified val draw (default: %(default)s)", type=int, default=0,
           check=seed),
))

DEMO_DATA = Command("demo-data", "write the deterministic demo dataset", (
    Option("out", "output folder (new or empty): YOLO layout + data.yaml", required=True),
    Option("seed", "seed of the generated images (default: %(default)s)", type=int, default=0,
           check=seed),
))

STUDIES = Command("studies", "list studies with trial counts and best fitness", (
    Option("storage", "Optuna storage URL (default: every studies/*.db)"),
))
STATUS = Command("status", "a study's progress (running trials, best, ETA), read from its "
                           "storage: works for a search running elsewhere", (STUDY, STORAGE))
EXPORT = Command("export", "write best_hyperparameters.yaml and trials.csv of a study", (
    STUDY, STORAGE, Option("out", "output folder (default: studies/NAME/)"),
))
DASHBOARD = Command("dashboard", "start optuna-dashboard on a study's storage", (
    Option("study", "study name (its default storage is opened)"),
    Option("storage", "Optuna storage URL"),
    Option("host", "default: loopback only", default="127.0.0.1", check=not_empty),
    Option("port", "default: %(default)s", type=int, default=8080,
           check=lambda v: None if 1 <= v <= 65535 else "must be a port, 1..65535"),
))
REPORT = Command("report", "write a self-contained plotly HTML report of a study", (
    STUDY, STORAGE, Option("out", "HTML file, or a folder to write report.html into (default: "
                               "studies/NAME/report.html)"),
))

FIT = Command("fit", "from your data to a deployable model inside one time budget: check, "
                     "search, validate, promote, thresholds, deploy, report, in one folder", (
    Option("budget", "time for all of it, e.g. 45m, 2h: the search is planned to leave time for "
           "the full-data trainings and the steps after", required=True, metavar="DURATION",
           check=_duration),
    SEARCH.option("data"),
    Option("out", "the fit's folder; the same command goes on there after an interruption "
           "(default: runs/fit/STUDY)", check=not_empty),
    SEARCH.option("study"), SEARCH.option("space"), SEARCH.option("searcher"),
    SEARCH.option("model"), SEARCH.option("epochs"), SEARCH.option("imgsz"),
    SEARCH.option("batch"), DEVICE, SEARCH.option("seed"), THRESHOLD_METRIC,
    Option("formats", "export the final weights: onnx, openvino or onnx,openvino (default: no "
           "export)"),
    SEARCH.option("train_args"),
))

# commands with subcommands of their own
GROUPS = {"import": "convert annotations to YOLO labels"}
COMMANDS: dict[str, Command] = {c.name: c for c in (
    SEARCH, DEMO_DATA, STUDIES, STATUS, EXPORT, DASHBOARD, REPORT, CHECK, SPLIT, EDA, IMPORT_COCO,
    PROMOTE, VALIDATE, DEPLOY, THRESHOLDS, FIT)}


def check(command: str, values: Mapping[str, Any]) -> None:
    """Run every option's own check on the given values (those left out are not checked).

    Raises:
        ConfigError: the first value that fails, in one line: flag, value, what must hold.
    """
    for option in COMMANDS[command].options:
        if option.name not in values:
            continue
        value = values[option.name]
        if option.choices and value is not None and value not in option.choices:
            raise ConfigError(f"{option.cli_flag} {shown(value)}: choose one of "
                              f"{', '.join(option.choices)}")
        several = option.nargs is not None and isinstance(value, (list, tuple))
        for item in (value if several else [value]) if option.type is str else ():
            if problem := plain_text(item):
                raise ConfigError(f"{option.cli_flag} {shown(item)}: {problem}")
        problem = option.check(value) if option.check else None
        if problem:  # a check of several values names the one at fault itself
            raise ConfigError(f"{option.cli_flag} {problem if several else f'{shown(value)}: {problem}'}")
