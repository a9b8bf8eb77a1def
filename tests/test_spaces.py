from __future__ import annotations

import pytest

from automl.errors import SearchSpaceError
from automl.searching.spaces import builtin_names, load_space, parse_space
from tests.conftest import write


def test_builtin_spaces_all_load():
    assert {"lr_momentum", "optimizer", "loss_gains", "augmentation", "full"} <= set(builtin_names())
    for name in builtin_names():
        space = load_space(name)
        assert space.params, name


def test_lr_momentum_tunes_the_optimizer_that_trains_on_ranges_suited_to_it():
    space = load_space("lr_momentum")
    assert space.keys == ("lr0", "lrf", "momentum")
    lr0, lrf, mom = space["lr0"], space["lrf"], space["momentum"]
    # log, 1e-3..1e-1 for every optimizer auto picks: below 1e-3 short trainings learn nothing
    # (the recorded small regime, benchmarks/records/small.npz)
    assert (lr0.low, lr0.high, lr0.log, lr0.gain) == (1e-3, 1e-1, True, 1.0)
    assert (lrf.low, lrf.high, lrf.gain) == (0.01, 1.0, 1.0)
    assert (mom.low, mom.high, mom.gain) == (0.6, 0.98, 0.3)
    # auto is resolved by automl as ultralytics would (lr0 and momentum then take effect)
    assert space.fixed == {"optimizer": "auto"}
    for sgd in ("SGD", "MuSGD"):
        resolved = space.for_optimizer(sgd)
        assert (resolved["lr0"].low, resolved["lr0"].high, resolved["lr0"].log) == (1e-3, 1e-1, True)
        assert resolved["momentum"] == mom and resolved["lrf"] == lrf
    assert space.for_optimizer("AdamW") is space


@pytest.mark.parametrize(("by_optimizer", "message"), [
    ({"Adagrad": {"lr0": {"low": 0.1, "high": 0.2}}}, "by_optimizer: Adagrad: not an optimizer"),
    ({"SGD": {"box": {"low": 1.0, "high": 2.0}}}, "by_optimizer: SGD: box: not under 'params'"),
    ({"SGD": {"lr0": {"low": 0.2, "high": 0.1}}}, r"by_optimizer: SGD: lr0: low > high"),
    ({"SGD": []}, "by_optimizer: SGD: must map keys to ranges"),
    (["SGD"], "'by_optimizer' must map an optimizer name"),
])
def test_bad_by_optimizer_sections_name_the_entry(by_optimizer, message):
    raw = {"params": {"lr0": {"low": 1e-4, "high": 0.1, "log": True}}, "by_optimizer": by_optimizer}
    with pytest.raises(SearchSpaceError, match=message):
        parse_space(raw, source="s.yaml")


def test_types_and_distributions():
    space = load_space("optimizer")
    dists = space.distributions()
    assert dists["optimizer"].choices == ("SGD", "Adam", "AdamW")
    assert dists["cos_lr"].choices == (False, True)
    assert dists["lr0"].log is True
    space = parse_space({"params": {"close_mosaic": {"low": 0, "high": 10, "step": 2}}})
    assert space["close_mosaic"].kind == "int"
    assert space.distributions()["close_mosaic"].step == 2


def test_space_by_path(tmp_path):
    path = write(tmp_path / "mine.yaml", "params:\n  box: {low: 1.0, high: 9.0}\n")
    space = load_space(str(path))
    assert space.name == "mine" and space.keys == ("box",)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("params:\n  lr00: {low: 0.001, high: 0.1}\n", "lr00: is not an ultralytics training argument; did you mean 'lr0'"),
        ("params:\n  lr0: {low: 0.1, high: 0.01}\n", "lr0: low > high"),
        ("params:\n  lr0: {low: 0.0, high: 0.1, log: true}\n", "lr0: log: true needs low > 0"),
        ("params:\n  optimizer: {type: categorical, choices: []}\n", "optimizer: choices must be a non-empty list"),
        ("params:\n  lr0: {low: 0.001, high: 2.0}\n", "lr0: ultralytics rejects the value 2.0"),
        ("params:\n  optimizer: {choices: [SGD, Lion]}\n", "optimizer: unknown optimizer 'Lion'"),
        ("params:\n  cos_lr: {choices: [\"yes\", \"no\"]}\n", "cos_lr: ultralytics rejects the value 'yes'"),
        ("params:\n  lr0: {low: 0.001, high: 0.1, sigma: 2}\n", "lr0: unknown field(s) sigma"),
        ("params:\n  lr0: {low: 0.001, high: 0.1, gain: -1}\n", "lr0: gain must be a number >= 0"),
        ("params:\n  lr0: {low: 0.001, high: 0.1, log: true, step: 0.01}\n", "lr0: log and step cannot be combined"),
        ("params:\n  epochs: {low: 1, high: 9}\n", "epochs: is set by automl's own flags"),
        ("fixed: {single_cls: true}\nparams:\n  lr0: {low: 0.001, high: 0.1}\n",
         "single_cls: changes which labels the trials train on; give it as your training setting"),
        ("fixed:\n  imgsz: 320\nparams:\n  lr0: {low: 0.001, high: 0.1}\n",
         "imgsz: is fixed by automl's --imgsz flag; list it under 'params' to search it"),
        ("params:\n  model: {choices: [yolo11n.yaml, nosuch.yaml]}\n",
         "model: choice nosuch.yaml: no such model YAML"),
        ("params:\n  model: {choices: [yolo11n.yaml, missing.pt]}\n",
         "model: choice missing.pt: weights file not found"),
        ("params:\n  imgsz: {choices: [16, 64]}\n", "imgsz: must be whole pixel sizes of at least 32"),
        ("params:\n  imgsz: {low: 64.0, high: 320.5}\n", "imgsz: must be whole pixel sizes"),
        ("params:\n  lr0: {type: float, low: x, high: 0.1}\n", "lr0: 'low' must be a finite number"),
        ("prams:\n  lr0: {low: 0.001, high: 0.1}\n", "unknown top-level key(s) prams"),
        ("params: {}\n", "'params' must map at least one"),
        ("fixed:\n  optimizer: SGD\nparams:\n  optimizer: {choices: [SGD]}\n", "optimizer: is both in 'fixed' and in 'params'"),
        ("params:\n  lr0: [0.001, 0.1\n", "is not valid YAML"),
    ],
)
def test_bad_space_names_file_and_key(tmp_path, body, expected):
    path = write(tmp_path / "bad.yaml", body)
    with pytest.raises(SearchSpaceError) as info:
        load_space(str(path))
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert expected in message, message
    assert "\n" not in message


def test_model_and_imgsz_can_be_searched():
    space = parse_space({"params": {"model": {"choices": ["yolo11n.yaml", "yolov8n.yaml"]},
                                    "imgsz": {"low": 320, "high": 640, "step": 32},
                                    "lr0": {"low": 1e-3, "high": 1e-1, "log": True}}})
    assert space.keys == ("model", "imgsz", "lr0")
    assert space["model"].choices == ("yolo11n.yaml", "yolov8n.yaml") and space["imgsz"].kind == "int"


def test_unknown_builtin_name_suggests():
    with pytest.raises(SearchSpaceError, match="did you mean 'lr_momentum'"):
        load_space("lr_momentun")


def test_missing_space_file(tmp_path):
    with pytest.raises(SearchSpaceError, match="search space file not found"):
        load_space(str(tmp_path / "nope.yaml"))


def test_clip_respects_bounds_step_and_int():
    space = parse_space({"params": {
        "box": {"low": 1.0, "high": 5.0, "step": 0.5},
        "close_mosaic": {"low": 0, "high": 10},
        "optimizer": {"choices": ["SGD", "AdamW"]},
    }})
    assert space["box"].clip(7.3) == 5.0
    assert space["box"].clip(2.3) == 2.5
    assert space["close_mosaic"].clip(3.6) == 4 and isinstance(space["close_mosaic"].clip(3.6), int)
    assert space["optimizer"].clip("Adam") == "SGD"
