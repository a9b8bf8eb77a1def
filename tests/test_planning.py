"""Flag resolution without running anything: `resolve_search` and `resolve_promotion` are pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.config import SearchFlags, StudyConfig
from automl.data.dataset import Dataset
from automl.errors import ConfigError
from automl.results.promotion import resolve_promotion
from automl.searching.planning import check_search, resolve_search
from automl.searching.spaces import load_space, parse_space, ultralytics_defaults


def dataset(n_train: int, n_val: int = 10, nc: int = 2, name: str = "mydata") -> Dataset:
    """A Dataset of image paths that need not exist: resolve_search reads only counts and names."""
    return Dataset(yaml_path=Path(f"/data/{name}.yaml"), names=tuple(f"c{i}" for i in range(nc)),
                   train=tuple(Path(f"/data/t{i}.png") for i in range(n_train)),
                   val=tuple(Path(f"/data/v{i}.png") for i in range(n_val)))


def plan(flags: SearchFlags, data: Dataset | None = None, space="lr_momentum", cpus=2, gpus=0):
    """As automl.search plans: the flags checked once (check_search), then resolved."""
    flags = check_search(flags)
    return resolve_search(flags, dataset=data or dataset(120), space=load_space(space)
                          if isinstance(space, str) else space,
                          ultralytics_defaults=ultralytics_defaults(), cpu_count=cpus,
                          gpu_count=gpus, studies_dir=Path("studies"))


def test_small_data_trains_every_image_with_the_optimizer_auto_picks():
    p = plan(SearchFlags(data="/data/mydata.yaml", epochs=20, imgsz=96, batch=16))
    assert p.name == "mydata-lr_momentum" and p.trials == 8
    assert p.config.fraction == 1.0 and "all images" in p.fraction_why
    assert p.config.baseline_fixed == {"optimizer": "AdamW", "lr0": 0.001667, "momentum": 0.9,
                                       "warmup_bias_lr": 0.0, "batch": 16}
    assert p.run.fixed == {"optimizer": "AdamW", "batch": 16}
    assert p.baseline == {"lr0": 0.001667, "lrf": 0.01, "momentum": 0.9} and p.outside is None
    assert p.start == {"lr0": 0.01, "lrf": 0.01, "momentum": 0.937}
    assert (p.space["lr0"].low, p.space["lr0"].high) == (1e-3, 0.1)  # AdamW's, as SGD's
    assert p.config.searcher == "tpe" and p.config.pruner == "asha"
    assert p.run.data == str((Path("studies") / "mydata-lr_momentum" / "mini" / "data.yaml")
                             .resolve())


def test_the_demo_keeps_its_profile_and_half_of_its_data():
    p = plan(SearchFlags(), data=dataset(160, 64, nc=3, name="data"))
    assert p.name == "demo-lr_momentum"
    assert (p.run.epochs, p.run.imgsz, p.run.batch) == (10, 128, 8)
    assert p.run.fixed["nbs"] == 8 and p.config.baseline_fixed["nbs"] == 8
    assert p.config.fraction == 0.5  # 80 images at nbs 8, 10 epochs: 100 optimizer steps
    assert p.config.baseline_fixed["lr0"] == 0.001429  # 0.01 / (4 + 3 classes)


@pytest.mark.parametrize(("model", "name"), [
    ("yolo11n.yaml", "demo-lr_momentum"), ("yolo11n-seg.yaml", "demo-seg-lr_momentum"),
    ("yolo11n-pose.yaml", "demo-pose-lr_momentum"), ("yolo11n-obb.yaml", "demo-obb-lr_momentum"),
    ("yolo11n-cls.yaml", "demo-cls-lr_momentum"),
])
def test_each_tasks_demo_has_its_own_study(model, name):
    """Searching the demo with a second task's model does not open the first task's study."""
    assert plan(SearchFlags(model=model), data=dataset(160, 64, nc=3, name="data")).name == name
    assert plan(SearchFlags(model=model, data="/data/mydata.yaml")).name == "mydata-lr_momentum"


def test_large_data_gets_the_sgd_like_optimizer_and_its_own_lr0_range():
    # auto decides on the trial's data: half of 80,000 images, 30 epochs: 18,750 steps
    p = plan(SearchFlags(data="/data/big.yaml", epochs=30, batch=16), data=dataset(80_000))
    assert p.config.fraction == 0.5 and p.config.auto_optimizer["iterations"] == 18_750
    assert p.run.fixed["optimizer"] in ("MuSGD", "SGD")
    assert (p.space["lr0"].low, p.space["lr0"].high) == (1e-3, 0.1)


def test_a_space_that_names_its_optimizer_trains_it_in_the_plain_training_too():
    # a space's fixed args are the user's training: trial #0 is yolo train with them
    space = parse_space({"fixed": {"optimizer": "SGD", "cos_lr": True},
                         "params": {"lr0": {"low": 1e-3, "high": 0.1, "log": True}}})
    p = plan(SearchFlags(data="/data/d.yaml", epochs=20, batch=16), space=space)
    assert p.run.fixed == {"optimizer": "SGD", "cos_lr": True, "batch": 16}
    assert p.config.baseline_fixed == {"optimizer": "SGD", "cos_lr": True, "batch": 16}
    assert p.baseline["lr0"] == 0.01 and p.outside is None  # SGD at ultralytics' lr0


def test_explicit_flags_win_and_resources_are_shared():
    p = plan(SearchFlags(data="/data/d.yaml", fraction="0.3", concurrency=2, epochs=20,
                         batch=16, study="mine", searcher="ga", pruner="none"), cpus=8, gpus=1)
    assert p.name == "mine" and p.config.fraction == 0.3 and p.fraction_why == "--fraction"
    assert (p.cpus, p.gpus, p.run.threads) == (4, 0.5, 4)
    assert p.config.pruner == "none" and p.config.searcher == "ga"


def test_a_grid_is_capped_at_its_points_plus_the_baseline():
    space = parse_space({"params": {"lrf": {"low": 0.1, "high": 0.3, "step": 0.1}}})
    p = plan(SearchFlags(data="/data/d.yaml", searcher="grid", trials=50), space=space)
    assert p.trials == 4


def test_a_searched_model_and_imgsz_start_at_the_flags():
    space = parse_space({"params": {"model": {"choices": ["yolov8n.yaml", "yolo11n.yaml"]},
                                    "imgsz": {"choices": [64, 96, 128]},
                                    "lr0": {"low": 1e-4, "high": 1e-1, "log": True}}})
    p = plan(SearchFlags(data="/data/mydata.yaml", epochs=20, imgsz=96, batch=16), space=space)
    assert p.baseline["model"] == p.start["model"] == "yolo11n.yaml"  # --model's default
    assert p.baseline["imgsz"] == p.start["imgsz"] == 96 and p.outside is None
    assert p.config.space_keys == ("model", "imgsz", "lr0")  # recorded as searched


def test_a_promotion_and_a_training_use_the_trials_model_and_imgsz():
    from automl.config import RunSpec
    from automl.execution.trainer import run_model, train_args

    config = StudyConfig.from_dict({"data": "/d.yaml", "model": "yolo11n.yaml", "imgsz": 96,
                                    "epochs": 5})
    trial = {"model": "yolov8n.yaml", "imgsz": 128, "lr0": 0.01}
    p = resolve_promotion(config, study="s", trial_number=2, params=trial, data=None,
                          full_data="train", epochs=None, model=None, device=None, imgsz=None,
                          batch=None, project="runs/promote")
    assert (p.model, p.imgsz, p.params) == ("yolov8n.yaml", 128, {"lr0": 0.01})
    flagged = resolve_promotion(config, study="s", trial_number=2, params=trial, data=None,
                                full_data="train", epochs=None, model="yolo11s.yaml",
                                device=None, imgsz=160, batch=None, project="runs/promote")
    assert (flagged.model, flagged.imgsz) == ("yolo11s.yaml", 160)  # the flags still win
    run = RunSpec(data="/d.yaml", model="yolo11n.yaml", epochs=5, imgsz=96, batch=4)
    args = train_args(trial, run, name="t")
    assert args["imgsz"] == 128 and "model" not in args and run_model(trial, run) == "yolov8n.yaml"
    assert train_args({"lr0": 0.01}, run, name="t")["imgsz"] == 96
    assert run_model({}, run) == "yolo11n.yaml"


@pytest.mark.parametrize(("flags", "message"), [
    (SearchFlags(searcher="hyperband"), "--searcher hyperband: unknown searcher; choose one of tpe"),
    (SearchFlags(pruner="hyperband"), "--pruner hyperband: unknown pruner; choose one of asha"),
    (SearchFlags(fraction="half"), "--fraction half: use a share in"),
    (SearchFlags(fraction=1.5), r"--fraction 1.5: must be in \(0, 1\]"),
    (SearchFlags(batch=0), "--batch 0: must be at least 1"),
])
def test_bad_flags_are_config_errors(flags, message):
    with pytest.raises(ConfigError, match=message):
        plan(flags)


@pytest.mark.parametrize(("device", "gpus", "message"), [
    ("9", 0, "--device 9: this machine has no GPU that torch can use"),
    ("0,2", 2, "--device 0,2: this machine has GPUs 0-1 that torch can use"),
    ("cuda:1", 1, "--device cuda:1: this machine has GPU 0 that torch can use"),
])
def test_a_cuda_device_the_machine_lacks_is_refused(device, gpus, message):
    with pytest.raises(ConfigError, match=message):
        plan(SearchFlags(device=device), gpus=gpus)
    for fine in ("cpu", "0" if gpus else "mps"):
        plan(SearchFlags(device=fine), gpus=gpus)


def test_a_promotion_takes_each_flag_else_the_study_setting_else_the_default(tmp_path):
    config = StudyConfig.from_dict({"data": "/data/d.yaml", "model": "yolo11s.yaml", "epochs": 20,
                                    "imgsz": 96, "batch": 16, "fitness": "v5"})
    p = resolve_promotion(config, study="s", trial_number=3, params={"lr0": 0.02}, data=None,
                          full_data="train", epochs=None, model=None, device=None, imgsz=320,
                          batch=None, project=tmp_path)
    assert (p.name, p.model, p.epochs, p.imgsz, p.batch) == ("s-trial3", "yolo11s.yaml", 20, 320, 16)
    assert p.data == Path("/data/d.yaml") and p.best == tmp_path / "s-trial3" / "weights" / "best.pt"
    bare = resolve_promotion(StudyConfig.from_dict({"data": "/d.yaml"}), study="s", trial_number=0,
                             params={}, data=None, full_data="train", epochs=None, model=None,
                             device=None, imgsz=None, batch=None, project=tmp_path)
    assert (bare.model, bare.epochs, bare.imgsz) == ("yolo11n.yaml", 30, 640)
    with pytest.raises(ConfigError, match="does not record its data; pass --data"):
        resolve_promotion(StudyConfig.from_dict({}), study="s", trial_number=0, params={},
                          data=None, full_data="train", epochs=None, model=None, device=None,
                          imgsz=None, batch=None, project=tmp_path)


@pytest.mark.parametrize(("flags", "cpus", "gpus", "expected"), [
    # CPU: one 1-thread trial per core, at most a quarter of the budget and 4
    (dict(trials=8), 2, 0, (2, 1.0, 0.0)),
    (dict(trials=7), 2, 0, (1, 2.0, 0.0)),
    (dict(trials=64), 16, 0, (4, 4.0, 0.0)),
    (dict(trials=64, cpus_per_trial=8), 16, 0, (2, 8.0, 0.0)),
    # GPU: one trial per GPU (or per --gpus-per-trial share), the cores shared among them
    (dict(trials=64), 16, 2, (2, 8.0, 1.0)),
    (dict(trials=64, gpus_per_trial=0.5), 16, 1, (2, 8.0, 0.5)),
    (dict(trials=64, device="cpu"), 16, 1, (4, 4.0, None)),
    # a cluster's size is not known here; a replay stays deterministic
    (dict(trials=64, address="head:6379"), 16, 0, (1, 16.0, 0.0)),
    # the flag wins
    (dict(trials=64, concurrency=3), 16, 0, (3, 5.0, 0.0)),
])
def test_concurrency_left_out_is_one_trial_per_core_or_gpu_within_a_quarter_of_the_budget(
        flags, cpus, gpus, expected):
    p = plan(SearchFlags(data="/data/d.yaml", **flags), cpus=cpus, gpus=gpus)
    concurrency, cpus_each, gpus_each = expected
    assert (p.concurrency, p.cpus) == (concurrency, cpus_each)
    assert gpus_each is None or p.gpus == gpus_each
    assert p.concurrency_why.startswith("--concurrency" if "concurrency" in flags else "auto: ")
