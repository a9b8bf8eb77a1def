"""The data subcommands: `automl check`, `split`, `eda` and `import coco`."""

from __future__ import annotations

import argparse

COMMANDS = ("check", "split", "eda", "import")
EXIT_PROBLEMS = 1  # `automl check` found defects (a bad data.yaml is a usage error: 2)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the data subcommands to the `automl` parser."""
    c = sub.add_parser("check", help="validate every image and label; exit 1 if anything is wrong")
    c.add_argument("--data", required=True, help="data.yaml")
    c.add_argument("--workers", type=int, default=None,
                   help="processes for large datasets (default: all cores)")

    s = sub.add_parser("split", help="stratified k-fold and/or mini splits (image lists, no copies)")
    s.add_argument("--data", required=True, help="data.yaml (train and val are pooled for --folds)")
    s.add_argument("--folds", type=int, default=None, help="K stratified folds: foldI/ per fold")
    s.add_argument("--fold", type=int, default=None, help="write only fold I (0-based)")
    s.add_argument("--mini", type=float, default=None,
                   help="also write a stratified fraction F of train and of val (foldI/mini/, or "
                        "OUT itself without --folds); the same code as search --fraction")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output folder")

    e = sub.add_parser("eda", help="dataset statistics: a self-contained plotly HTML + text summary")
    e.add_argument("--data", required=True, help="data.yaml")
    e.add_argument("--out", default="eda.html", help="HTML report path (default: %(default)s)")
    e.add_argument("--small-area", type=float, default=None,
                   help="boxes under this area in pixels count as small (default: 32*32)")

    i = sub.add_parser("import", help="convert annotations to YOLO labels")
    isub = i.add_subparsers(dest="format", required=True, parser_class=type(i))
    co = isub.add_parser("coco", help="COCO JSON -> YOLO labels + data.yaml (images linked, not copied)")
    co.add_argument("--json", required=True, help="COCO annotation file")
    co.add_argument("--images", required=True, help="folder the JSON's file_name entries are under")
    co.add_argument("--out", required=True, help="output folder")
    co.add_argument("--class-from", default=None, metavar="REGEX",
                    help="take the class from the image path (group 1, else the whole match) "
                         "instead of category_id")
    co.add_argument("--names", default=None,
                    help="class names in id order, comma separated (with --class-from)")
    co.add_argument("--val", type=float, default=0.2,
                    help="stratified share of images for val (default: %(default)s)")
    co.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Run a data subcommand; returns the exit code."""
    if args.command == "check":
        return _check(args)
    if args.command == "split":
        return _split(args)
    if args.command == "eda":
        from automl.eda import write_eda

        summary = write_eda(args.data, args.out, small_area=args.small_area)
        print(summary)
        print(f"report: {args.out}")
        return 0
    if args.command == "import":
        from automl.coco import import_coco

        names = [n.strip() for n in args.names.split(",")] if args.names else None
        result = import_coco(args.json, args.images, args.out, class_from=args.class_from,
                             names=names, val=args.val, seed=args.seed)
        print(result.summary())
        return 0
    raise AssertionError(args.command)  # register() and COMMANDS disagree


def _check(args: argparse.Namespace) -> int:
    from automl.checks import check_dataset
    from automl.data import load_dataset

    report = check_dataset(load_dataset(args.data), workers=args.workers)
    if not report.clean:
        print(report.details())
    print(report.summary())
    return 0 if report.clean else EXIT_PROBLEMS


def _split(args: argparse.Namespace) -> int:
    from pathlib import Path

    from automl.checks import usable
    from automl.data import fold_table, kfold_split, load_dataset, make_mini_dataset, write_folds
    from automl.errors import ConfigError

    if args.fold is not None and args.folds is None:
        raise ConfigError(f"--fold {args.fold}: needs --folds K")
    if args.folds is None and args.mini is None:
        raise ConfigError("nothing to write: pass --folds K, --mini F, or both")
    if args.mini is not None and not 0 < args.mini <= 1:
        raise ConfigError(f"--mini {args.mini}: must be in (0, 1]; 1 keeps every image")
    dataset, report = usable(load_dataset(args.data))  # as ultralytics reads it
    if report.bad:
        print(f"{len(report.bad)} of {report.checked} images left out, as ultralytics leaves them "
              f"out of training (automl check --data {args.data} says why)")
    if args.folds is None:
        print(make_mini_dataset(dataset, args.mini, Path(args.out), seed=args.seed))
        return 0
    split = kfold_split(dataset, args.folds, seed=args.seed)
    written = write_folds(split, args.out, only=args.fold, mini=args.mini, seed=args.seed)
    print(fold_table(split))
    for path in written:
        print(path)
    return 0
