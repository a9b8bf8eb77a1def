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
    assert flags == {"epochs": 7, "model": "yolo11s.yaml"}


@pytest.mark.parametrize(("pairs", "message"), [
    (["lr=0.1"], "'lr' is not a valid YOLO argument. Similar arguments are i.e. ['lrf=0.01', "
                 "'lr0=0.01']"),
    (["close_mosaic=abc"], "'close_mosaic=abc' is of invalid type str"),
    (["cos_lr=3"], "'cos_lr' must be a bool"),
    (["hsv_h=2"], "'hsv_h=2' is an invalid value"),
    (["patience"], "patience: missing '='; give patience=VALUE"),
    (["project=mine"], "project=mine: automl sets project itself"),
    (["resume=True"], "run the same automl search command again"),
    (["fraction=0.5"], "--fraction is the share each trial trains on"),
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
    assert out.returncode == 2 and "--bogus: not an option" in out.stderr
    out = run_cli("search", "--data", "none.yaml", "close_mosaic=5", "--epochs", "3",
                  cwd=tmp_path)
    assert out.returncode == 2 and "none.yaml: data.yaml not found" in out.stderr
    assert not (tmp_path / "studies").exists()
    out = run_cli("studies", "cos_lr=True", cwd=tmp_path)  # no settings there
    assert out.returncode == 2 and "unrecognized arguments: cos_lr=True" in out.stderr


