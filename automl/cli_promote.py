"""`automl validate`, `automl promote` and `automl thresholds`: the full-data steps after a
search, a thin CLI over automl.validation / automl.promotion / automl.thresholds."""

from __future__ import annotations

import argparse
import sys

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def _add_threshold_flags(p: argparse.ArgumentParser, *, metric_default: str | None) -> None:
    p.add_argument("--metric", default=metric_default,
                   help="fitness (0.1*map50+0.9*map50_95) | map50_95 | map75 | map50 | f1 | an "
                        "expression such as 0.5*map75+0.5*f1"
                        + (" (default: %(default)s)" if metric_default else
                           " (default: the study's fitness)"))
    p.add_argument("--conf-grid", nargs="+", default=None, metavar="C",
                   help="confidence thresholds in (0, 1), e.g. 0.001 0.01 0.1 or 0.001,0.01 "
                        "(default: 10 values from 0.001 to 0.35)")
    p.add_argument("--iou-grid", nargs="+", default=None, metavar="I",
                   help="NMS IoU thresholds in (0, 1) (default: 0.4 to 0.85 in steps of 0.05)")


def register(subparsers) -> None:
    """Add the promote and thresholds subcommands to automl's subparsers."""
    from automl.promotion import FULL_DATA_CHOICES

    p = subparsers.add_parser("promote", help="train a study's best trial on the full data")
    p.add_argument("--study", required=True, help="study name")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///studies/NAME.db)")
    p.add_argument("--trial", type=int, default=None,
                   help="trial number to promote (default: the best COMPLETE trial)")
    p.add_argument("--data", help="data.yaml (default: the data the study searched on, in full)")
    p.add_argument("--full-data", default="train", choices=FULL_DATA_CHOICES,
                   help="train on train, or on train+val images (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="default: the study's epochs")
    p.add_argument("--model", default=None, help="model YAML or local .pt (default: the study's)")
    p.add_argument("--imgsz", type=int, default=None, help="default: the study's imgsz")
    p.add_argument("--batch", type=int, default=None, help="default: the study's batch")
    p.add_argument("--device", default=None, help="ultralytics device, e.g. cpu, 0 (default: auto)")
    p.add_argument("--project", default="runs/promote",
                   help="runs go to PROJECT/STUDY-trialN (default: %(default)s)")
    p.add_argument("--tune-thresholds", action="store_true",
                   help="then tune NMS IoU and conf on best.pt (see automl thresholds)")
    _add_threshold_flags(p, metric_default=None)

    v = subparsers.add_parser("validate", help="train a study's top trials and its plain training "
                                               "on the full data: does the mini winner win?")
    v.add_argument("--study", required=True, help="study name")
    v.add_argument("--storage", help="Optuna storage URL (default: sqlite:///studies/NAME.db); "
                                     "the validation goes to the study NAME-validate there")
    v.add_argument("--top", type=int, default=5,
                   help="how many of the best trials (noise-aware where --repeats ran); the "
                        "plain training #0 is added (default: %(default)s)")
    v.add_argument("--seeds", type=int, default=2,
                   help="training seeds per configuration (default: %(default)s)")
    v.add_argument("--epochs", type=int, default=None, help="default: the study's epochs")
    v.add_argument("--full-data", default="train", choices=FULL_DATA_CHOICES,
                   help="train on train, or on train+val images (default: %(default)s)")
    v.add_argument("--data", help="data.yaml (default: the data the study searched on, in full)")
    v.add_argument("--device", default=None, help="ultralytics device, e.g. cpu, 0 (default: auto)")
    v.add_argument("--concurrency", type=int, default=1, help="trainings at once (default: 1)")
    v.add_argument("--cpus-per-trial", type=float, default=None,
                   help="CPU cores per training (default: all cores / concurrency)")
    v.add_argument("--gpus-per-trial", type=float, default=None,
                   help="GPUs per training, fractions share a GPU (default: GPUs / concurrency)")
    v.add_argument("--address", default=None, help="join this Ray cluster (auto | HOST:PORT)")

    dp = subparsers.add_parser("deploy", help="export weights (ONNX, OpenVINO; fp32 and int8) and "
                                              "measure size, CPU latency and accuracy of each")
    dp.add_argument("--weights", required=True, help="trained detection weights (.pt)")
    dp.add_argument("--formats", default="onnx", help="onnx, openvino or both: onnx,openvino "
                                                      "(default: %(default)s)")
    dp.add_argument("--int8", action="store_true",
                    help="also export int8, calibrated on the data's training images")
    dp.add_argument("--data", default=None,
                    help="data.yaml: val measures accuracy, train calibrates int8 (default: the "
                         "data the weights were trained on)")
    dp.add_argument("--imgsz", type=int, default=None, help="default: the weights' training imgsz")
    dp.add_argument("--threads", type=int, default=None,
                    help="CPU threads for the latency runs (default: all cores)")
    dp.add_argument("--runs", type=int, default=50, help="timed runs per artifact (default: 50)")
    dp.add_argument("--study", default=None,
                    help="record the table on this study's promotion of the weights (default: "
                         "from the run folder's name, runs/promote/STUDY-trialN)")
    dp.add_argument("--storage", default=None, help="the study's storage URL")

    t = subparsers.add_parser("thresholds",
                              help="tune NMS IoU and confidence thresholds from cached predictions")
    t.add_argument("--weights", required=True, help="trained detection weights (.pt)")
    t.add_argument("--data", required=True, help="data.yaml")
    t.add_argument("--split", default="val", help="split to measure on (default: %(default)s)")
    t.add_argument("--imgsz", type=int, default=None, help="default: the weights' training imgsz")
    t.add_argument("--batch", type=int, default=None, help="validation batch (default: 16, as model.val)")
    t.add_argument("--device", default=None, help="ultralytics device (default: auto)")
    _add_threshold_flags(t, metric_default="fitness")


def run(args: argparse.Namespace) -> int:
    """Run validate, promote or thresholds; AutoMLError (user mistakes) propagates to
    automl.cli (exit 2)."""
    if args.command == "validate":
        from automl.api import validate

        try:
            validate(study=args.study, storage=args.storage, top=args.top, seeds=args.seeds,
                     epochs=args.epochs, full_data=args.full_data, data=args.data,
                     device=args.device, concurrency=args.concurrency,
                     cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                     address=args.address)
        except KeyboardInterrupt:
            print("\nautoml validate: interrupted; finished runs are kept. Run the same command "
                  "again to continue.", file=sys.stderr)
            return EXIT_INTERRUPTED
        return 0
    if args.command == "deploy":
        from automl.api import deploy

        deploy(weights=args.weights, formats=args.formats, int8=args.int8, data=args.data,
               imgsz=args.imgsz, threads=args.threads, runs=args.runs, study=args.study,
               storage=args.storage)
        return 0
    if args.command == "thresholds":
        from automl.api import tune_thresholds

        tune_thresholds(weights=args.weights, data=args.data, split=args.split, metric=args.metric,
                        conf_grid=args.conf_grid, iou_grid=args.iou_grid, imgsz=args.imgsz,
                        batch=args.batch, device=args.device)
        return 0
    from automl.api import promote
    from automl.promotion import PromoteError

    try:
        promote(study=args.study, storage=args.storage, trial=args.trial, data=args.data,
                full_data=args.full_data, epochs=args.epochs, model=args.model,
                device=args.device, imgsz=args.imgsz, batch=args.batch, project=args.project,
                tune_thresholds=args.tune_thresholds, metric=args.metric,
                conf_grid=args.conf_grid, iou_grid=args.iou_grid)
    except PromoteError as e:
        print(f"automl promote: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\nautoml promote: interrupted; run the same command again to continue from last.pt",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
