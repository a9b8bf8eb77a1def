"""The `automl` command: a thin layer over the Python API. User mistakes exit 2 with one line.

Its parsers are built from the declarations in automl.options (one per option: flag, type,
default, help, check); the commands run through automl.api (search and the study commands),
automl.cli_data (check, split, eda, import) and automl.cli_results (validate, promote, thresholds,
deploy).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import Any

from automl import cli_data, cli_results
from automl.errors import AutoMLError

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_option(parser: argparse.ArgumentParser, option, registries: Mapping[str, Any]) -> None:
    if not option.cli_flag.startswith("-"):  # positional: `automl search ... KEY=VALUE ...`
        parser.add_argument(option.name, nargs=option.nargs, default=option.default,
                            metavar=option.metavar, help=option.help_text(registries))
        return
    if option.switch:
        parser.add_argument(option.cli_flag, dest=option.name, help=option.help_text(registries),
                            action="store_true" if option.switch == "on" else "store_false")
        return
    parser.add_argument(option.cli_flag, dest=option.name, type=option.type,
                        default=option.default, required=option.required, nargs=option.nargs,
                        metavar=option.metavar, choices=option.choices, help=option.help_text(registries))


def build_parser() -> argparse.ArgumentParser:
    """The `automl` parser, one subparser per command of automl.options.COMMANDS."""
    from automl import __version__
    from automl.options import COMMANDS, GROUPS
    from automl.searching.samplers import SEARCHERS
    from automl.searching.schedulers import PRUNERS

    registries = {"samplers": SEARCHERS, "schedulers": PRUNERS}
    parser = _Parser(prog="automl", description="Hyperparameter search for YOLO detection training.")
    parser.add_argument("--version", action="version", version=f"automl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    groups: dict[str, argparse._SubParsersAction] = {}
    for command in COMMANDS.values():
        name, _, below = command.name.partition(" ")
        if below:  # `import coco`: a subcommand of `import`
            if name not in groups:
                groups[name] = sub.add_parser(name, help=GROUPS[name]).add_subparsers(
                    dest="subcommand", required=True, parser_class=_Parser)
            p = groups[name].add_parser(below, help=command.help)
        else:
            p = sub.add_parser(name, help=command.help)
        for option in command.options:
            _add_option(p, option, registries)
    return parser


def command_of(args: argparse.Namespace) -> str:
    """The command's name in automl.options.COMMANDS (`import coco` for `automl import coco`)."""
    below = getattr(args, "subcommand", None)
    return f"{args.command} {below}" if below else args.command


def values_of(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options of the command, by their API names."""
    from automl.options import COMMANDS

    return {o.name: getattr(args, o.name) for o in COMMANDS[command_of(args)].options}


def _search(values: dict[str, Any]) -> int:
    from automl.api import search
    from automl.next_steps import after_search, show

    result = search(**values)
    if result.best is None:
        # scripts must be able to tell: nothing to promote, nothing learned
        print("automl search: no trial completed (every trial failed or was stopped); see the "
              f"errors above, or `automl studies`; study '{result.study.study_name}'",
              file=sys.stderr)
        return EXIT_FAILED
    show(after_search(result.study, values["storage"], result.best_hyperparameters_path))
    return 0


def _fit(values: dict[str, Any]) -> int:
    from automl.api import fit
    from automl.next_steps import after_fit, show

    try:
        show(after_fit(fit(**values)))
    except KeyboardInterrupt:
        print("\nautoml fit: interrupted; run the same command again to go on from the step it "
              "stopped at (finished steps are kept)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _demo_data(values: dict[str, Any]) -> int:
    from automl.data.demo import make_demo_dataset
    from automl.next_steps import after_data, show
    from automl.outputs import output_folder

    data = make_demo_dataset(output_folder(values["out"], new_or_empty=True), seed=values["seed"])
    print(data)
    show(after_data(data))
    return 0


def _studies(values: dict[str, Any]) -> int:
    from automl.api import studies_table

    print(studies_table(values["storage"]))
    return 0


def _status(values: dict[str, Any]) -> int:
    from automl.api import status
    from automl.next_steps import after_status, show

    print(status(values["study"], storage=values["storage"]))
    show(after_status(values["study"], values["storage"]))
    return 0


def _export(values: dict[str, Any]) -> int:
    from automl.api import export_study
    from automl.outputs import output_folder

    if values["out"] is not None:
        output_folder(values["out"])
    files = export_study(values["study"], storage=values["storage"], out=values["out"])
    for kind, path in files.items():
        print(f"{kind}: {path}")
    from automl.next_steps import after_export, show
    from automl.study import open_study, study_config

    show(after_export(files, study_config(open_study(values["study"], values["storage"],
                                                     create=False))))
    return 0


def _report(values: dict[str, Any]) -> int:
    from automl.api import report
    from automl.next_steps import after_report, show
    from automl.outputs import output_file

    out = values["out"] and output_file(values["out"], "report.html")
    print(report(values["study"], storage=values["storage"], out=out))
    show(after_report(values["study"], values["storage"]))
    return 0


def _dashboard(values: dict[str, Any]) -> int:
    from automl.results.dashboard import resolve_storage, serve

    serve(resolve_storage(values["study"], values["storage"]), host=values["host"],
          port=values["port"])
    return 0


RUNNERS: dict[str, Callable[[dict[str, Any]], int]] = {
    "search": _search, "demo-data": _demo_data, "studies": _studies, "status": _status,
    "export": _export, "report": _report, "dashboard": _dashboard, "fit": _fit,
    **cli_data.RUNNERS, **cli_results.RUNNERS,
}
# commands whose API function checks its own options (automl.options.check); the CLI checks the
# others' before it runs them, so that every value is checked once
CHECKED_BY_THE_API = {"search", "promote", "validate", "deploy", "thresholds", "fit"}


def main(argv: list[str] | None = None) -> int:
    from automl.options import check

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    command = command_of(args)
    settings = hasattr(args, "train_args")
    unknown = [a for a in extra if a.startswith("-")] if settings else extra
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        # KEY=VALUE settings between flags: argparse gives the first run of them to the
        # positional, the rest come back here
        args.train_args = [*(args.train_args or ()), *extra]
    try:
        values = values_of(args)
        if command not in CHECKED_BY_THE_API:
            check(command, values)
        return RUNNERS[command](values)
    except AutoMLError as e:
        print(f"automl {command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\nautoml {command}: interrupted; finished trials are kept in the study. "
              "Run the same command again to resume.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
