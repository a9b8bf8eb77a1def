"""The data commands: `automl check`, `split`, `eda` and `import coco` (options: automl.options)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_PROBLEMS = 1  # `automl check` found defects (a bad data.yaml is a usage error: 2)


def _check(values: dict[str, Any]) -> int:
    from automl.data.checks import check_dataset
    from automl.searching.settings import read_as_trained, read_settings

    # the images and labels a training with these settings reads (fraction=, single_cls)
    settings, _ = read_settings(values.get("train_args") or ())
    report = check_dataset(read_as_trained(values["data"], settings), workers=values["workers"],
                           single_cls=bool(settings.get("single_cls")))
    if not report.clean:
        print(report.details())
    print(report.summary())
    from automl.next_steps import after_data, show

    show(after_data(values["data"], clean=report.clean))
    return 0 if report.clean else EXIT_PROBLEMS


def _split(values: dict[str, Any]) -> int:
    from automl.data.checks import usable
    from automl.data.dataset import load_dataset
    from automl.data.splits import fold_table, kfold_split, make_mini_dataset, write_folds
    from automl.errors import ConfigError
    from automl.next_steps import after_data, show
    from automl.outputs import SPLIT_MARKER, mark, output_folder

    folds, fold, mini, seed = (values[k] for k in ("folds", "fold", "mini", "seed"))
    if fold is not None and folds is None:
        raise ConfigError(f"--fold {fold}: needs --folds K")
    if fold is not None and fold >= folds:
        raise ConfigError(f"--fold {fold}: must be in 0..{folds - 1} for --folds {folds}")
    if folds is None and mini is None:
        raise ConfigError("nothing to write: pass --folds K, --mini F, or both")
    out = output_folder(values["out"], marker=SPLIT_MARKER)
    dataset, report = usable(load_dataset(values["data"]))  # as ultralytics reads it
    if report.bad:
        print(f"{len(report.bad)} of {report.checked} images left out, as ultralytics leaves them "
              f"out of training (automl check --data {values['data']} says why)")
    if folds is None:
        data = make_mini_dataset(dataset, mini, Path(out), seed=seed)
        print(data)
        mark(out, SPLIT_MARKER)
        show(after_data(data))
        return 0
    split = kfold_split(dataset, folds, seed=seed)
    written = write_folds(split, out, only=fold, mini=mini, seed=seed)
    mark(out, SPLIT_MARKER)
    print(fold_table(split))
    for path in written:
        print(path)
    show(after_data(written[0]))
    return 0


def _eda(values: dict[str, Any]) -> int:
    from automl.data.eda import write_eda
    from automl.outputs import output_file

    out = output_file(values["out"], "eda.html")
    print(write_eda(values["data"], out, small_area=values["small_area"]))
    print(f"report: {out}")
    from automl.next_steps import after_data, show

    show(after_data(values["data"]))
    return 0


def _import_coco(values: dict[str, Any]) -> int:
    from automl.data.coco import import_coco
    from automl.outputs import output_folder

    names = [n.strip() for n in values["names"].split(",")] if values["names"] else None
    out = output_folder(values["out"], new_or_empty=True)
    result = import_coco(values["json"], values["images"], out, class_from=values["class_from"],
                         names=names, val=values["val"], seed=values["seed"])
    print(result.summary())
    from automl.next_steps import after_data, show

    show(after_data(result.data_yaml))
    return 0


RUNNERS: dict[str, Callable[[dict[str, Any]], int]] = {
    "check": _check, "split": _split, "eda": _eda, "import coco": _import_coco}
