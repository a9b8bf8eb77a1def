"""Tune the NMS IoU and confidence thresholds of trained weights for the metric that matters.

The model runs over the split ONCE, through ultralytics' own DetectionValidator (same letterbox,
rect batches, batch size, max_det, single_cls and matching as `model.val`), and its raw pre-NMS
outputs are cached on disk beside the weights. Every (IoU, conf) pair then re-runs only the
validator's NMS + matching + metrics on the cache. Anchors whose best class score is at or below
the smallest confidence of the grid can never survive NMS at any pair of the grid, so they are
dropped from the cache; what NMS sees for each pair is exactly what it sees in `model.val`.

This module decides (the grids, the metric, the chosen pair, the held-out folds); the cache is
automl.results.threshold_cache, the sweep automl.results.threshold_sweep, what is written and
read back automl.results.threshold_files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import yaml

from automl import defaults as D
from automl.errors import ConfigError
from automl.fitness import parse_fitness
from automl.options import parse_grid
from automl.results.operating_point import (
    OPERATING_HINT,
    HeldOut,
    Metric,
    Rates,
    best_global,
    best_per_class,
    check_folds,
    folds,
    held_out,
    objective,
    parse_metric,
)
from automl.results.threshold_cache import RawCache, cache_key, cache_path_for, compute_raw_cache
from automl.results.threshold_files import (
    ThresholdsResult,
    describe,
    format_table,
    write_heatmap,
    write_thresholds_yaml,
)
from automl.results.threshold_sweep import CachedSweep
from automl.ultralytics_env import quiet_ultralytics
from automl.weights import check_classes, load_detection_model

# 10 x 10 by default: conf from ultralytics' val default (0.001) up to its predict default (0.25)
# and beyond; IoU around ultralytics' val default 0.7 (the seed project won with 0.68).
DEFAULT_CONF_GRID = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.35)
DEFAULT_IOU_GRID = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)
# The default judges the boxes a deployed model shows (docs/commands.md#thresholds says why).
FOLD_SEED = 0


def metric_fitness(metric: str):
    """The scoring function of a ranking --metric: a preset, 'fitness' (ultralytics'
    0.1*mAP50+0.9*mAP50-95), or any automl fitness expression."""
    return parse_fitness("v5" if metric.strip().lower() == "fitness" else metric)


def tune_thresholds(
    *,
    weights: str | Path,
    data: str | Path,
    split: str = "val",
    metric: str = D.THRESHOLD_METRIC,
    per_class: bool = False,
    folds: int = D.THRESHOLD_FOLDS,
    conf_grid: Iterable[str | float] | None = None,
    iou_grid: Iterable[str | float] | None = None,
    imgsz: int | None = None,
    batch: int | None = None,
    device: str | None = None,
    write: bool = True,
    log: Callable[[str], None] | None = None,
) -> ThresholdsResult:
    """Sweep NMS IoU x confidence on cached raw predictions and pick the best pair for `metric`.

    Args:
        weights: a trained detection .pt; the cache, thresholds.yaml and the heatmap go beside it.
        data, split: the data.yaml and the split (val, test, train) to measure on.
        metric: what the model is for. Deployed: f1 (the default), precision@recall=R,
            recall@precision=P, judged on the boxes kept at the thresholds. Ranked: fitness
            (0.1*mAP50+0.9*mAP50-95), map50_95, map75, map50, or an automl fitness expression.
        per_class: also choose one conf per class (an operating-point metric only), at the
            chosen IoU; written to thresholds.yaml under per_class.
        folds: the split's images are dealt into this many folds (seeded); each fold is measured
            with thresholds chosen on the others: the held-out figures.
        conf_grid, iou_grid: values in (0, 1); defaults DEFAULT_CONF_GRID, DEFAULT_IOU_GRID.
        imgsz, batch, device: as for `model.val` (default: the weights' imgsz, batch 16, auto).
        write: write thresholds.yaml and thresholds.html beside the weights.
        log: where the table and progress go (default: stdout).

    Raises:
        ConfigError: a grid value outside (0, 1), an unknown metric or split, --per-class with a
            ranking metric, more folds than images, weights that are not a detection model, a
            data.yaml that cannot be read.
    """
    from automl.data.dataset import load_dataset, split_images
    from automl.options import check

    check("thresholds", locals())
    say = log or (lambda line: print(line, flush=True))
    confs = parse_grid(conf_grid, "--conf-grid", DEFAULT_CONF_GRID)
    ious = parse_grid(iou_grid, "--iou-grid", DEFAULT_IOU_GRID)
    chosen_metric = parse_metric(metric)
    check_per_class(chosen_metric, per_class)
    dataset = load_dataset(data)  # names the file and the fix when data.yaml is unusable
    if split == "test" and not (yaml.safe_load(Path(data).read_text()) or {}).get("test"):
        raise ConfigError(f"--split test: {data} has no 'test' entry; add one or use --split val")
    # the split's image files, resolved once (load_dataset has train and val already)
    images = split_images(data, split) if split == "test" else getattr(dataset, split)
    weights, data = Path(weights), Path(data)
    # the matching would pair the model's class ids with another data set's: every number of
    # the sweep would be about the wrong classes
    model = load_detection_model(weights, "thresholds tunes", nms=True)
    check_classes(model, dataset, data, weights, "tune the thresholds on")
    check_folds(folds, len(images), split)

    timings: dict[str, float] = {}
    key = cache_key(weights, data, split, images, imgsz, batch, device)
    cache_file = cache_path_for(weights, split)
    cache = RawCache.load(cache_file) if cache_file.is_file() else None
    hit = cache is not None and cache.key == key and cache.conf_floor <= confs[0]
    with quiet_ultralytics():
        if not hit:
            t = time.perf_counter()
            say(f"running {weights} over {data} ({split}) once; raw predictions -> {cache_file}")
            cache = compute_raw_cache(model, data=data, split=split, conf_floor=confs[0],
                                      imgsz=imgsz, batch=batch, device=device, key=key)
            cache.save(cache_file)
            timings["inference"] = time.perf_counter() - t
        else:
            say(f"raw predictions from cache {cache_file}")
        t = time.perf_counter()
        sweeper = CachedSweep(cache)
        try:
            result = _choose(sweeper, chosen_metric, ious, confs, per_class, folds)
        finally:
            sweeper.close()
        timings["sweep"] = time.perf_counter() - t
    result.cache_path, result.cache_hit, result.seconds = cache_file, hit, timings

    say(format_table(result))
    say(f"best: iou {result.best_iou:g}, conf {result.best_conf:g} -> {result.metric} "
        f"{result.best_score:.4f} ({len(result.table)} pairs in {timings['sweep']:.2f}s from the "
        "cache)")
    for line in describe(result):
        say(line)
    if write:
        result.yaml_path = write_thresholds_yaml(result, weights, data, split)
        result.html_path = write_heatmap(result, weights.with_name("thresholds.html"))
        say(f"wrote {result.yaml_path} and {result.html_path}")
    return result


def check_per_class(metric: Metric, per_class: bool) -> None:
    """Per-class confs only for a metric of the boxes shown.

    Raises:
        ConfigError: --per-class with a ranking metric, naming the ones that go with it.
    """
    if per_class and not metric.operating:
        raise ConfigError(f"--per-class with --metric {metric.spec}: a ranking metric is best at "
                          f"the lowest conf for every class; use --metric {OPERATING_HINT}")


def _choose(sweeper: CachedSweep, metric: Metric, ious: Sequence[float],
            confs: Sequence[float], per_class: bool, k: int) -> ThresholdsResult:
    """The sweep's table, the pair (and per-class confs) chosen on all images, and the same
    choice made k times on k-1 folds and measured on the fold left out."""
    table = sweeper.sweep(ious, confs)
    matched = sweeper.matched
    score_of = None if metric.operating else metric_fitness(metric.spec)
    for (iou, conf), m in table.items():
        rates = Rates(*matched[iou].counts(conf))
        m.update({f"op_{name}": v for name, v in rates.summary().items()})
        if score_of is not None:
            value = score_of(m)
        else:
            met, value = objective(metric, m["op_precision"], m["op_recall"], m["op_f1"])
            value = float(value) if met else math.nan
        m["score"] = value if math.isfinite(value) else math.nan

    if metric.operating:
        best_iou, best_conf, met = best_global(metric, matched, confs)
    else:
        best_iou, best_conf = _best_ranked(table)
        met = True
    result = ThresholdsResult(
        metric=metric.spec, iou_grid=tuple(ious), conf_grid=tuple(confs), table=table,
        best_iou=best_iou, best_conf=best_conf, best_score=table[(best_iou, best_conf)]["score"],
        ranked=not metric.operating, floor_met=met, names=dict(sweeper.cache.names),
        n_images=matched[best_iou].n_images)
    if not met:  # the closest miss: its own value instead of nan (describe says the miss)
        result.best_score = table[(best_iou, best_conf)][f"op_{metric.kind}"]
    if per_class:
        result.per_class_conf, _ = best_per_class(metric, matched[best_iou], confs, best_conf)
        result.per_class_rates = Rates(*matched[best_iou].counts(result.per_class_conf))
    result.global_rates = Rates(*matched[best_iou].counts(best_conf))

    if metric.operating:
        result.held_out = held_out(metric, matched, confs, k, FOLD_SEED, per_class)
    else:
        fold_of = folds(matched[best_iou].n_images, k, FOLD_SEED)
        parts, total = [], None
        for f in range(k):
            inside = fold_of != f
            inner = {pair: {**m, "score": score_of(sweeper.ranking([(*pair, inside)]))}
                     for pair, m in table.items()}
            iou, conf = _best_ranked(inner)
            parts.append((iou, conf, fold_of == f))
            r = Rates(*matched[iou].counts(conf, fold_of == f))
            total = r if total is None else total + r
        result.held_out = HeldOut(k=k, seed=FOLD_SEED, global_rates=total, per_class_rates=None,
                                  picks=[(i, c) for i, c, _ in parts])
        result.held_out_score = score_of(sweeper.ranking(parts))
    return result


def _best_ranked(table: dict[tuple[float, float], dict[str, float]]) -> tuple[float, float]:
    """The pair of the highest score; ties: the lowest conf, then the highest IoU."""
    return max(table, key=lambda k: (_finite(table[k]["score"]), -k[1], k[0]))


def _finite(x: float) -> float:
    return x if math.isfinite(x) else -math.inf


