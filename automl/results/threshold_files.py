"""What the threshold tuner writes and reads: its lines and table, thresholds.yaml and the
heatmap; a thresholds.yaml applied to a model file."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from automl.errors import ConfigError
from automl.results.operating_point import OPERATING_HINT, HeldOut, Matched, Rates
from automl.results.threshold_cache import caching_validator_class
from automl.ultralytics_env import quiet_ultralytics


@dataclass(frozen=True)
class AppliedThresholds:
    """The thresholds of a thresholds.yaml as a deployment applies them."""

    path: Path
    iou: float
    conf: np.ndarray  # per class id: its per_class value, else the global conf
    per_class: bool

    def describe(self) -> str:
        how = "per-class confs" if self.per_class else f"conf {float(self.conf[0]):g}"
        return f"{how}, iou {self.iou:g} ({self.path})"


def read_thresholds_file(path: str | Path, names: dict[int, str]) -> AppliedThresholds:
    """A thresholds.yaml that `automl thresholds` wrote, checked against the model's classes.

    Raises:
        ConfigError: an unreadable file, a value outside (0, 1), or a class the model lacks.
    """
    path = Path(path)
    fix = "run automl thresholds on these weights to write it again"
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"--thresholds {path}: cannot be read ({type(e).__name__}); {fix}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"--thresholds {path}: not a thresholds.yaml (no iou, conf); {fix}")
    values = {k: doc.get(k) for k in ("iou", "conf")}
    per = doc.get("per_class") or {}
    if not isinstance(per, dict):
        raise ConfigError(f"--thresholds {path}: per_class must map class names to confs; {fix}")
    for key, value in [*values.items(), *((f"per_class.{n}", v) for n, v in per.items())]:
        if not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ConfigError(f"--thresholds {path}: {key} is {value!r}, not a number in (0, 1); "
                              f"{fix}")
    ids = {name: i for i, name in names.items()}
    unknown = [n for n in per if n not in ids]
    if unknown:
        raise ConfigError(f"--thresholds {path}: per_class names {', '.join(map(repr, unknown))}, "
                          f"not classes of the weights; {fix}")
    conf = np.full(max(names, default=-1) + 1, float(values["conf"]))
    for name, value in per.items():
        conf[ids[name]] = float(value)
    return AppliedThresholds(path=path, iou=float(values["iou"]), conf=conf, per_class=bool(per))


def operating_point_of(model_path: Path, thresholds: AppliedThresholds, *, data: Path,
                       imgsz: int, batch: int = 1, device: str = "cpu") -> dict[str, float]:
    """Precision, recall and F1 of the boxes a model file (.pt or an export) keeps at
    `thresholds` on the val split: ultralytics' validator loading the file."""
    from ultralytics import YOLO

    holder = {}

    def make(args, _callbacks=None):
        holder["v"] = caching_validator_class()(args=args, _callbacks=_callbacks)
        return holder["v"]

    with quiet_ultralytics(), tempfile.TemporaryDirectory(prefix="automl-op-") as tmp:
        YOLO(str(model_path), task="detect").val(
            validator=make, data=str(data), imgsz=imgsz, batch=batch, device=device, split="val",
            conf=float(thresholds.conf.min()), iou=thresholds.iou, plots=False, verbose=False,
            save_json=False, project=tmp, name="val")
    matched = Matched.from_stats(holder["v"].kept_stats, len(thresholds.conf))
    return Rates(*matched.counts(thresholds.conf)).summary()


def _prf(r: dict[str, float] | Rates) -> str:
    s = r.summary() if isinstance(r, Rates) else r
    return f"precision {s['precision']:.4f}, recall {s['recall']:.4f}, F1 {s['f1']:.4f}"


def describe(result: ThresholdsResult) -> list[str]:
    """The lines after the table: the chosen operating point in-sample and held out, the warning
    for a ranking metric at the grid's lowest conf, and the per-class confs."""
    n, h = result.n_images, result.held_out
    lines = []
    if not result.floor_met:
        floored = "recall" if result.metric.startswith("precision") else "precision"
        reached = result.table[(result.best_iou, result.best_conf)][f"op_{floored}"]
        lines.append(f"note: no pair of the grid meets {result.metric}; chose the closest, "
                     f"{floored} {reached:.4f}")
    lines.append(f"held out ({h.k} folds of the {n} images: thresholds chosen on the others, "
                 f"measured on each): {_prf(h.global_rates)}"
                 + (f", {result.metric} {result.held_out_score:.4f}"
                    if result.held_out_score is not None else "")
                 + "  <- what to expect on new images")
    lines.append(f"in-sample (chosen and measured on all {n} images): {_prf(result.global_rates)}")
    if result.ranked and result.best_conf == result.conf_grid[0]:
        lines.append(f"warning: {result.metric} drove conf to {result.best_conf:g}, the grid's "
                     "lowest: right to rank models, but a deployed model would show every box "
                     f"down to it; to deploy, pass --metric {OPERATING_HINT}")
    if result.per_class_conf is not None:
        from automl.console import text_table

        c = result.per_class_rates
        g_out, c_out = h.global_rates, h.per_class_rates
        rows = [[result.names[i], f"{c.n_gt[i]}", f"{result.per_class_conf[i]:g}",
                 f"{c.precision[i]:.3f}", f"{c.recall[i]:.3f}", f"{c.f1[i]:.3f}",
                 f"{g_out.f1[i]:.3f}", f"{c_out.f1[i]:.3f}"]
                for i in sorted(result.names) if i < len(c.n_gt)]
        lines.append(text_table(["class", "labels", "conf", "P", "R", "F1 (in-sample)",
                                 "F1 held out: global", "per class"], rows))
        lines.append(f"per-class confs at iou {result.best_iou:g}, held out: {_prf(c_out)} "
                     f"(global conf {result.best_conf:g}, held out: {_prf(g_out)})")
    return lines


def format_table(result: ThresholdsResult) -> str:
    """Rows IoU, columns conf, cells the metric (on all images; '-' below its floor); the best
    cell marked with *."""
    from automl.console import text_table

    header = [f"{result.metric} | iou \\ conf", *(f"{c:g}" for c in result.conf_grid)]
    rows = []
    for iou in result.iou_grid:
        row = [f"{iou:g}"]
        for conf in result.conf_grid:
            mark = "*" if (iou, conf) == (result.best_iou, result.best_conf) else " "
            value = result.score(iou, conf)
            row.append(f"{value:.4f}{mark}" if math.isfinite(value) else f"-{mark}")
        rows.append(row)
    return text_table(header, rows)


def write_thresholds_yaml(result: ThresholdsResult, weights: Path, data: Path, split: str) -> Path:
    path = weights.with_name("thresholds.yaml")
    doc = {
        **result.as_dict(),
        "weights": str(weights.resolve()), "data": str(data.resolve()), "split": split,
        "conf_grid": list(result.conf_grid), "iou_grid": list(result.iou_grid),
        "use": f"yolo predict model={weights.name} conf={result.best_conf:g} iou={result.best_iou:g}",
    }
    if result.per_class_conf is not None:
        doc["use_per_class"] = (f"predict at iou {result.best_iou:g} and conf "
                                f"{min(result.per_class.values()):g}, then keep each box whose "
                                "confidence is above its class's value in per_class")
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def write_heatmap(result: ThresholdsResult, path: Path) -> Path:
    """A plotly heatmap (IoU x conf) of the metric; plotly.js is embedded so it opens offline."""
    import plotly.graph_objects as go

    z = [[result.score(iou, conf) for conf in result.conf_grid] for iou in result.iou_grid]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"{c:g}" for c in result.conf_grid], y=[f"{i:g}" for i in result.iou_grid],
        colorscale="Viridis", colorbar={"title": result.metric},
        hovertemplate="iou %{y}, conf %{x}: %{z:.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[f"{result.best_conf:g}"], y=[f"{result.best_iou:g}"], mode="markers",
                             marker={"symbol": "x", "size": 14, "color": "red"}, name="best"))
    fig.update_layout(title=f"{result.metric} by NMS IoU and confidence threshold (best: iou "
                            f"{result.best_iou:g}, conf {result.best_conf:g}, "
                            f"{result.best_score:.4f})",
                      xaxis_title="confidence threshold", yaxis_title="NMS IoU threshold")
    fig.write_html(path, include_plotlyjs=True)
    return path


@dataclass
class ThresholdsResult:
    """The sweep: every pair's metrics, the chosen pair (and per-class confs), how the choice
    does on all images (in-sample) and on folds it did not see (held out), and the files written.

    A table cell holds ultralytics' metrics at that pair (precision and recall there are at
    the confidence of the best F1 above the threshold, as `model.val` reports them), the
    operating point of the boxes kept at the pair (`op_precision`, `op_recall`, `op_f1`), and
    the chosen metric's `score`.
    """

    metric: str
    iou_grid: tuple[float, ...]
    conf_grid: tuple[float, ...]
    table: dict[tuple[float, float], dict[str, float]]  # (iou, conf) -> metrics + "score"
    best_iou: float
    best_conf: float
    best_score: float
    ranked: bool = False  # a ranking (mAP-type) metric, not an operating point
    floor_met: bool = True  # precision@recall=R / recall@precision=P: some pair reaches it
    names: dict[int, str] = field(default_factory=dict)
    n_images: int = 0
    global_rates: Rates | None = None  # in-sample, at the chosen pair
    per_class_conf: np.ndarray | None = None  # with per_class: conf per class id
    per_class_rates: Rates | None = None  # in-sample, at the per-class confs
    held_out: HeldOut | None = None
    held_out_score: float | None = None  # a ranking metric's value on the held-out folds
    yaml_path: Path | None = None
    html_path: Path | None = None
    cache_path: Path | None = None
    cache_hit: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    def score(self, iou: float, conf: float) -> float:
        return self.table[(iou, conf)]["score"]

    @property
    def per_class(self) -> dict[str, float] | None:
        """Class name -> its confidence threshold (with per_class)."""
        if self.per_class_conf is None:
            return None
        return {self.names[i]: float(self.per_class_conf[i]) for i in sorted(self.names)}

    def as_dict(self) -> dict[str, Any]:
        best = self.table[(self.best_iou, self.best_conf)]
        out: dict[str, Any] = {
            "iou": self.best_iou, "conf": self.best_conf, "metric": self.metric,
            "value": round(self.best_score, 6),
            "metrics": {k: round(v, 6) for k, v in best.items()
                        if k != "score" and not k.startswith("op_")},
        }
        if self.global_rates is not None:
            out["in_sample"] = _rounded(self.global_rates.summary())
        if self.held_out is not None:
            h = self.held_out
            held = {"folds": h.k, "seed": h.seed, **_rounded(h.global_rates.summary())}
            if self.held_out_score is not None:
                held[self.metric] = round(self.held_out_score, 6)
            out["held_out"] = held
        if self.per_class is not None:
            out["per_class"] = self.per_class
            out["per_class_in_sample"] = _rounded(self.per_class_rates.summary())
            if self.held_out is not None and self.held_out.per_class_rates is not None:
                out["per_class_held_out"] = _rounded(self.held_out.per_class_rates.summary())
        return out


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 6) for k, v in d.items()}
