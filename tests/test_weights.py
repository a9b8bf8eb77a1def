"""Weights are data: crafted pickles are refused, through every command that takes weights,
without any of their code running; real checkpoints load."""

from __future__ import annotations

import collections
import copyreg
import functools
import io
import operator
import os
import pickle
import subprocess
import zipfile

import pytest
import torch

from automl.errors import ConfigError
from automl.weights import UnsafeWeightsError, read_weights
from tests.conftest import run_cli

MARKER = "pwned"  # every payload creates this file in the working directory when it runs
TOUCH = f"open({MARKER!r}, 'w').close()"


class _Call:
    """Pickles as a call of `func(*args)`: how a crafted checkpoint runs code when loaded."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __call__(self, *args):  # pickle only saves callables as a reduce's function
        raise AssertionError("never called by the test itself")

    def __reduce__(self):
        return self.func, self.args


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)  # the zip container torch.save (and ultralytics) write
    return buffer.getvalue()


def _in_container(pickle_bytes: bytes) -> bytes:
    """A real torch.save zip checkpoint whose data.pkl is replaced by `pickle_bytes`."""
    source = zipfile.ZipFile(io.BytesIO(_saved({"epoch": 1})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name in source.namelist():
            archive.writestr(name, pickle_bytes if name.endswith("data.pkl") else source.read(name))
    return out.getvalue()


def _runstring():
    from numpy.testing._private.utils import runstring  # exec(astr, dict)

    return _Call(runstring, TOUCH, {})


def _exec_with_source():
    from torch.fx.graph_module import _exec_with_source  # exec(compile(src, ...), globals)

    return _Call(_exec_with_source, TOUCH, {})


def _in_model_state():
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolo11n.yaml", verbose=False)
    model.evil = _Call(os.system, f"touch {MARKER}")  # an attribute of a real model's state
    return _saved({"model": model})


def _sh(text: str) -> bytes:
    return text.encode()


def _short(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data  # SHORT_BINUNICODE


_DETECTION_CFG = {"nc": 1, "activation": f"__import__('builtins').exec({TOUCH!r}) or __import__("
                  "'torch').nn.SiLU()", "backbone": [[-1, 1, "Conv", [16, 3, 2]]],
                  "head": [[-1, 1, "Conv", [16, 3, 2]]]}

# id -> (the .pt file's bytes, what the refusal names)
PAYLOADS = {
    "os.system": (lambda: _saved({"model": _Call(os.system, f"touch {MARKER}")}), "system"),
    "subprocess.Popen": (lambda: _saved({"ema": _Call(subprocess.Popen, ["touch", MARKER])}),
                         "subprocess.Popen"),
    "builtins.eval": (lambda: _saved({"x": _Call(eval, TOUCH)}), "builtins.eval"),
    "builtins.exec": (lambda: _saved({"x": _Call(exec, TOUCH)}), "builtins.exec"),
    "builtins.getattr": (lambda: _saved([_Call(_Call(getattr, _Call(__import__, "os"), "system"),
                                               f"touch {MARKER}")]), "builtins.getattr"),
    "builtins.__import__": (lambda: _saved({"x": _Call(__import__, "os")}), "builtins.__import__"),
    "numpy runstring": (lambda: _saved({"train_args": _runstring()}),
                        "numpy.testing._private.utils.runstring"),
    "torch.fx exec_with_source": (lambda: _saved({"optimizer": _exec_with_source()}),
                                  "torch.fx.graph_module._exec_with_source"),
    "in a model's state": (_in_model_state, "system"),
    "in list/dict/OrderedDict": (lambda: _saved({"train_args": {"a": [collections.OrderedDict(
        b=[_Call(os.system, f"touch {MARKER}")])]}}), "system"),
    "functools.partial": (lambda: _saved({"x": _Call(functools.partial(os.system,
                                                                       f"touch {MARKER}"))}),
                          "functools.partial"),
    "operator.attrgetter": (lambda: _saved({"x": _Call(_Call(operator.attrgetter("system"),
                                                             _Call(__import__, "os")),
                                                       f"touch {MARKER}")}), "operator.attrgetter"),
    "operator.methodcaller": (lambda: _saved({"x": _Call(operator.methodcaller(
        "system", f"touch {MARKER}"), _Call(__import__, "os"))}), "operator.methodcaller"),
    "copyreg._reconstructor": (lambda: _saved({"x": _Call(
        copyreg._reconstructor, subprocess.Popen, subprocess.Popen, ["touch", MARKER])}),
        "copyreg._reconstructor"),
    # hand-written pickles in a real checkpoint container
    "STACK_GLOBAL": (lambda: _in_container(
        b"\x80\x04" + _short("os") + _short("system") + b"\x93" + _short(f"touch {MARKER}")
        + b"\x85R."), "os.system"),
    "STACK_GLOBAL from the memo": (lambda: _in_container(
        b"\x80\x04" + _short("system") + b"\x94" + _short("os") + b"\x94" + b"h\x01h\x00\x93"
        + _short(f"touch {MARKER}") + b"\x85R."), "os.system"),
    "INST": (lambda: _in_container(_sh(f"(S'touch {MARKER}'\nios\nsystem\n.")), "opcode INST"),
    "OBJ": (lambda: _in_container(_sh("(ccollections\nOrderedDict\no.")), "opcode OBJ"),
    "BUILD on a global": (lambda: _in_container(
        b"\x80\x02cultralytics.nn.modules.conv\nConv\n" + b"N}" + _short("default_act") + b"N"
        + b"s\x86b."), "sets the state of a global"),
    "py2 name __builtin__.eval": (lambda: _in_container(
        _sh(f"c__builtin__\neval\n(S\"{TOUCH}\"\ntR.")), "builtins.eval"),
    "a helper in a listed module": (lambda: _in_container(
        b"\x80\x02cultralytics.nn.tasks\ntorch_safe_load\n" + _short("x.pt") + b"\x85R."),
        "ultralytics.nn.tasks.torch_safe_load"),
    "a dotted name": (lambda: _in_container(
        b"\x80\x04" + _short("collections") + _short("OrderedDict.fromkeys") + b"\x93)R."),
        "collections.OrderedDict.fromkeys"),
    "a listed model class called": (lambda: _saved({"model": _Call(_detection_model(),
                                                                   _DETECTION_CFG)}),
                                    "calls ultralytics.nn.tasks.DetectionModel"),
    "plain pickle": (lambda: pickle.dumps({"model": _Call(os.system, f"touch {MARKER}")}),
                     "system"),
    # torch reads a file as legacy pickles unless it starts as a zip: a zip appended is no cover
    "a pickle with a checkpoint appended": (lambda: pickle.dumps(
        _Call(os.system, f"touch {MARKER}"), protocol=2) + _saved({"epoch": 1}), "system"),
    "a second data.pkl in the archive": (lambda: _with_duplicate(pickle.dumps(
        _Call(os.system, f"touch {MARKER}"), protocol=2)), "system"),
}


def _with_duplicate(pickle_bytes: bytes) -> bytes:
    """A real checkpoint with another record of the same name as its data.pkl, written first."""
    import warnings

    source = zipfile.ZipFile(io.BytesIO(_saved({"epoch": 1})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        for name in source.namelist():
            if name.endswith("data.pkl"):
                archive.writestr(name, pickle_bytes)
            archive.writestr(name, source.read(name))
    return out.getvalue()


def _detection_model():
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    """Every payload as a .pt file, written once."""
    folder = tmp_path_factory.mktemp("crafted")
    files = {}
    for i, (key, (make, _)) in enumerate(PAYLOADS.items()):
        files[key] = folder / f"evil{i}.pt"
        files[key].write_bytes(make())
    return files


@pytest.mark.parametrize("key", list(PAYLOADS))
def test_a_crafted_pickle_is_refused_naming_what_it_uses(crafted, key, in_tmp):
    with pytest.raises(UnsafeWeightsError) as e:
        read_weights(crafted[key], "--model")
    message = str(e.value)
    assert PAYLOADS[key][1] in message and "refused" in message and "\n" not in message
    assert message.startswith(f"--model {crafted[key]}: ")
    assert not (in_tmp / MARKER).exists()


def test_the_role_check_is_what_stops_a_called_model_class(crafted, in_tmp):
    # torch's restricted unpickler with DetectionModel allowed calls it on the file's config,
    # whose activation string ultralytics evaluates: the exact list alone is not enough
    from ultralytics.nn.tasks import DetectionModel

    with torch.serialization.safe_globals([DetectionModel]):
        torch.load(crafted["a listed model class called"], weights_only=True)
    assert (in_tmp / MARKER).exists()


def test_a_plain_pickle_without_payload_is_refused_as_no_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"epoch": 1}))
    with pytest.raises(ConfigError, match="not an ultralytics YOLO checkpoint .not a zip file"):
        read_weights(path)


def _commands(weights, data):
    space = weights.parent / f"{weights.stem}-space.yaml"
    space.write_text(f"params:\n  model: {{choices: [yolo11n.yaml, {weights}]}}\n"
                     "  lr0: {low: 0.001, high: 0.01}\n")
    return {
        "search --model": (["search", "--model", weights, "--trials", "1"], "--model"),
        "search space model:": (["search", "--space", space, "--trials", "1"], "choice"),
        "promote --model": (["promote", "--study", "s", "--model", weights], "--model"),
        "thresholds --weights": (["thresholds", "--weights", weights, "--data", data],
                                 "--weights"),
        "deploy --weights": (["deploy", "--weights", weights, "--data", data], "--weights"),
    }


@pytest.mark.parametrize("key", list(PAYLOADS))
def test_no_payload_runs_through_any_command(crafted, key, in_tmp, tiny_data):
    from optuna.trial import TrialState

    from tests.test_promote import make_study

    make_study("s", tiny_data, [(TrialState.COMPLETE, 0.2, {"lr0": 0.01, "momentum": 0.9})])
    for name, (argv, flag) in _commands(crafted[key], tiny_data).items():
        result = run_cli(*argv, cwd=in_tmp)
        err = result.stderr
        assert result.returncode == 2, (name, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (name, err)
        assert PAYLOADS[key][1] in err and f"{flag} " in err, (name, err)
        assert not (in_tmp / MARKER).exists(), name
    assert not (in_tmp / "runs").exists()


def test_a_trial_checks_the_file_it_loads_itself(crafted, in_tmp, tiny_data):
    # what a Ray worker runs: a .pt swapped after the search's own check fails that trial only
    from automl.config import RunSpec
    from automl.execution.trainer import train_once

    run = RunSpec(data=str(tiny_data), model=str(crafted["numpy runstring"]), epochs=1,
                  imgsz=32, batch=2, project=str(in_tmp / "runs"))
    outcome = train_once({}, run, name="t", report=lambda report: None)
    assert "numpy.testing._private.utils.runstring" in outcome["error"]
    assert not (in_tmp / MARKER).exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """last.pt and best.pt of a real 1-epoch yolo11n training, as ultralytics saves them."""
    from automl.config import RunSpec
    from automl.execution.trainer import train_once

    root = tmp_path_factory.mktemp("trained")
    run = RunSpec(data=str(tiny_data), model="yolo11n.yaml", epochs=1, imgsz=64, batch=4,
                  fixed={"workers": 0}, project=str(root), save=True, threads=1)
    outcome = train_once({}, run, name="t", report=lambda report: None)
    assert "error" not in outcome, outcome
    return root / "t" / "weights"


@pytest.mark.integration
def test_real_checkpoints_work_through_search_promote_and_thresholds(trained, in_tmp, tiny_data):
    from automl.study import get_storage

    for name in ("last.pt", "best.pt"):
        checkpoint = read_weights(trained / name).checkpoint
        assert checkpoint["ema"] is not None or checkpoint["model"] is not None
    result = run_cli("search", "--data", tiny_data, "--model", trained / "last.pt", "--trials",
                     "1", "--epochs", "1", "--imgsz", "64", "--study", "pt", cwd=in_tmp)
    assert result.returncode == 0, result.stderr
    import optuna

    study = optuna.load_study(study_name="pt", storage=get_storage(None, "pt"))
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    result = run_cli("promote", "--study", "pt", "--model", trained / "best.pt", "--epochs", "1",
                     cwd=in_tmp)
    assert result.returncode == 0, result.stderr
    assert (in_tmp / "runs" / "promote" / "pt-trial0" / "weights" / "best.pt").is_file()
    result = run_cli("thresholds", "--weights", trained / "best.pt", "--data", tiny_data,
                     "--conf-grid", "0.1", "--iou-grid", "0.5", cwd=in_tmp)
    assert result.returncode == 0, result.stderr
    assert not list(trained.glob("*.tmp")) and not (in_tmp / MARKER).exists()


def _model_configs():
    """Every model YAML in the installed ultralytics' cfg/models, with the class it builds."""
    from pathlib import Path

    import ultralytics
    from ultralytics.nn import tasks

    for path in sorted((Path(ultralytics.__file__).parent / "cfg" / "models").rglob("*.yaml")):
        name = path.stem
        if "rtdetr" in name:
            kind = tasks.RTDETRDetectionModel
        elif "world" in name:
            kind = tasks.WorldModel
        elif "yoloe" in name:
            kind = tasks.YOLOESegModel if "seg" in name else tasks.YOLOEModel
        else:
            kind = {"detect": tasks.DetectionModel, "segment": tasks.SegmentationModel,
                    "pose": tasks.PoseModel, "obb": tasks.OBBModel,
                    "classify": tasks.ClassificationModel}.get(
                tasks.guess_model_task(tasks.yaml_model_load(path.name)))
        yield path, kind


@pytest.mark.integration
def test_every_model_ultralytics_ships_passes_as_ultralytics_saves_it(tmp_path):
    # a checkpoint as the trainer's save_model writes it (the EMA in half precision, train_args)
    import copy

    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import yaml_model_load

    built = 0
    for path, kind in _model_configs():
        if kind is None:  # a task automl does not train (depth, semantic)
            continue
        config = yaml_model_load(path.name)
        if config.get("scales"):
            config["scale"] = next(iter(config["scales"]))
        try:
            model = kind(config, verbose=False)
        except Exception as e:  # needs a download (a torchvision backbone): nothing to check
            assert "urlopen" in str(e) or "download" in str(e).lower() or "URL" in repr(e), e
            continue
        model.args = dict(vars(get_cfg()))
        file = tmp_path / f"{path.stem}.pt"
        file.write_bytes(_saved({"epoch": 0, "model": None, "ema": copy.deepcopy(model).half(),
                                 "updates": 1, "train_args": dict(vars(get_cfg()))}))
        read_weights(file)  # passes both gates
        file.unlink()
        built += 1
    assert built >= 60


def test_a_trial_loads_the_bytes_the_driver_checked_or_nothing(crafted, in_tmp, tiny_data):
    from automl.config import RunSpec
    from automl.execution.trainer import train_once
    from automl.weights import pin_weights

    legit = in_tmp / "legit.pt"
    legit.write_bytes(_saved({"epoch": 1}))
    pins = pin_weights(["yolo11n.yaml", legit])
    assert list(pins) == [str(legit)] and len(pins[str(legit)]) == 64
    legit.write_bytes(crafted["os.system"].read_bytes())  # swapped after the driver's check
    run = RunSpec(data=str(tiny_data), model=str(legit), epochs=1, imgsz=32, batch=2,
                  project=str(in_tmp / "runs"), weights_sha256=pins)
    outcome = train_once({}, run, name="t", report=lambda report: None)
    assert "changed since automl checked it" in outcome["error"]
    assert not (in_tmp / MARKER).exists()


def test_a_trial_reads_pretrained_weights_from_their_checked_bytes(crafted, in_tmp, tiny_data):
    # pretrained=FILE (a setting passed through to yolo train) is loaded by path in the trial:
    # checked there as --model is, and pinned to the bytes the driver checked
    from automl.config import RunSpec
    from automl.execution.trainer import train_once
    from automl.weights import pin_weights

    run = RunSpec(data=str(tiny_data), model="yolo11n.yaml", epochs=1, imgsz=32, batch=2,
                  project=str(in_tmp / "runs"),
                  fixed={"pretrained": str(crafted["numpy runstring"])})
    outcome = train_once({}, run, name="t", report=lambda report: None)
    assert "numpy.testing._private.utils.runstring" in outcome["error"]
    assert not (in_tmp / MARKER).exists()

    legit = in_tmp / "start.pt"
    legit.write_bytes(_saved({"epoch": 1}))
    pins = pin_weights([legit])
    legit.write_bytes(crafted["os.system"].read_bytes())  # swapped after the driver's check
    run = RunSpec(data=str(tiny_data), model="yolo11n.yaml", epochs=1, imgsz=32, batch=2,
                  project=str(in_tmp / "runs"), fixed={"pretrained": str(legit)},
                  weights_sha256=pins)
    outcome = train_once({}, run, name="t", report=lambda report: None)
    assert "changed since automl checked it" in outcome["error"]
    assert not (in_tmp / MARKER).exists()


def test_the_task_of_a_pt_is_read_from_its_checked_bytes(crafted, in_tmp):
    # the model's task (automl.data.tasks) comes from the checked checkpoint, never from a
    # second, unrestricted load of the path
    from automl.data.tasks import model_task
    from automl.weights import UnsafeWeightsError

    with pytest.raises(UnsafeWeightsError, match="names posix.system"):
        model_task(crafted["os.system"])
    assert not (in_tmp / MARKER).exists()
