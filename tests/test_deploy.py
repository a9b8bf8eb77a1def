"""`automl deploy`: real exports of a really trained model (ONNX and OpenVINO, fp32 and int8),
each measured (size, CPU latency, accuracy through ultralytics' validator); bad input is one
line, exit 2, nothing written."""

from __future__ import annotations

import importlib.util

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from automl.errors import ConfigError
from automl.results.deployment import parse_formats
from automl.study import CONFIG_ATTR, default_storage, get_storage, promotions, record_promotion
from tests.conftest import run_cli

DISTS = {"lr0": FloatDistribution(1e-5, 0.1, log=True)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """A detection model really trained (2 epochs) on the tiny data, as a promotion leaves it:
    runs/promote/dep-trial0/weights/best.pt, recorded on study `dep`."""
    from ultralytics import YOLO

    work = tmp_path_factory.mktemp("deploy")
    YOLO("yolo11n.yaml").train(data=str(tiny_data), epochs=2, imgsz=64, batch=4, device="cpu",
                               workers=0, project=str(work / "runs" / "promote"),
                               name="dep-trial0", exist_ok=True, plots=False, verbose=False)
    weights = work / "runs" / "promote" / "dep-trial0" / "weights" / "best.pt"
    assert weights.is_file()
    return work, weights


def test_formats_are_parsed_and_checked():
    assert parse_formats("onnx,openvino") == ["onnx", "openvino"]
    assert parse_formats(["OpenVINO", "onnx", "onnx"]) == ["openvino", "onnx"]
    with pytest.raises(ConfigError, match="--formats tflite: unknown format; choose from onnx"):
        parse_formats("onnx,tflite")


@pytest.mark.parametrize(("args", "expected"), [
    (["--weights", "nowhere.pt"], "--weights nowhere.pt: file not found"),
    (["--weights", "junk.pt"], "not an ultralytics YOLO checkpoint"),
    (["--weights", "seg.pt"], "seg.pt: no training data recorded in it; pass --data"),
    (["--weights", "cls.pt"], "cls.pt: no training data recorded in it; pass --data"),
    (["--weights", "cls.pt", "--formats", "tflite"], "--formats tflite: unknown format"),
    (["--weights", "cls.pt", "--runs", "0"], "--runs 0: must be at least 1"),
])
def test_bad_deploy_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, expected):
    from ultralytics import YOLO

    YOLO("yolo11n-cls.yaml").save(tmp_path / "cls.pt")
    YOLO("yolo11n-seg.yaml").save(tmp_path / "seg.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("deploy", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_missing_extra_is_named_before_anything_runs(tmp_path, monkeypatch):
    # as on a machine without the deploy extra: openvino's package cannot be found
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("openvino", "nncf") else real(name, *a))
    result = run_cli("deploy", "--weights", "any.pt", "--formats", "onnx,openvino", "--int8",
                     cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "automl deploy: error: --formats onnx,openvino --int8: needs openvino, nncf, not "
        "installed; install automl's deploy extra: pip install -e \".[deploy]\"")
    assert list(tmp_path.iterdir()) == []


def test_data_with_other_classes_is_refused(tmp_path, tiny_data):
    from ultralytics import YOLO

    YOLO("yolo11n.yaml").save(tmp_path / "w.pt")  # 80 classes named "0".."79"
    result = run_cli("deploy", "--weights", tmp_path / "w.pt", "--data", tiny_data, cwd=tmp_path)
    assert result.returncode == 2 and "are not the model's" in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]


@pytest.mark.integration  # real exports, int8 calibration, validations of every artifact
def test_deploy_exports_measures_and_records_on_the_promotion(trained, tiny_data, monkeypatch):
    from ultralytics.utils import checks

    work, weights = trained
    monkeypatch.chdir(work)
    study = optuna.create_study(study_name="dep", storage=get_storage(None, "dep"),
                                direction="maximize")
    study.set_user_attr(CONFIG_ATTR, {"data": str(tiny_data), "epochs": 2, "imgsz": 64})
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.1, params={"lr0": 0.01},
                                 distributions=DISTS))
    record_promotion(study, {"trial": 0, "weights": str(weights.resolve()), "fitness": 0.1})
    installs = []
    monkeypatch.setattr(checks, "attempt_install", lambda *a, **k: installs.append(a),
                        raising=False)

    result = run_cli("deploy", "--weights", weights, "--formats", "onnx,openvino", "--int8",
                     "--runs", "5", "--threads", "1", cwd=work)
    assert result.returncode == 0, result.stderr
    assert installs == [] and checks.AUTOINSTALL is False  # the exporter never pip-installs
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["artifact", "size"])
    rows = [line.split()[:2] for line in lines[header + 1:header + 6]]
    assert [r[0] for r in rows] == ["pytorch", "onnx", "onnx", "openvino", "openvino"]
    assert [r[1] for r in rows[1:]] == ["int8", "fp32", "int8", "fp32"]

    saved = yaml.safe_load((weights.parent / "deploy.yaml").read_text())
    arts = {a["name"]: a for a in saved["artifacts"]}
    assert list(arts) == ["pytorch", "onnx int8", "onnx fp32", "openvino int8", "openvino fp32"]
    assert saved["latency"]["threads"] == 1 and saved["latency"]["runs"] == 5
    assert saved["imgsz"] == 64 and saved["data"] == str(tiny_data)
    for name, a in arts.items():
        assert a["size_mb"] > 0 and 0 < a["latency_ms"] <= a["latency_p90_ms"]
        assert set(a["metrics"]) == {"map50", "map75", "map50_95"}
        if name != "pytorch":
            assert set(a["drop"]) == {"map50", "map75", "map50_95"}
            assert a["drop"]["map50_95"] == pytest.approx(
                arts["pytorch"]["metrics"]["map50_95"] - a["metrics"]["map50_95"])
    # int8 weights take about a quarter of the space of fp32 ones
    assert arts["onnx int8"]["size_mb"] < 0.5 * arts["onnx fp32"]["size_mb"]
    assert arts["openvino int8"]["size_mb"] < 0.5 * arts["openvino fp32"]["size_mb"]
    assert (weights.parent / "best_int8.onnx").is_file() and (weights.parent / "best.onnx").is_file()

    recorded = promotions(optuna.load_study(study_name="dep", storage=default_storage("dep")))[0]
    assert recorded["fitness"] == 0.1 and recorded["deploy"]["artifacts"] == saved["artifacts"]
    assert "recorded on the promotion of trial #0 of study 'dep'" in result.stdout
