"""`automl report`: one self-contained plotly HTML of a study (derived from the study alone)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from automl.study import promotions, study_config


def _fitness_scatter(study):
    """YOLOv5's evolve plot: fitness against each parameter, the best trial starred."""
    import numpy as np
    import plotly.graph_objects as go
    from optuna.trial import TrialState
    from plotly.subplots import make_subplots

    from automl.study import fitness_of

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if fitness_of(t) is not None and math.isfinite(fitness_of(t))]
    keys = list(dict.fromkeys(k for t in done for k in t.params))
    if not done or not keys:
        return None
    cols = min(4, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=keys)
    best = max(done, key=fitness_of)
    for i, key in enumerate(keys):
        r, c = i // cols + 1, i % cols + 1
        have = [t for t in done if key in t.params]
        # arrays, not lists: plotly checks a list item by item (seconds for 10,000 trials)
        y = np.array([fitness_of(t) for t in have])
        fig.add_trace(go.Scatter(
            x=np.array([t.params[key] for t in have]), y=y, mode="markers",
            marker={"color": y, "colorscale": "Viridis", "size": 8},
            text=np.array([f"trial {t.number}" for t in have]), showlegend=False), row=r, col=c)
        if key in best.params:
            fig.add_trace(go.Scatter(
                x=[best.params[key]], y=[fitness_of(best)], mode="markers", showlegend=False,
                marker={"symbol": "star", "size": 16, "color": "red"},
                text=[f"best: trial {best.number}"]), row=r, col=c)
    fig.update_layout(title="Fitness against each parameter (best trial starred)",
                      height=320 * rows)
    return fig


def _top_table(study, n: int = 10):
    import plotly.graph_objects as go

    from automl.results.summary import top_rows

    header, rows = top_rows(study, n, metric=_fmt, param=_fmt)
    if not rows:
        return None
    columns = [list(column) for column in zip(*rows, strict=True)]
    # plotly clips a table to its figure, less the margins, and scrolls the rest in what is
    # left: the figure is as tall as its rows, its margins small, so every row shows
    fig = go.Figure(go.Table(header={"values": header, "height": HEADER},
                             cells={"values": columns, "height": ROW}))
    fig.update_layout(title=f"Top {len(rows)} trials", margin={"t": 40, "b": 10},
                      height=40 + 10 + HEADER + ROW * len(rows) + 10)
    return fig


HEADER, ROW = 30, 26  # a table's header and row heights, px


def _validation(study):
    """`automl validate`'s result: full-data mean (error bars: std over seeds) against mini
    fitness per configuration, the plain training marked; None when the study was not validated."""
    import plotly.graph_objects as go

    from automl.study import validation

    verdict = validation(study)
    rows = [r for r in (verdict or {}).get("rows", []) if r.get("full")]
    if not rows:
        return None
    fig = go.Figure()
    for baseline, name, symbol in ((False, "searched trials", "circle"),
                                   (True, "plain training", "diamond")):
        part = [r for r in rows if bool(r["baseline"]) == baseline]
        if part:
            fig.add_trace(go.Scatter(
                x=[r["mini"] for r in part], y=[r["full_mean"] for r in part],
                error_y={"type": "data", "array": [r["full_std"] for r in part]},
                mode="markers+text", name=name, marker={"symbol": symbol, "size": 11},
                text=[f"#{r['number']}" for r in part], textposition="top center"))
    fig.update_layout(title="Mini data against full data (automl validate; error bars: std "
                            "over training seeds)", xaxis_title="mini-data fitness (search)",
                      yaxis_title="full-data fitness (mean over seeds)", height=480)
    return fig


def _validation_text(study) -> str | None:
    from automl.study import validation

    verdict = validation(study)
    if not verdict:
        return None
    rho, (lo, hi) = verdict["spearman"], verdict["spearman_ci"]
    lines = [f"Spearman {_fmt(rho)} (90% interval {_fmt(lo)}..{_fmt(hi)}), Kendall "
             f"{_fmt(verdict['kendall'])}; mini winner #{verdict['mini_winner']}, full winner "
             f"#{verdict['full_winner']}" + (" (the same)" if verdict.get("same_winner") else "")]
    if verdict.get("baseline") is not None and verdict.get("gain") is not None:
        lines.append(f"gain of the full winner over the plain training #{verdict['baseline']}: "
                     f"{_fmt(verdict['gain'])} (wins {verdict['wins']} of {verdict['compared']} "
                     "seeds)")
    return "".join(f"<p>{html.escape(line)}</p>" for line in [*lines, *verdict.get("advice", [])])


# fewer COMPLETE trials than this and parameter importances are a rough ranking, not a measure
FEW = 20


def _answer(study) -> str:
    """The report's first section: the best configuration beside the plain training (trial #0),
    what `automl validate` and `automl promote` found, and what the numbers cannot say."""
    from optuna.trial import TrialState

    from automl.results.summary import trial_rows
    from automl.results.verdicts import baseline_verdict, plain_training
    from automl.study import best_trial, repeat_means, validation

    best, plain = best_trial(study), plain_training(study)
    if best is None:
        return "<h2>The answer</h2><p class='na'>not yet: no COMPLETE trial</p>"
    shown = [best, *([plain] if plain is not None and plain.number != best.number else [])]
    header, rows = trial_rows(study, shown, _fmt, _fmt)
    table = ("<table class='answer'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header)
             + "</tr>" + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row)
                                 + "</tr>" for row in rows) + "</table>")
    verdict = baseline_verdict(study) or f"best: trial #{best.number} (no plain training to compare)"
    parts = ["<h2>The answer</h2>", f"<p class='verdict'>{html.escape(verdict)}</p>", table]
    checked = _validation_text(study)
    if checked:
        parts += ["<h3>On the full data (automl validate)</h3>", checked]
    for number, record in sorted(promotions(study).items()):  # left by `automl promote`
        record = dict(record)
        thresholds = record.pop("thresholds", None)
        metrics = record.pop("metrics", None) or {}
        parts.append(_attr_table(f"Promotion of trial #{number}", {**record, **metrics}, "h3"))
        if isinstance(thresholds, dict):
            parts.append(_attr_table(f"Inference thresholds of trial #{number}", thresholds, "h3"))
    trials = study.get_trials(deepcopy=False)
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    fraction = study_config(study).fraction
    data = "all the data" if not fraction or fraction >= 1 else f"a {fraction:.0%} mini split"
    caveats = [f"{complete} of {len(trials)} trials completed; each fitness is the best epoch "
               f"of one training on {data}, scored on its val images."]
    if not repeat_means(study):
        caveats.append("A training's fitness moves with its random seed: a gain smaller than "
                       "that noise may be luck (--repeats trains the best trials again).")
    caveats.append("The best of many trials is picked because it scored high: expect part of "
                   "its gain to shrink on a new training.")
    if not validation(study):
        caveats.append("Not yet checked on the full data: `automl validate` retrains the top "
                       "trials on it with several seeds.")
    return "\n".join([*parts, "<ul class='caveats'>" + "".join(
        f"<li>{html.escape(c)}</li>" for c in caveats) + "</ul>"])


def _fmt(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _attr_table(title: str, attrs: dict, tag: str = "h2") -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
                   for k, v in attrs.items())
    return f"<{tag}>{html.escape(title)}</{tag}><table class='attrs'>{rows}</table>"


# a study larger than this is drawn in part: learning curves of its best CURVES trials (and the
# plain training), importances, parallel coordinates and slices of PER_TRIAL trials spread evenly
CURVES, PER_TRIAL = 50, 1000


def _of(limit: int, n: int, how: str) -> str:
    return f"; {how} {limit} of {n} trials" if n > limit else ""


def _part(study, limit: int, *, best: bool):
    """An in-memory view of `limit` of the study's trials (nothing copied): the best COMPLETE ones
    and the plain training with their intermediate values, read for them alone (best: the
    learning curves; `automl report` reads the study without them), or every k-th trial (not
    best; the study itself when it has no more than `limit`)."""
    import optuna

    from automl.study import BASELINE_ATTR, answering, ranked_trials, with_intermediate

    trials = study.get_trials(deepcopy=False)
    if len(trials) <= limit and not best:
        return study
    if best:
        chosen = [t for t, _ in ranked_trials(study)][:limit] if len(trials) > limit else trials
        chosen += [t for t in trials if t.user_attrs.get(BASELINE_ATTR) and t not in chosen][:1]
        chosen = with_intermediate(study, chosen)
    else:
        chosen = trials[::math.ceil(len(trials) / limit)]
    return answering(optuna.create_study(directions=study.directions),
                     sorted(chosen, key=lambda t: t.number))


def _with_pruned(fig, study):
    """Optuna's history draws COMPLETE trials alone: the pruned ones are added at the fitness
    they had when the pruner stopped them, so a search that pruned most trials does not look
    like one that ran few."""
    import plotly.graph_objects as go
    from optuna.trial import TrialState

    from automl.epochs import FITNESS

    pruned = [(t.number, t.user_attrs.get(FITNESS, _last(t)))
              for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))]
    pruned = [(n, v) for n, v in pruned if v is not None]
    if pruned:
        fig.add_trace(go.Scatter(x=[n for n, _ in pruned], y=[v for _, v in pruned],
                                 mode="markers", name="pruned (fitness when stopped)",
                                 marker={"symbol": "x", "color": "#999", "size": 8}))
    fig.update_layout(title=None, xaxis_title="trial number", yaxis_title="fitness",
                      margin={"t": 30})
    return fig


def _last(trial) -> float | None:
    values = trial.intermediate_values
    return values[max(values)] if values else None


def _legend(fig, study):
    """Optuna's learning curves with a legend naming each trial (the plain training and the
    pruned ones said so) and named axes."""
    from optuna.trial import TrialState

    from automl.study import BASELINE_ATTR

    trials = {f"Trial{t.number}": t for t in study.get_trials(deepcopy=False)}
    for trace in fig.data:
        t = trials.get(trace.name)
        if t is not None:
            trace.name = f"#{t.number}" + (" plain" if t.user_attrs.get(BASELINE_ATTR) else "") + (
                " pruned" if t.state == TrialState.PRUNED else "")
        trace.showlegend = True
    fig.update_layout(title=None, showlegend=True, xaxis_title="epoch", margin={"t": 30},
                      yaxis_title="fitness (per epoch, on val)", legend_title_text="trial")
    return fig


def figures(study) -> list[tuple[str, Any]]:
    """(section title, plotly figure or None with the reason) for every section of the report."""
    from optuna import visualization as vis
    from optuna.trial import TrialState

    from automl.objectives import MEASURES
    from automl.study import fitness_of, multi_objective

    sections: list[tuple[str, Any]] = []
    goals = study_config(study).goals
    # Optuna's plots take one objective; a multi-objective study's is its fitness (values[0])
    one = ({"target": fitness_of, "target_name": "fitness"} if multi_objective(study)
           else {"target_name": "fitness"})
    complete = sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
    few = (f"; only {complete} COMPLETE trial{'' if complete == 1 else 's'}: a rough ranking, "
           "not a measurement"
           if complete < FEW else "")

    def add(title: str, make) -> None:
        import warnings

        try:
            # Optuna warns on stderr about what the titles say (too few trials to rank)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                sections.append((title, make()))
        except (ValueError, RuntimeError, ZeroDivisionError) as e:  # too few trials for this plot
            sections.append((title, f"not available: {e}"))

    if multi_objective(study):
        names = [o if o == "fitness" else f"{o} ({MEASURES[o][2]})" for o in goals.objectives]
        add("Pareto front (fitness against " + ", ".join(goals.objectives[1:]) + "; trials over "
            "a cap in grey)", lambda: vis.plot_pareto_front(study, target_names=names))
    add("Optimization history (pruned trials at the fitness they had when stopped)",
        lambda: _with_pruned(vis.plot_optimization_history(study, **one), study))
    # a large study draws its curves and per-trial plots from a part of it: 10,000 curves are a
    # wall of ink and take minutes to lay out (the history above and the table below keep all)
    n = len(study.get_trials(deepcopy=False))
    curves, curves_note = _part(study, CURVES, best=True), _of(CURVES, n, "best")
    some, some_note = _part(study, PER_TRIAL, best=False), _of(PER_TRIAL, n, "evenly spaced")
    add(f"Learning curves (fitness per epoch; pruned trials included{curves_note})",
        lambda: _legend(vis.plot_intermediate_values(curves), curves))
    add(f"Parameter importances{some_note}{few}",
        lambda: vis.plot_param_importances(some, **one))
    add(f"Parallel coordinates{some_note}", lambda: vis.plot_parallel_coordinate(some, **one))
    add(f"Slices{some_note}", lambda: vis.plot_slice(some, **one))
    add("Fitness against each parameter", lambda: _fitness_scatter(study))
    add("Top trials", lambda: _top_table(study))
    if _validation(study) is not None:  # only for a validated study
        add("Mini against full data (automl validate)", lambda: _validation(study))
    return sections


def write_report(study, out: str | Path) -> Path:
    """Write the report (plotly.js inlined once: it opens offline) and return its path."""
    from optuna.trial import TrialState

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    counts = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    config = study_config(study).to_dict()
    parts = [
        f"<h1>automl study '{html.escape(study.study_name)}'</h1>",
        "<p>" + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + " trials; "
        + html.escape(", ".join(f"{k} {config[k]}" for k in (
            "space", "fitness", "searcher", "data", "model", "epochs", "imgsz", "fraction",
            "objectives", "max_size_mb", "max_latency_ms")
            if config.get(k) not in (None, ""))) + "</p>",
        _answer(study),
    ]
    plotly_js: str | bool = "inline"
    for title, fig in figures(study):
        if fig is None or isinstance(fig, str):
            reason = fig or "not available: no COMPLETE trial yet"
            parts.append(f"<h2>{html.escape(title)}</h2><p class='na'>{html.escape(reason)}</p>")
            continue
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=plotly_js))
        plotly_js = False  # one copy of plotly.js serves every figure
    style = ("body{font-family:sans-serif;margin:2em}h2{margin-top:2em}"
             "table.attrs th{text-align:left;padding-right:1em}.na{color:#888}"
             "table.answer{border-collapse:collapse}table.answer td,table.answer th"
             "{border:1px solid #ccc;padding:.2em .6em}.verdict{font-size:1.2em}"
             ".caveats{color:#444}")
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>automl "
                   f"{html.escape(study.study_name)}</title><style>{style}</style></head><body>"
                   + "\n".join(parts) + "</body></html>")
    return out
