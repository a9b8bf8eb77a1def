"""The commands after a search: `automl validate`, `promote`, `thresholds` and `deploy`, a thin
CLI over automl.results (validation, promotion, thresholds, deployment; their options:
automl.options; each API function checks its own)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def _validate(values: dict[str, Any]) -> int:
    from automl.api import validate
    from automl.next_steps import after_validate, show

    try:
        validate(**values)
        show(after_validate(values["study"], values["storage"]))
    except KeyboardInterrupt:
        print("\nautoml validate: interrupted; finished runs are kept. Run the same command "
              "again to continue.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _deploy(values: dict[str, Any]) -> int:
    from automl.api import deploy
    from automl.next_steps import after_deploy, show

    result = deploy(**values)
    show(after_deploy(result.study, values["storage"]))
    return 0


def _thresholds(values: dict[str, Any]) -> int:
    from automl.api import tune_thresholds
    from automl.next_steps import after_thresholds, show

    tune_thresholds(**values)
    show(after_thresholds(values["weights"]))
    return 0


def _promote(values: dict[str, Any]) -> int:
    from automl.api import promote
    from automl.next_steps import after_promote, show
    from automl.results.promotion import PromoteError

    try:
        show(after_promote(promote(**values)))
    except PromoteError as e:
        print(f"automl promote: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\nautoml promote: interrupted; run the same command again to continue from last.pt",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


RUNNERS: dict[str, Callable[[dict[str, Any]], int]] = {
    "validate": _validate, "promote": _promote, "thresholds": _thresholds, "deploy": _deploy}
