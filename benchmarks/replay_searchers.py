"""Searchers and pruners judged on thousands of replayed searches (issue 16).

Every search runs in this process against a record of real learning curves
(`benchmarks/record_curves.py`; `automl.api.simulate_search`: the same searcher, study records
and Ray Tune scheduler as a real search, without training). For each searcher x pruner x budget,
`--reps` searches with searcher seeds 0..reps-1, each replaying one recorded training seed as
"the" training (alternating, so both draws of the training noise count). Per search:

- worth: the seed-averaged final fitness of the configuration the search picks (its best
  trial; with --repeats K the best mean after the budget's last K trials trained the best K
  again with another seed, as `automl search --repeats K` does): what the pick is worth, not
  its luckiest run;
- regret: the best worth in the record minus the pick's worth;
  (with --neighbours k > 1 every trial replays, and every pick is worth, the inverse-distance
  blend of the k nearest recorded configurations: Record.blended_curve / Record.worth);
- epochs: the epochs the search trained (pruned trials count the epochs they ran).

`peer` is ultralytics 8.4's tuner mutation (benchmarks/peer_sampler.py) starting from
ultralytics' default values, as `model.tune()` does; automl's searchers start from the plain
training and (but the GA) ultralytics' default values.

    python benchmarks/replay_searchers.py --record benchmarks/records/small.npz --reps 50
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))  # peer_sampler.py, beside this script


def worth_table(record, neighbours: int = 1, bandwidth: float = 0.0) -> np.ndarray:
    """Each recorded configuration's worth through the replay's blend (Record.worth): its own
    seed-mean final fitness for the nearest and inverse-distance blends, smoothed by a kernel."""
    return np.array([record.worth(dict(zip(record.keys, row, strict=True)), neighbours,
                                  bandwidth=bandwidth) for row in record.params])


def fit_bandwidth(record, widths) -> list[tuple[float, float]]:
    """Leave-one-out error of the kernel's worth for each width: each recorded configuration's
    seed-mean final fitness predicted from all the others (mean absolute error). With the
    configuration itself at weight w of the blend b, the others' blend is (b - w f) / (1 - w)."""
    finals = np.nanmean(record.final(), axis=1)
    out = []
    for h in widths:
        errors = []
        for i, row in enumerate(record.params):
            index, weights = record.neighbours(dict(zip(record.keys, row, strict=True)),
                                               bandwidth=h)
            w = float(weights[index == i].sum())
            if w < 1 - 1e-12:
                others = (float(weights @ finals[index]) - w * finals[i]) / (1 - w)
                errors.append(abs(others - finals[i]))
        out.append((h, float(np.mean(errors)) if errors else float("nan")))
    return out


def one_search(job: dict) -> dict:
    """Run one replayed search; what it picked, what that is worth, what it cost."""
    os.environ.setdefault("YOLO_VERBOSE", "False")
    from automl.api import simulate_search
    from automl.execution.record import load_record
    from automl.study import best_trial

    record = load_record(job["record"])
    flags = {"searcher": job["searcher"] if job["searcher"] != "peer" else "random",
             "pruner": job["pruner"], "trials": job["budget"], "seed": job["rep"],
             "repeats": job["repeats"], "space": job.get("space", "lr_momentum")}
    factory = None
    if job["searcher"] == "peer":
        from peer_sampler import PeerSampler

        def factory(plan):
            return PeerSampler(distributions=plan.space.distributions(), defaults=plan.start,
                               gains={p.name: min(p.gain, 1.0) for p in plan.space.params},
                               seed=job["rep"])

        flags["baseline"] = False  # model.tune() starts from the defaults by itself
    start = time.perf_counter()
    blend = {"neighbours": job.get("neighbours", 1), "bandwidth": job.get("bandwidth", 0.0)}
    study = simulate_search(job["record"], training_seed=job["rep"] % len(record.seeds),
                            sampler_factory=factory, **blend, **flags)
    pick = best_trial(study)  # with repeats: the best mean (automl.study.best_trial)
    value = record.worth(pick.params, blend["neighbours"], bandwidth=blend["bandwidth"]) \
        if pick is not None else 0.0
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    return {**{k: job[k] for k in ("searcher", "pruner", "budget", "rep", "repeats")},
            "worth": value, "regret": job["best"] - value,
            "epochs": epochs, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", default=str(Path(__file__).parent / "records" / "small.npz"))
    parser.add_argument("--searchers", nargs="+", default=["ga", "tpe", "gp", "cmaes", "random",
                                                           "peer"])
    parser.add_argument("--pruners", nargs="+", default=["none", "asha", "median"])
    parser.add_argument("--budgets", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--repeats", type=int, nargs="+", default=[0],
                        help="noise-aware pick: the last K trials of the budget train the best "
                             "K again (0: none)")
    parser.add_argument("--space", default="recorded",
                        help="the searched space: recorded (default: the record's keys, bounds "
                             "and fixed args, automl.execution.record.record_space), or a space whose "
                             "keys and fixed args are the record's (a replay refuses others)")
    parser.add_argument("--neighbours", type=int, default=1,
                        help="1: replay the nearest recorded configuration (tabular); k > 1: "
                             "blend the k nearest by inverse squared distance (a surrogate "
                             "whose landscape is continuous between recorded points)")
    parser.add_argument("--bandwidth", type=float, default=0.0,
                        help="> 0: blend every recorded configuration by a Gaussian kernel this "
                             "wide in the normalised space (smooth: small steps count)")
    parser.add_argument("--fit-bandwidth", type=float, nargs="+", metavar="WIDTH",
                        help="print each width's leave-one-out error of the kernel and stop")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--csv", default=None, help="write every search's row here")
    parser.add_argument("--png", default=None,
                        help="plot the medians (plotly, rendered by headless Chromium) here")
    args = parser.parse_args()

    import pandas as pd

    from automl.execution.record import load_record

    record = load_record(args.record)
    if args.space == "recorded":
        from automl.execution.record import record_space

        args.space = str(record_space(record, Path(tempfile.mkdtemp()) / "recorded.yaml"))
    if args.fit_bandwidth:
        finals = np.nanmean(record.final(), axis=1)
        print(f"{len(finals)} configurations, worth sd {finals.std():.4f}, mean absolute "
              f"deviation {np.abs(finals - finals.mean()).mean():.4f}")
        for h, error in fit_bandwidth(record, args.fit_bandwidth):
            print(f"bandwidth {h:<6g} leave-one-out mean absolute error {error:.4f}")
        return
    worth = worth_table(record, args.neighbours, args.bandwidth)
    jobs = [{"record": args.record, "searcher": s, "pruner": p, "budget": b, "rep": r,
             "repeats": k, "neighbours": args.neighbours, "bandwidth": args.bandwidth,
             "space": args.space, "best": float(np.nanmax(worth))}
            for s in args.searchers for p in args.pruners for b in args.budgets
            for k in args.repeats for r in range(args.reps)]
    print(f"{len(jobs)} replayed searches on {args.record} ({len(worth)} configurations x "
          f"{len(record.seeds)} seeds x {record.epochs} epochs; best worth {np.nanmax(worth):.4f}, "
          f"the plain training {worth[0]:.4f}, ultralytics' defaults {worth[1]:.4f})", flush=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        rows = list(pool.map(one_search, jobs, chunksize=4))
    df = pd.DataFrame(rows)
    if args.csv:
        df.to_csv(args.csv, index=False)
    print(f"done in {time.perf_counter() - start:.0f} s\n")
    table = df.groupby(["searcher", "pruner", "budget", "repeats"], sort=False).agg(
        worth_median=("worth", "median"),
        worth_q25=("worth", lambda v: v.quantile(0.25)),
        worth_q75=("worth", lambda v: v.quantile(0.75)),
        regret_median=("regret", "median"),
        epochs=("epochs", "mean"),
        seconds=("seconds", "mean"),
    ).reset_index()
    with pd.option_context("display.width", 200, "display.max_rows", 1000):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.png:
        plot(table, float(np.nanmax(worth)), Path(args.png))


def plot(table, best: float, png: Path) -> None:
    """Median worth (IQR as error bars) against the budget, one panel per pruner; a PNG made by
    headless Chromium from plotly's HTML (no kaleido, nothing downloaded)."""
    import shutil
    import subprocess
    import tempfile

    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pruners = list(dict.fromkeys(table["pruner"]))
    fig = make_subplots(rows=1, cols=len(pruners), shared_yaxes=True,
                        subplot_titles=[f"pruner {p}" for p in pruners])
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#7f7f7f"]
    for c, pruner in enumerate(pruners, start=1):
        for k, (searcher, rows) in enumerate(table[table.pruner == pruner].groupby(
                "searcher", sort=False)):
            rows = rows[rows.repeats == rows.repeats.min()]
            fig.add_trace(go.Scatter(
                x=rows.budget, y=rows.worth_median, mode="lines+markers", name=searcher,
                legendgroup=searcher, showlegend=c == 1, line={"color": colors[k % len(colors)]},
                error_y={"type": "data", "symmetric": False,
                         "array": rows.worth_q75 - rows.worth_median,
                         "arrayminus": rows.worth_median - rows.worth_q25}), row=1, col=c)
        fig.add_hline(y=best, line_dash="dot", line_color="gray", row=1, col=c)
        fig.update_xaxes(type="log", tickvals=sorted(set(table.budget)), title="trials", row=1,
                         col=c)
    fig.update_yaxes(title="worth of the pick (seed-mean final fitness)", row=1, col=1)
    fig.update_layout(width=1400, height=520, margin={"t": 60, "l": 70, "r": 20, "b": 60},
                      title="Replayed searches: median and IQR over repetitions (dotted: the "
                            "best configuration in the record)")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        raise SystemExit("--png needs Debian's chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "plot.html"
        page.write_text(fig.to_html(include_plotlyjs="inline", full_html=True,
                                    config={"displayModeBar": False}))
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--no-first-run",
                        f"--user-data-dir={tmp}/profile", "--hide-scrollbars",
                        "--window-size=1400,540", f"--screenshot={png.resolve()}",
                        page.as_uri()], check=True, capture_output=True, timeout=120)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
