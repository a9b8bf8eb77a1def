"""automl thresholds: the sweep on cached raw predictions equals ultralytics' own model.val; the
operating point (f1, a floor, per class, held out) on a really trained model; deploy and
promote take the same choice."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from automl.cli import main
from automl.config import RunSpec
from automl.data.demo import CLASS_NAMES, make_demo_dataset
from automl.execution.trainer import train_once
from automl.results.threshold_cache import RawCache, cache_path_for
from automl.results.threshold_files import AppliedThresholds, operating_point_of
from automl.results.threshold_sweep import CachedSweep
from automl.results.thresholds import tune_thresholds
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
        assert direct == pytest.approx({k: v for k, v in swept.items()
                                        if k != "score" and not k.startswith("op_")}, abs=1e-12)
    sweeper.close()

    # the boxes kept at a pair, from the cache, are those a real model.val keeps there
    for iou, conf in [(0.5, 0.05), (0.7, 0.25)]:
        applied = AppliedThresholds(path=weights, iou=iou, conf=np.full(len(result.names), conf),
                                    per_class=False)
        real = operating_point_of(weights, applied, data=data, imgsz=128, batch=16)
        ours = {k[3:]: v for k, v in result.table[(iou, conf)].items() if k.startswith("op_")}
        assert ours == pytest.approx(real, abs=1e-9), (iou, conf)

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


@pytest.mark.integration
def test_f1_per_class_and_held_out_on_a_trained_model_and_the_docs_snippet_applies_them(
        trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    weights, data = trained
    lines: list[str] = []
    grid = [0.001, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5]
    result = tune_thresholds(weights=weights, data=data, per_class=True, folds=4, conf_grid=grid,
                             iou_grid=[0.5, 0.7], log=lines.append)
    assert result.metric == "f1" and not result.ranked  # the default: the boxes a user sees
    best = result.table[(result.best_iou, result.best_conf)]
    assert best["op_f1"] == result.best_score == max(m["op_f1"] for m in result.table.values())
    assert result.best_conf > grid[0]  # F1 does not keep every box down to 0.001
    assert result.held_out.global_rates.n_gt.sum() == result.global_rates.n_gt.sum()  # each once
    text = "\n".join(lines)
    assert "held out (4 folds of the 16 images" in text and "in-sample (chosen and measured" in text
    assert "warning:" not in text

    saved = yaml.safe_load((weights.parent / "thresholds.yaml").read_text())
    assert set(saved["per_class"]) == set(result.names.values()) == set(CLASS_NAMES)
    assert all(v in grid for v in saved["per_class"].values())
    for part in ("in_sample", "held_out", "per_class_held_out"):
        assert set(saved[part]) >= {"precision", "recall", "f1"}, part
    assert saved["held_out"]["folds"] == 4

    # the per-class confs through a real model.val give the in-sample figures of the cache
    applied = AppliedThresholds(path=weights, iou=result.best_iou, conf=result.per_class_conf,
                                per_class=True)
    real = operating_point_of(weights, applied, data=data, imgsz=128, batch=16)
    assert real == pytest.approx(result.per_class_rates.summary(), abs=1e-9)

    # the documented lines run on real predictions and keep exactly the boxes above their class's
    docs = (Path(__file__).parent.parent / "docs" / "commands.md").read_text()
    snippet = re.search(r"\*\*Per-class confidence thresholds\*\*.*?```python\n(.*?)```", docs,
                        re.S).group(1)
    folder = "runs/promote/demo-lr_momentum-trial3/weights/"
    assert folder in snippet and '"images/"' in snippet
    snippet = (snippet.replace(folder + "best.pt", str(weights)).replace(folder, f"{weights.parent}/")
               .replace('"images/"', f'"{data.parent / "images" / "val"}"'))
    snippet += "    seen.append((len(keep), r))\n"  # inside the loop: every image's result
    scope = {"seen": []}
    exec(compile(snippet, "docs/commands.md", "exec"), scope)
    seen = scope["seen"]
    assert len(seen) == 16
    thresholds = saved["per_class"]
    for _, r in seen:
        for conf, cls in zip(r.boxes.conf.tolist(), r.boxes.cls.tolist(), strict=True):
            assert conf > thresholds[r.names[int(cls)]]
    kept = sum(len(r.boxes) for _, r in seen)
    assert 0 < kept < sum(n for n, _ in seen) or min(thresholds.values()) == max(thresholds.values())


@pytest.mark.integration
def test_a_ranking_metric_at_the_lowest_conf_warns_and_a_floor_is_met(trained, tmp_path,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    weights, data = trained
    grid = {"conf_grid": [0.001, 0.1, 0.3], "iou_grid": [0.6], "write": False, "folds": 2}
    lines: list[str] = []
    ranked = tune_thresholds(weights=weights, data=data, metric="map50_95", log=lines.append,
                             **grid)
    assert ranked.ranked and ranked.best_conf == 0.001
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1 and "--metric f1" in warnings[0]
    assert ranked.held_out_score is not None  # the mAP of the held-out folds
    # precision, recall and F1 at the chosen pair are stated for a ranking metric too
    assert any(line.startswith("in-sample") and "precision" in line for line in lines)

    floor = tune_thresholds(weights=weights, data=data, metric="precision@recall=0.3",
                            log=lambda line: None, **grid)
    assert floor.floor_met and floor.global_rates.mean("recall") >= 0.3
    # the most precise pair among those that find 30% of the labels
    feasible = [m for m in floor.table.values() if m["op_recall"] >= 0.3]
    assert floor.best_score == max(m["op_precision"] for m in feasible)


@pytest.mark.integration
def test_deploy_measures_each_export_at_the_per_class_thresholds(trained, tmp_path, monkeypatch):
    from automl.results.deployment import deploy

    monkeypatch.chdir(tmp_path)
    weights, data = trained
    tuned = tune_thresholds(weights=weights, data=data, per_class=True, folds=2,
                            conf_grid=[0.05, 0.2, 0.4], iou_grid=[0.6], log=lambda line: None)
    lines: list[str] = []
    out = deploy(weights=weights, data=data, formats="onnx", runs=2, warmup=1, threads=1,
                 log=lines.append)  # thresholds.yaml beside the weights is found
    assert any("precision, recall and F1 at per-class confs, iou 0.6" in line for line in lines)
    pt, onnx = out.artifacts
    # deploy validates at batch 1, the sweep at 16: rect batches letterbox some images otherwise
    assert pt.at_thresholds == pytest.approx(tuned.per_class_rates.summary(), abs=0.1)
    assert onnx.at_thresholds["f1"] == pytest.approx(pt.at_thresholds["f1"], abs=0.02)
    saved = yaml.safe_load((weights.parent / "deploy.yaml").read_text())
    assert saved["thresholds"]["per_class"] is True
    assert set(saved["artifacts"][1]["at_thresholds"]) == {"precision", "recall", "f1"}


@pytest.mark.integration
def test_promote_tune_thresholds_takes_the_same_choice(trained, tmp_path, monkeypatch):
    import shutil

    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial
    from ultralytics.utils.torch_utils import strip_optimizer

    from automl.results.promotion import promote
    from automl.study import CONFIG_ATTR, get_storage, promotions, record_promotion

    monkeypatch.chdir(tmp_path)
    weights, data = trained
    run = tmp_path / "runs" / "promote" / "thr-trial0" / "weights"
    run.mkdir(parents=True)
    for name in ("best.pt", "last.pt"):  # a finished promotion: nothing is trained again
        shutil.copy2(weights, run / name)
        strip_optimizer(run / name)  # as ultralytics leaves a finished training's weights
    study = optuna.create_study(study_name="thr", storage=get_storage(None, "thr"),
                                direction="maximize")
    study.set_user_attr(CONFIG_ATTR, {"data": str(data), "epochs": 10, "imgsz": 128})
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5, params={"lr0": 0.01},
                                 distributions={"lr0": FloatDistribution(1e-5, 0.1, log=True)}))
    record_promotion(study, {"trial": 0, "weights": str((run / "best.pt").resolve()),
                             "fitness": 0.5})
    out = promote(study="thr", tune_thresholds=True, metric="recall@precision=0.5",
                  per_class=True, folds=2, conf_grid=[0.05, 0.2], iou_grid=[0.6],
                  log=lambda line: None)
    assert out.thresholds.metric == "recall@precision=0.5" and out.thresholds.per_class
    recorded = promotions(optuna.load_study(study_name="thr", storage=get_storage(None, "thr")))
    assert recorded[0]["thresholds"]["metric"] == "recall@precision=0.5"
    assert set(recorded[0]["thresholds"]["per_class"]) == set(CLASS_NAMES)


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
    YOLO("yolo11n-seg.yaml").save(tmp_path / "seg.pt")
    cases = {"cls.pt": "a classification model; it has no NMS and no confidence or IoU "
                       "thresholds to tune",
             "seg.pt": "a 'segment' model, not a detection model",
             "junk.pt": "not an ultralytics YOLO checkpoint",
             "none.pt": "file not found"}
    for name, expected in cases.items():
        result = run_cli("thresholds", "--weights", str(tmp_path / name), "--data", str(data),
                         cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
