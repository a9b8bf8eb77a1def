"""The `automl` command: a thin layer over the Python API. User mistakes exit 2 with one line."""

from __future__ import annotations

import argparse
import sys

from automl import cli_data, cli_promote
from automl.errors import AutoMLError

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _choices(registry: dict) -> str:
    """`name: help; name: help` from a registry (searchers, pruners)."""
    return "; ".join(f"{name}: {entry.help}" for name, entry in registry.items())


def build_parser() -> argparse.ArgumentParser:
    from automl import defaults as D
    from automl.execution.pruners import PRUNERS
    from automl.searchers import SEARCHERS

    parser = _Parser(prog="automl", description="Hyperparameter search for YOLO detection training.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("search", help="run or continue a search (trials via Ray Tune, record in Optuna)")
    s.add_argument("--data", help="data.yaml (default: the built-in demo data)")
    s.add_argument("--space", default=D.SPACE,
                   help=f"built-in space name or a YAML path (default: {D.SPACE})")
    s.add_argument("--searcher", default=D.SEARCHER,
                   help=f"{_choices(SEARCHERS)} (default: %(default)s)")
    s.add_argument("--trials", type=int, default=D.TRIALS,
                   help="trials in the study in total, earlier runs included (default: %(default)s)")
    s.add_argument("--fitness", default=None,
                   help="v5 (0.1*map50+0.9*map50_95, default) | map50_95 | map50 | map75 | f1 | "
                        "a sum such as 0.2*map50+0.8*map75")
    s.add_argument("--study", help="study name (default: DATA-SPACE, e.g. demo-lr_momentum)")
    s.add_argument("--storage", help="Optuna storage URL (default: sqlite:///studies/NAME.db)")
    s.add_argument("--seed", type=int, default=None,
                   help="repeats the mini split and the searcher's draws; a whole search "
                        "repeats exactly with --concurrency 1 (with trials at once, proposals "
                        "depend on which trial finishes first)")
    s.add_argument("--concurrency", type=int, default=None,
                   help="trials at once (default: one per core on the CPU, one per GPU, at most a "
                        "quarter of --trials and 4)")
    s.add_argument("--cpus-per-trial", type=float, default=None,
                   help="CPU cores per trial (default: all cores / concurrency)")
    s.add_argument(
        "--gpus-per-trial", type=float, default=None,
        help="GPUs per trial, fractions share a GPU (default: GPUs / concurrency, 0 without)")
    s.add_argument("--fraction", default=D.FRACTION,
                   help="stratified share of train and of val per trial, or auto (default): half, "
                        "unless that leaves a trial under 100 optimizer steps (small data: more, "
                        "up to all images)")
    s.add_argument("--model", default=D.MODEL, help="model YAML or local .pt (default: %(default)s)")
    s.add_argument("--epochs", type=int, default=None,
                   help=f"epochs per trial (default: {D.EPOCHS}; demo data: {D.DEMO_PROFILE['epochs']})")
    s.add_argument("--imgsz", type=int, default=None,
                   help=f"training image size (default: {D.IMGSZ}; demo data: {D.DEMO_PROFILE['imgsz']})")
    s.add_argument("--batch", type=int, default=None,
                   help=f"batch size (default: {D.BATCH}; demo data: {D.DEMO_PROFILE['batch']})")
    s.add_argument("--device", default=None, help="ultralytics device, e.g. cpu, 0 (default: auto)")
    s.add_argument("--ga-parent", default=D.GA_PARENT,
                   help="GA parent selection: single | weighted (default: %(default)s)")
    s.add_argument("--no-baseline", dest="defaults_first", action="store_false",
                   help="do not make your plain training (yolo train with these flags) trial #0 "
                        "of a new study, nor ultralytics' default values trial #1")
    s.add_argument("--timeout", type=float, default=None,
                   help="seconds after which no new trial starts; running ones finish "
                        "(--trials stays the cap)")
    s.add_argument("--pruner", default=None,
                   help=f"early stopping: {_choices(PRUNERS)} (default: asha when the epochs allow "
                        "two rungs, else none; no pruner stops a trial while fitness cannot tell "
                        "trials apart)")
    s.add_argument("--address", default=None, help="join this Ray cluster (auto | HOST:PORT)")
    s.add_argument("--keep-weights", default="best",
                   help="which finished trials keep their weights: best (default: only the "
                        "study's best trial, replaced when a better one completes), all, none")
    s.add_argument("--objectives", default=None,
                   help="fitness (default), or fitness,latency | fitness,size | "
                        "fitness,latency,size: a multi-objective study over fitness and the "
                        "trained weights' CPU latency or size (searchers tpe, nsga2, gp, random, "
                        "grid; no pruning); the summary and the report show its Pareto front")
    s.add_argument("--max-size-mb", type=float, default=None,
                   help="trials whose trained weights (stripped .pt) are larger are infeasible: "
                        "never the best, never a GA parent (e.g. 100, an edge device's cap)")
    s.add_argument("--max-latency-ms", type=float, default=None,
                   help="trials whose median CPU latency at batch 1 (measured after the final "
                        "epoch, on the trial's threads) is higher are infeasible")
    s.add_argument("--drop-bad-images", action="store_true",
                   help="search even when ultralytics would leave out more than 5%% of the "
                        "images (automl check says why); without it the search stops first")
    s.add_argument("--repeats", type=int, default=0,
                   help="the last K trials train the K best once more with another training "
                        "seed; the best mean wins (default: 0)")

    d = sub.add_parser("demo-data", help="write the deterministic demo dataset")
    d.add_argument("--out", required=True, help="output folder (YOLO layout + data.yaml)")
    d.add_argument("--seed", type=int, default=0)

    st = sub.add_parser("studies", help="list studies with trial counts and best fitness")
    st.add_argument("--storage", help="Optuna storage URL (default: every studies/*.db)")

    sa = sub.add_parser("status", help="a study's progress (running trials, best, ETA), read from "
                                       "its storage: works for a search running elsewhere")
    sa.add_argument("--study", required=True)
    sa.add_argument("--storage", help="Optuna storage URL (default: sqlite:///studies/NAME.db)")

    ex = sub.add_parser("export", help="write best_hyperparameters.yaml and trials.csv of a study")
    ex.add_argument("--study", required=True)
    ex.add_argument("--storage", help="Optuna storage URL (default: sqlite:///studies/NAME.db)")
    ex.add_argument("--out", help="output folder (default: studies/NAME/)")

    db = sub.add_parser("dashboard", help="start optuna-dashboard on a study's storage")
    db.add_argument("--study", help="study name (its default storage is opened)")
    db.add_argument("--storage", help="Optuna storage URL")
    db.add_argument("--host", default="127.0.0.1", help="default: loopback only")
    db.add_argument("--port", type=int, default=8080)

    rp = sub.add_parser("report", help="write a self-contained plotly HTML report of a study")
    rp.add_argument("--study", required=True)
    rp.add_argument("--storage", help="Optuna storage URL (default: sqlite:///studies/NAME.db)")
    rp.add_argument("--out", default=None, help="HTML file (default: studies/NAME/report.html)")

    cli_data.register(sub)
    cli_promote.register(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command in cli_data.COMMANDS:
        return cli_data.run(args)
    if args.command in ("validate", "promote", "thresholds", "deploy"):
        return cli_promote.run(args)
    if args.command == "search":
        from automl.api import search

        result = search(
            data=args.data, space=args.space, searcher=args.searcher, trials=args.trials,
            fitness=args.fitness, study=args.study, storage=args.storage, seed=args.seed,
            concurrency=args.concurrency, cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial, fraction=args.fraction, model=args.model,
            epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device=args.device,
            ga_parent=args.ga_parent, pruner=args.pruner, address=args.address, timeout=args.timeout,
            defaults_first=args.defaults_first, repeats=args.repeats,
            keep_weights=args.keep_weights, objectives=args.objectives,
            max_size_mb=args.max_size_mb, max_latency_ms=args.max_latency_ms,
            drop_bad_images=args.drop_bad_images,
        )
        if result.best is None:
            # scripts must be able to tell: nothing to promote, nothing learned
            print("automl search: no trial completed (every trial failed or was stopped); see the "
                  f"errors above, or `automl studies`; study '{result.study.study_name}'",
                  file=sys.stderr)
            return EXIT_FAILED
    elif args.command == "demo-data":
        from automl.demo import make_demo_dataset

        print(make_demo_dataset(args.out, seed=args.seed))
    elif args.command == "studies":
        from automl.api import studies_table

        print(studies_table(args.storage))
    elif args.command == "status":
        from automl.api import status

        print(status(args.study, storage=args.storage))
    elif args.command == "export":
        from automl.api import export

        for kind, path in export(args.study, storage=args.storage, out=args.out).items():
            print(f"{kind}: {path}")
    elif args.command == "report":
        from automl.api import report

        print(report(args.study, storage=args.storage, out=args.out))
    elif args.command == "dashboard":
        from automl.dashboard import resolve_storage, serve

        serve(resolve_storage(args.study, args.storage), host=args.host, port=args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except AutoMLError as e:
        print(f"automl {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\nautoml {args.command}: interrupted; finished trials are kept in the study. "
              "Run the same command again to resume.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
