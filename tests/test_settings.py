"""The user's `yolo train` settings: read and checked by ultralytics' own code, in every trial."""

from __future__ import annotations

import pytest

from automl.config import SearchFlags, StudyConfig
from automl.errors import ConfigError
from automl.searching.planning import with_settings
from automl.searching.settings import read_settings
from automl.searching.spaces import parse_space
from tests.conftest import run_cli, write
from tests.test_planning import plan


def test_pairs_are_parsed_as_yolo_train_parses_them():
    settings, flags = read_settings(["cos_lr", "close_mosaic=5", "freeze", "=", "10",
                                     "classes=[0,", "2]", "cache=ram", "lr0=1e-3"])
    assert settings == {"cos_lr": True, "close_mosaic": 5, "freeze": 10, "classes": [0, 2],
                        "cache": "ram", "lr0": 0.001}
    assert flags == {}


def test_ultralytics_defaults_change_nothing_and_run_keys_become_flags(tmp_path):
    # a full copy of default.yaml (yolo copy-cfg) with two changes is read as those two
    import yaml
    from ultralytics.cfg import DEFAULT_CFG_DICT

    cfg = write(tmp_path / "mine.yaml", yaml.safe_dump(
        {**DEFAULT_CFG_DICT, "cos_lr": True, "patience": 3, "epochs": 7}))
    settings, flags = read_settings(["patience=5", "model=yolo11s.yaml"], cfg)
    assert settings == {"cos_lr": True, "patience": 5}  # the command line over the file
    # the flags' keys it gives are those flags, default values too: yolo train cfg= trains them
    assert flags == {"epochs": 7, "model": "yolo11s.yaml", "imgsz": 640, "batch": 16}


@pytest.mark.parametrize(("pairs", "message"), [
    (["lr=0.1"], "'lr' is not a valid YOLO argument. Similar arguments are i.e. ['lrf=0.01', "
                 "'lr0=0.01']"),
    (["close_mosaic=abc"], "'close_mosaic=abc' is of invalid type str"),
    (["cos_lr=3"], "'cos_lr' must be a bool"),
    (["hsv_h=2"], "'hsv_h=2' is an invalid value"),
    (["patience"], "patience: missing '='; give patience=VALUE"),
    (["project=mine"], "project=mine: trials go to studies/NAME/trials"),
    (["time=-1"], "time=-1: hours of training, more than 0"),
    (["resume=True"], "run the same automl search command again"),
    (["fraction=0"], "'fraction=0' invalid. Use integer count >1 or ratio (0, 1]"),
    (["cfg=/no/such.yaml"], "cfg=/no/such.yaml: no such file"),
])
def test_a_bad_setting_is_one_line_from_ultralytics_own_checks(pairs, message):
    with pytest.raises(ConfigError) as e:
        read_settings(pairs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_setting_and_its_flag_must_agree():
    flags = with_settings(SearchFlags(data="d.yaml", train_args=["epochs=5", "imgsz=320"]))
    assert (flags.epochs, flags.imgsz, flags.train_args) == (5, 320, {})
    assert with_settings(SearchFlags(epochs=5, train_args=["epochs=5"])).epochs == 5
    with pytest.raises(ConfigError, match="epochs=5 and --epochs 3 disagree"):
        with_settings(SearchFlags(epochs=3, train_args=["epochs=5"]))


def test_settings_reach_every_trial_and_the_plain_training():
    flags = with_settings(SearchFlags(data="/data/d.yaml", epochs=20, batch=16, train_args=[
        "cos_lr=True", "close_mosaic=5", "patience=3", "optimizer=SGD", "momentum=0.9"]))
    space = parse_space({"fixed": {"cache": "ram", "patience": 50},
                         "params": {"lr0": {"low": 1e-3, "high": 0.1, "log": True}}})
    p = plan(flags, space=space)
    mine = {"cache": "ram", "patience": 3, "cos_lr": True, "close_mosaic": 5, "optimizer": "SGD",
            "momentum": 0.9}
    assert p.settings == mine  # the command line over the space's fixed
    assert p.run.fixed == {**mine, "batch": 16}
    assert p.config.baseline_fixed == {**mine, "batch": 16}  # trial #0: yolo train with them
    assert p.config.settings == {"cos_lr": True, "close_mosaic": 5, "patience": 3,
                                 "optimizer": "SGD", "momentum": 0.9}


def test_under_optimizer_auto_the_plain_training_trains_what_auto_picks():
    flags = with_settings(SearchFlags(data="/data/d.yaml", epochs=20, batch=16,
                                      train_args={"lr0": 0.005, "cos_lr": True}))
    p = plan(flags, space="loss_gains")
    # ultralytics' auto ignores lr0: so does the plain training; searched trials keep it
    assert p.config.baseline_fixed["lr0"] == 0.001667
    assert p.config.baseline_fixed["cos_lr"] is True
    assert p.run.fixed["lr0"] == 0.005 and p.run.fixed["optimizer"] == "AdamW"


def test_a_searched_key_is_refused_with_what_to_do_instead():
    flags = with_settings(SearchFlags(data="/data/d.yaml", train_args=["lr0=0.02"]))
    with pytest.raises(ConfigError, match="the space lr_momentum searches lr0; leave lr0 out"):
        plan(flags)


def test_a_study_refuses_to_continue_with_other_settings():
    base = dict(space="s", space_keys=("lr0",), fixed={}, fitness="v5", data="d", model="m",
                epochs=3, imgsz=64, fraction=1.0)
    stored = StudyConfig(**base, settings={"cos_lr": True}).to_dict()
    assert StudyConfig(**base, settings={"cos_lr": True}).conflict(stored) is None
    problem = StudyConfig(**base, settings={}).conflict(stored)
    assert problem.startswith("was created with the training settings cos_lr=True, not (none)")


def test_the_command_line_takes_settings_between_flags(tmp_path):
    # refused before any data is read: the data.yaml does not exist
    out = run_cli("search", "--data", "none.yaml", "cos_lr", "--epochs", "3", "lr=0.1",
                  cwd=tmp_path)
    assert out.returncode == 2
    assert "'lr' is not a valid YOLO argument" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("search", "--data", "none.yaml", "close_mosaic=5", "--epochs", "3",
                  "--bogus", cwd=tmp_path)
    assert out.returncode == 2 and "unrecognized arguments: --bogus" in out.stderr
    out = run_cli("search", "--data", "none.yaml", "close_mosaic=5", "--epochs", "3",
                  cwd=tmp_path)
    assert out.returncode == 2 and "none.yaml: data.yaml not found" in out.stderr
    assert not (tmp_path / "studies").exists()
    out = run_cli("studies", "cos_lr=True", cwd=tmp_path)  # no settings there
    assert out.returncode == 2 and "unrecognized arguments: cos_lr=True" in out.stderr




def test_classes_and_single_cls_count_what_the_trials_train_on(tmp_path):
    import numpy as np

    from automl.data.dataset import Dataset, as_trained
    from automl.data.stratify import read_labels

    box = [0.5, 0.5, 0.2, 0.2]
    files = tuple(tmp_path / f"{i}.png" for i in range(3))
    boxes = dict(zip(files, (np.array([[0, *box], [1, *box]]), np.array([[2, *box]]),
                             np.array([[1, *box], [2, *box]])), strict=True))
    data = Dataset(tmp_path / "d.yaml", ("a", "b", "c"), files, files, boxes=boxes)
    kept = as_trained(data, classes=[0, 2])
    assert [b[:, 0].tolist() for b in kept.boxes.values()] == [[0], [2], [2]]
    one = as_trained(data, classes=[1, 2], single_cls=True)
    assert [b[:, 0].tolist() for b in one.boxes.values()] == [[0], [0], [0, 0]]
    # the mini split stratifies on those: class b is no column of an image under classes=[0, 2]
    assert read_labels(kept, files)[:, 1].sum() == 0 and read_labels(data, files)[:, 1].sum() == 2
    assert as_trained(data) is data


def _as_ultralytics_reads(data_yaml, mode: str, **args):
    """The images and labels ultralytics' own detection dataset holds for `yolo train` with
    `args` (its `build_yolo_dataset`, as its trainer builds the train and val datasets)."""
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    cfg = get_cfg(overrides={"imgsz": 32, **args})
    data = check_det_dataset(str(data_yaml))
    built = build_yolo_dataset(cfg, data["train" if mode == "train" else "val"], 4, data,
                               mode=mode)
    return [(f, lb["cls"].ravel().tolist()) for f, lb in zip(built.im_files, built.labels,
                                                              strict=True)]


def test_fraction_and_single_cls_read_the_data_as_their_training_reads_it(tmp_path):
    """fraction= keeps the first images of each list ultralytics' trainer keeps; single_cls
    keeps a label whose class id is beyond nc (every box is class 0): the search's check and
    its mini split count what the trials train on."""
    from automl.data.checks import usable
    from automl.data.dataset import as_trained
    from automl.data.demo import make_demo_dataset
    from automl.searching.settings import read_as_trained

    data = make_demo_dataset(tmp_path / "d", n_train=10, n_val=6, seed=5, nc=2)
    beyond = data.parent / "labels" / "train" / "train_00001.txt"
    beyond.write_text(beyond.read_text() + "7 0.5 0.5 0.2 0.2\n")  # class 7 of nc 2

    def ours(settings, split):
        dataset, report = usable(read_as_trained(data, settings),
                                 single_cls=bool(settings.get("single_cls")))
        dataset = as_trained(dataset, single_cls=bool(settings.get("single_cls")))
        return [(str(f), dataset.boxes[f][:, 0].tolist())
                for f in getattr(dataset, split)], report

    for settings in ({}, {"fraction": 0.5}, {"fraction": 3}, {"fraction": [0.5, 0.5]},
                     {"single_cls": True}, {"single_cls": True, "fraction": 0.4}):
        for split, mode in (("train", "train"), ("val", "val")):
            mine, report = ours(settings, split)
            assert mine == _as_ultralytics_reads(data, mode, **settings), (settings, split)
    listed, report = ours({}, "train")
    assert len(listed) == 9 and not report.clean  # class 7 of nc 2: left out, as ultralytics
    kept, report = ours({"single_cls": True, "fraction": 0.4}, "train")
    assert len(kept) == 4 and report.clean and report.train == 4 and report.val == 6
    assert kept[1][1] == [0.0] * len(kept[1][1]) and len(kept[1][1]) >= 2  # the row of class 7
    assert len(ours({"fraction": [0.5, 0.5]}, "val")[0]) == 3
    with pytest.raises(ConfigError, match=r"^fraction=\[0.5, 0\]: val fraction must select"):
        read_as_trained(data, {"fraction": [0.5, 0]})


def test_automl_check_counts_what_a_training_with_those_settings_reads(tmp_path):
    from automl.data.demo import make_demo_dataset

    data = make_demo_dataset(tmp_path / "d", n_train=10, n_val=4, seed=5, nc=2)
    beyond = data.parent / "labels" / "train" / "train_00001.txt"
    beyond.write_text(beyond.read_text() + "7 0.5 0.5 0.2 0.2\n")
    plain = run_cli("check", "--data", data, cwd=tmp_path)
    assert plain.returncode == 1 and "14 images checked (train 10, val 4)" in plain.stdout
    assert "bad class id" in plain.stdout
    mine = run_cli("check", "--data", data, "single_cls=True", "fraction=0.5", cwd=tmp_path)
    assert mine.returncode == 0, mine.stdout + mine.stderr
    assert "9 images checked (train 5, val 4)" in mine.stdout and "; clean" in mine.stdout
    bad = run_cli("check", "--data", data, "fraction=0", cwd=tmp_path)
    assert bad.returncode == 2 and "'fraction=0' invalid" in bad.stderr


def test_single_cls_is_one_class_for_the_optimizer_auto_picks():
    from tests.test_planning import dataset

    flags = with_settings(SearchFlags(data="/data/d.yaml", epochs=20, batch=16,
                                      train_args=["single_cls"]))
    p = plan(flags, data=dataset(120, nc=3))
    assert p.config.baseline_fixed["lr0"] == 0.002  # 0.01 * 5 / (4 + 1 class), as ultralytics
    assert plan(with_settings(SearchFlags(data="/data/d.yaml", epochs=20, batch=16)),
                data=dataset(120, nc=3)).config.baseline_fixed["lr0"] == 0.001429


@pytest.mark.integration
def test_a_search_trains_the_users_settings_and_refuses_to_continue_with_others(in_tmp):
    import optuna
    import yaml

    from automl.data.demo import make_demo_dataset
    from automl.study import CONFIG_ATTR

    data = make_demo_dataset(in_tmp / "data", n_train=16, n_val=8, seed=2, nc=3)
    # a class id beyond nc: yolo train leaves the image out, but not with single_cls
    beyond = data.parent / "labels" / "train" / "train_00002.txt"
    beyond.write_text(beyond.read_text() + "5 0.5 0.5 0.2 0.2\n")
    args = ["search", "--data", data, "--trials", "2", "--epochs", "1", "--imgsz", "32",
            "--batch", "4", "--study", "mine", "--cpus-per-trial", "1", "--seed", "0"]
    out = run_cli(*args, "cos_lr", "classes=[0,2]", "single_cls=True", "close_mosaic=0",
                  "fraction=0.5", cwd=in_tmp)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "your training settings, in every trial and the plain training: cos_lr=True, " \
           "classes=[0, 2], single_cls=True, close_mosaic=0, fraction=0.5" in out.stdout
    assert "first trial: your plain training, yolo train with model=yolo11n.yaml, epochs=1, " \
           "imgsz=32, optimizer=AdamW" in out.stdout
    assert "as one class (single_cls)" in out.stdout
    # the check and the split count the first half of train (fraction=0.5), the image with
    # class 5 kept (single_cls), as yolo train with those settings reads them
    assert "16 images checked (train 8, val 8)" in out.stdout and "; clean" in out.stdout
    assert "trials train on all 8 train and 8 val images" in out.stdout
    study = optuna.load_study(study_name="mine", storage="sqlite:///studies/mine.db")
    assert study.user_attrs[CONFIG_ATTR]["settings"] == {
        "cos_lr": True, "classes": [0, 2], "single_cls": True, "close_mosaic": 0,
        "fraction": 0.5}
    mini = yaml.safe_load((in_tmp / "studies" / "mine" / "mini" / "data.yaml").read_text())
    listed = (in_tmp / "studies" / "mine" / "mini" / mini["train"]).read_text().split()
    assert sorted(name.rsplit("/", 1)[-1] for name in listed) == [
        f"train_{i:05d}.png" for i in range(8)]
    for trial in study.trials:  # every trial trained them, the plain training included
        args_yaml = in_tmp / "studies" / "mine" / "trials" / f"trial_{trial.number:04d}"
        trained = yaml.safe_load((args_yaml / "args.yaml").read_text())
        assert (trained["cos_lr"], trained["classes"], trained["single_cls"]) == (
            True, [0, 2], True)
        assert trained["fraction"] == 1.0  # its list is that half already
    best = (in_tmp / "studies" / "mine" / "best_hyperparameters.yaml").read_text()
    assert "cos_lr: true" in best and "single_cls: true" in best and "fraction: 0.5" in best

    again = run_cli(*args, "cos_lr", cwd=in_tmp)
    assert again.returncode == 2
    assert "was created with the training settings cos_lr=True classes=[0, 2] single_cls=True " \
           "close_mosaic=0 fraction=0.5, not cos_lr=True" in again.stderr


@pytest.mark.integration
def test_a_training_ultralytics_stops_by_patience_reports_why_and_keeps_its_weights(
        tiny_data, tmp_path, monkeypatch):
    """ultralytics' own EarlyStopping, primed as after an epoch that scored 1.0: with patience=2
    the next two epochs (fitness 0 at this scale) end the training after epoch 2 of 4."""
    from ultralytics.utils.callbacks import base

    from automl.config import RunSpec
    from automl.execution.trainer import train_once

    def primed(trainer):
        trainer.stopper.best_fitness, trainer.stopper.best_epoch = 1.0, 0

    monkeypatch.setitem(base.default_callbacks, "on_train_start",
                        [*base.default_callbacks["on_train_start"], primed])
    run = RunSpec(data=str(tiny_data), model="yolo11n.yaml", epochs=4, imgsz=32, batch=8,
                  project=str(tmp_path), threads=1, fixed={"patience": 2, "workers": 0})
    reports = []
    outcome = train_once({}, run, name="t", report=reports.append)
    assert "error" not in outcome, outcome  # YOLO.train found the weights it reloads
    assert [(r.epoch, r.stopped_by) for r in reports] == [(1, ""), (2, "patience")]
    assert outcome["epochs"] == 2


@pytest.mark.integration
def test_a_training_ultralytics_ends_by_time_reports_why_and_keeps_its_weights(tiny_data,
                                                                              tmp_path):
    """time= of about a second: ultralytics trains as many epochs as it estimates fit (more or
    fewer than the 4 asked: tiny epochs take a fraction of a second), then ends the training;
    the record says time ended it, on its last epoch only."""
    from automl.config import RunSpec
    from automl.execution.trainer import train_once

    run = RunSpec(data=str(tiny_data), model="yolo11n.yaml", epochs=4, imgsz=32, batch=4,
                  project=str(tmp_path), threads=1, fixed={"time": 0.0003, "workers": 0})
    reports = []
    outcome = train_once({}, run, name="t", report=reports.append)
    assert "error" not in outcome, outcome  # YOLO.train found the weights it reloads
    assert [r.stopped_by for r in reports] == [""] * (len(reports) - 1) + ["time"]
    assert outcome["epochs"] == reports[-1].epoch == len(reports)
    assert reports[-1].train_seconds >= 0.0003 * 3600


def test_time_trains_each_trial_that_long_without_a_pruner():
    from automl.searching.settings import training_lines

    timed = plan(with_settings(SearchFlags(data="/data/d.yaml", epochs=30,
                                           train_args=["time=0.5"])))
    assert timed.config.pruner == "none" and timed.run.fixed["time"] == 0.5
    assert timed.config.baseline_fixed["time"] == 0.5  # the plain training too
    for flag, message in ((dict(pruner="asha"), "time=0.5 and --pruner asha: with time= each "
                                                "trial trains that long"),
                          (dict(budget="1h"), "time=0.5 and --budget 1h: give one of them"),
                          (dict(max_size_mb=5), "time=0.5 and --max-size-mb: the trained")):
        with pytest.raises(ConfigError, match=message):
            plan(with_settings(SearchFlags(data="/data/d.yaml", epochs=30,
                                           train_args=["time=0.5"], **flag)))
    (line,) = training_lines({"time": 0.5}, model="yolo11n.yaml", epochs=30, batch=16,
                             autobatch=False, pruner="none", project=None)
    assert line.startswith("time=0.5: as in yolo train, each trial trains 0.5 h") \
        and "in place of 30" in line and "stopped_by=time" in line
    # patience within a timed trial, however many epochs time gives it; no pruner to name
    _, patience = training_lines({"time": 0.5, "patience": 50}, model="yolo11n.yaml", epochs=30,
                                 batch=16, autobatch=False, pruner="none", project=None)
    assert patience.endswith("recorded with stopped_by=patience")


def test_fraction_is_recorded_and_promoted_but_trials_train_its_cut_lists():
    p = plan(with_settings(SearchFlags(data="/data/d.yaml", epochs=20, batch=16,
                                       train_args=["fraction=0.5", "cos_lr"])))
    assert p.config.settings == {"fraction": 0.5, "cos_lr": True}
    assert p.config.fixed["fraction"] == p.config.baseline_fixed["fraction"] == 0.5
    # a trial's lists hold that half already: ultralytics would halve them once more
    assert "fraction" not in p.run.fixed and "fraction" not in p.run.baseline_fixed
    assert p.run.fixed["cos_lr"] is True


def test_autobatch_is_ultralytics_default_batch_on_the_cpu_and_each_trials_pick_on_a_gpu():
    from tests.test_planning import dataset

    on_cpu = plan(with_settings(SearchFlags(data="/data/d.yaml", epochs=20,
                                            train_args=["batch=-1"])))
    # ultralytics' AutoBatch falls back to its default batch on the CPU (autobatch.py)
    assert on_cpu.run.batch == on_cpu.config.batch == 16
    assert on_cpu.config.baseline_fixed["batch"] == 16
    assert on_cpu.autobatch  # batch=-1 given as a setting: the header says what it became
    on_gpu = plan(SearchFlags(data="/data/d.yaml", epochs=20, batch=-1), data=dataset(120),
                  gpus=1)
    assert on_gpu.run.batch == -1 and on_gpu.run.fixed["batch"] == -1  # picked as a trial starts
    # up to nbs a batch changes no step count: auto decides as for any batch <= 64
    assert on_gpu.config.auto_optimizer == plan(SearchFlags(
        data="/data/d.yaml", epochs=20, batch=16), gpus=1).config.auto_optimizer
    with pytest.raises(ConfigError, match="--batch -2: must be at least 1, or -1 for ultralytics' "
                                          "AutoBatch"):
        plan(SearchFlags(data="/data/d.yaml", batch=-2))


def test_a_trained_start_is_said_and_pretrained_weights_are_checked(tmp_path):
    from automl.searching.settings import check_pretrained, describe_start

    assert describe_start("mine.pt", {"freeze": 10}) == (
        "a trained start: every trial fine-tunes mine.pt, its first 10 layers frozen, the plain "
        "training included")
    assert "from scratch (pretrained=False)" in describe_start("mine.pt", {"pretrained": False})
    assert describe_start("yolo11n.yaml", {}) == "every trial trains yolo11n.yaml from scratch"
    with pytest.raises(ConfigError, match="pretrained=nothere.pt: weights file not found"):
        check_pretrained({"pretrained": "nothere.pt"})
    bad = write(tmp_path / "bad.pt", "not weights")
    with pytest.raises(ConfigError, match=f"^pretrained={bad}: not an ultralytics YOLO checkpoint"):
        check_pretrained({"pretrained": str(bad)})
    check_pretrained({"pretrained": True})


def test_the_search_says_where_each_trial_logs_with_the_trackers_yolo_settings_turn_on():
    from automl.searching.settings import tracker_works, trackers_text

    # ultralytics' own settings turn mlflow, clearml, comet and dvc on; without their packages
    # (none is installed here) or under pytest, its integrations log nothing: nor is it said
    assert not tracker_works("mlflow") and not tracker_works("tensorboard")
    assert trackers_text({"mlflow": True, "dvc": True}, "/s/trials") is None

    def every(key):  # stands in for installed trackers
        return True

    assert trackers_text({"tensorboard": False, "mlflow": False}, "/s/trials", every) is None
    text = trackers_text({"tensorboard": True, "mlflow": True, "wandb": False}, "/s/trials",
                         every)
    assert text == ("your yolo settings turn on tensorboard, mlflow: each trial logs as its own "
                    "run (TensorBoard: /s/trials/trial_NNNN (tensorboard --logdir /s/trials); "
                    "MLflow: experiment /s/trials (or $MLFLOW_EXPERIMENT_NAME), run trial_NNNN)")


@pytest.mark.integration
def test_yolo_settings_tensorboard_logs_every_trial_of_a_search_as_its_own_run(in_tmp):
    """`yolo settings tensorboard=True`, then a real search as a user runs it (a new process, its
    Ray workers reading the same settings): each trial writes its own TensorBoard run under the
    study, the header says where, and AutoBatch on the CPU trains ultralytics' default batch,
    recorded on the study and each trial."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import optuna

    from automl.data.demo import make_demo_dataset
    from automl.study import CONFIG_ATTR

    data = make_demo_dataset(in_tmp / "data", n_train=16, n_val=8, seed=2, nc=2)
    # a process that is not pytest's (ultralytics' integrations are off under pytest), with its
    # own ultralytics settings folder (the user's is left alone)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env["YOLO_CONFIG_DIR"] = str(in_tmp / "ultralytics-settings")
    yolo = Path(sys.executable).with_name("yolo")
    subprocess.run([str(yolo), "settings", "tensorboard=True"], env=env, cwd=in_tmp, check=True,
                   capture_output=True)
    out = subprocess.run(
        [sys.executable, "-m", "automl", "search", "--data", str(data), "--trials", "2",
         "--epochs", "1", "--imgsz", "32", "--study", "tb", "--cpus-per-trial", "1",
         "--seed", "0", "batch=-1"], env=env, cwd=in_tmp, capture_output=True, text=True,
        timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    trials_dir = (in_tmp / "studies" / "tb" / "trials").resolve()
    assert (f"your yolo settings turn on tensorboard: each trial logs as its own run "
            f"(TensorBoard: {trials_dir}/trial_NNNN (tensorboard --logdir {trials_dir}))"
            ) in out.stdout
    assert "batch -1: ultralytics' AutoBatch falls back to batch 16 on the CPU" in out.stdout
    study = optuna.load_study(study_name="tb", storage="sqlite:///studies/tb.db")
    assert study.user_attrs[CONFIG_ATTR]["batch"] == 16
    assert len(study.trials) == 2
    for trial in study.trials:
        assert trial.user_attrs["batch"] == 16, trial.user_attrs
        run = trials_dir / f"trial_{trial.number:04d}"
        assert list(run.glob("events.out.tfevents.*")), sorted(p.name for p in run.iterdir())


def test_a_promotion_and_a_validation_train_the_studys_settings():
    import optuna

    from automl.results.promotion import resolve_promotion
    from automl.study import BASELINE_ATTR, CONFIG_ATTR, trial_args

    p = plan(with_settings(SearchFlags(data="/data/d.yaml", epochs=20, batch=16,
                                       train_args=["cos_lr", "freeze=10"])))
    study = optuna.create_study()
    study.set_user_attr(CONFIG_ATTR, p.config.to_dict())
    study.enqueue_trial({"lr0": 0.001667, "lrf": 0.01, "momentum": 0.9},
                        user_attrs={BASELINE_ATTR: True})
    study.enqueue_trial({"lr0": 0.02, "lrf": 0.1, "momentum": 0.8})
    for _ in range(2):
        trial = study.ask(p.space.distributions())
        study.tell(trial, 0.1)
    plain, searched = (trial_args(study, t) for t in study.trials)
    assert plain["cos_lr"] is searched["cos_lr"] is True
    assert plain["freeze"] == searched["freeze"] == 10
    promotion = resolve_promotion(p.config, study="s", trial_number=1, params=searched,
                                  data=None, full_data="train", epochs=None, model=None,
                                  device=None, imgsz=None, batch=None, project="runs")
    assert promotion.params["cos_lr"] is True and promotion.params["lr0"] == 0.02


def test_the_header_says_what_patience_autobatch_and_a_trained_start_do():
    from automl.searching.settings import training_lines

    lines = training_lines({"patience": 5, "freeze": 10}, model="mine.pt", epochs=30, batch=16,
                           autobatch=True, pruner="asha", project=None)
    assert lines == [
        "batch -1: ultralytics' AutoBatch falls back to batch 16 on the CPU",
        "a trained start: every trial fine-tunes mine.pt, its first 10 layers frozen, the plain "
        "training included",
        "patience=5: as in yolo train, a trial whose fitness (ultralytics' own) has not improved "
        "for 5 epochs stops early, COMPLETE and recorded with stopped_by=patience; the pruner "
        "(asha) stops weak trials besides (PRUNED)"]
    # ultralytics' default patience (100) says nothing to a 30-epoch search
    assert training_lines({}, model="yolo11n.yaml", epochs=30, batch=16, autobatch=False,
                          pruner="asha", project=None) == []


def test_a_best_hyperparameters_yaml_is_a_cfg_for_the_next_search(tmp_path):
    best = write(tmp_path / "best_hyperparameters.yaml", (
        "# best of study 'x': trial 4, fitness 0.49960 (v5)\n"
        "# use: yolo train cfg=best_hyperparameters.yaml data=... model=...\n"
        "optimizer: AdamW\ncos_lr: true\nlr0: 0.0033\nmomentum: 0.67\nwarmup_bias_lr: 0.0\n"
        "batch: 16\n"))
    flags = with_settings(SearchFlags(data="/data/d.yaml", epochs=20, cfg=str(best),
                                      space="loss_gains"))
    assert flags.batch == 16
    p = plan(flags, space="loss_gains")  # a space that searches other keys on top of it
    assert p.run.fixed["lr0"] == 0.0033 and p.config.baseline_fixed["cos_lr"] is True
    assert p.config.baseline_fixed["optimizer"] == "AdamW"
    with pytest.raises(ConfigError, match="the space lr_momentum searches lr0"):
        plan(with_settings(SearchFlags(data="/data/d.yaml", cfg=str(best))))
