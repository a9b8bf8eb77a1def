"""automl thresholds: the sweep on cached raw predictions equals ultralytics' own model.val."""

from __future__ import annotations

import os

import pytest
import yaml

from automl.cli import main
from automl.config import RunSpec
from automl.data.demo import make_demo_dataset
from automl.execution.trainer import train_once
from automl.results.thresholds import CachedSweep, RawCache, cache_path_for, tune_thresholds
from tests.conftest import run_automl, run_cli

METRICS = ("precision", "recall", "map50", "map75", "map50_95")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A yolo11n trained from scratch long enough that its metrics are not zero (~10 epochs)."""
    root = tmp_path_factory.mktemp("thr")
    data = make_demo_dataset(root / "data", n_train=48, n_val=16, seed=3)
    # batch 4 (12 steps an epoch) and a 1-epoch warmup: measured mAP50 0.66 after 10 epochs
    run = RunSpec(data=str(data), model="yolo11n.yaml", epochs=10, imgsz=128, batch=4,
                  fixed={"nbs": 4, "warmup_epochs": 1, "workers": 0}, project=str(root / "runs"),
                  save=True, threads=os.cpu_count() or 1)
    outcome = train_once({}, run, name="t", report=lambda m: None)
    assert "error" not in outcome, outcome
    return root / "runs" / "t" / "weights" / "best.pt", data


@pytest.mark.integration
def test_metrics_from_the_cache_equal_model_val(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    weights, data = trained
    lines: list[str] = []
    result = tune_thresholds(weights=weights, data=data, conf_grid=[0.001, 0.05, 0.25],
                             iou_grid=["0.5,0.7"], metric="map75", log=lines.append)
    assert result.conf_grid == (0.001, 0.05, 0.25) and result.iou_grid == (0.5, 0.7)
    assert len(result.table) == 6 and not result.cache_hit
    assert cache_path_for(weights, "val").is_file()
    # a model that learned something, and thresholds that change the outcome
    assert result.table[(0.5, 0.001)]["map50"] > 0.1
    assert result.table[(0.7, 0.25)]["recall"] < result.table[(0.7, 0.001)]["recall"]

    from ultralytics import YOLO

    model = YOLO(str(weights))
    for iou, conf in [(0.5, 0.001), (0.7, 0.05), (0.7, 0.25), (0.5, 0.25)]:
        box = model.val(data=str(data), conf=conf, iou=iou, plots=False, verbose=False,
                        project=str(tmp_path / "val"), name="v").box
        reference = {"precision": box.mp, "recall": box.mr, "map50": box.map50,
                     "map75": box.map75, "map50_95": box.map}
        ours = result.table[(iou, conf)]
        for key in METRICS:
            assert ours[key] == pytest.approx(float(reference[key]), abs=1e-3), (iou, conf, key)

    # the sweep's shortcut (NMS + matching once per IoU, conf applied after) changes nothing:
    # every pair equals a full NMS + matching run at that pair
    sweeper = CachedSweep(RawCache.load(cache_path_for(weights, "val")))
    for (iou, conf), swept in result.table.items():
        direct = sweeper.metrics(iou, conf)
        assert direct == pytest.approx({k: v for k, v in swept.items() if k != "score"}, abs=1e-12)
    sweeper.close()

    # the best pair is the argmax of the metric asked for, and is written beside the weights
    best = max(result.table, key=lambda k: result.table[k]["map75"])
    assert result.table[best]["map75"] == result.best_score
    saved = yaml.safe_load((weights.parent / "thresholds.yaml").read_text())
    assert (saved["iou"], saved["conf"], saved["metric"]) == (result.best_iou, result.best_conf, "map75")
    assert saved["value"] == pytest.approx(result.best_score, abs=1e-6)
    assert "plotly" in (weights.parent / "thresholds.html").read_text()[:100_000].lower()
    assert any(line.startswith("best: iou") for line in lines)


@pytest.mark.integration
def test_cli_reuses_the_cache_and_recomputes_below_its_floor(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    weights, data = trained
    first = tune_thresholds(weights=weights, data=data, conf_grid=[0.01, 0.1], iou_grid=[0.6],
                            log=lambda line: None)
    cli = run_automl("thresholds", "--weights", str(weights), "--data", str(data),
                     "--conf-grid", "0.01", "0.1", "--iou-grid", "0.6", cwd=tmp_path, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert "raw predictions from cache" in cli.stdout and "best: iou 0.6" in cli.stdout
    again = tune_thresholds(weights=weights, data=data, conf_grid=[0.01, 0.1], iou_grid=[0.6],
                            log=lambda line: None)
    assert again.cache_hit and "inference" not in again.seconds
    assert again.table == first.table
    lower = tune_thresholds(weights=weights, data=data, conf_grid=[0.0005, 0.1], iou_grid=[0.6],
                            log=lambda line: None, write=False)
    assert not lower.cache_hit  # anchors below the cached floor were dropped: run the model again
    assert lower.table[(0.6, 0.1)] == first.table[(0.6, 0.1)]


@pytest.mark.integration
def test_an_edited_label_behind_the_same_data_yaml_invalidates_the_cache(trained):
    weights, data = trained
    grid = {"conf_grid": [0.01], "iou_grid": [0.6], "log": lambda line: None, "write": False}
    tune_thresholds(weights=weights, data=data, **grid)
    boxes = sum(len(g["bboxes"]) for g in RawCache.load(cache_path_for(weights, "val")).gt)
    label = sorted((data.parent / "labels" / "val").glob("*.txt"))[0]
    original = label.read_text()
    try:
        label.write_text(original + "0 0.5 0.5 0.2 0.2\n")  # one more box in one image
        edited = tune_thresholds(weights=weights, data=data, **grid)
        assert not edited.cache_hit  # the cache holds ground truth: stale labels must not be used
        cached = RawCache.load(cache_path_for(weights, "val")).gt
        assert sum(len(g["bboxes"]) for g in cached) == boxes + 1
    finally:
        label.write_text(original)


@pytest.mark.parametrize(("flags", "expected"), [
    (["--conf-grid", "0.1", "1.5"], "--conf-grid 1.5: every value must be in (0, 1)"),
    (["--iou-grid", "0"], "--iou-grid 0: every value must be in (0, 1)"),
    (["--conf-grid", "low"], "--conf-grid 'low': not a number"),
    (["--metric", "map90"], "unknown metric 'map90'"),
])
def test_bad_grid_or_metric_is_one_line_exit_2(tmp_path, capsys, flags, expected):
    data = make_demo_dataset(tmp_path / "d", n_train=2, n_val=2)
    (tmp_path / "w.pt").write_bytes(b"never read")
    code = main(["thresholds", "--weights", str(tmp_path / "w.pt"), "--data", str(data), *flags])
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "w.val.raw_preds.npz").exists()  # failed before any inference


def test_weights_that_are_not_a_detection_model_are_one_line_exit_2(tmp_path):
    from ultralytics import YOLO

    data = make_demo_dataset(tmp_path / "d", n_train=2, n_val=2)
    YOLO("yolo11n-cls.yaml").save(tmp_path / "cls.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    cases = {"cls.pt": "a 'classify' model, not a detection model",
             "junk.pt": "not an ultralytics YOLO checkpoint",
             "none.pt": "file not found"}
    for name, expected in cases.items():
        result = run_cli("thresholds", "--weights", str(tmp_path / name), "--data", str(data),
                         cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
