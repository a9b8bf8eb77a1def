"""Studies written by earlier releases still load: a study made by release 0.1 (commit afbccc5),
before the typed configs, the plain-training baseline and the owner as a user attr."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from automl.config import StudyConfig
from automl.errors import ConfigError
from automl.study import (
    check_config,
    latest_promotion,
    open_study,
    study_config,
    trial_args,
    write_best_hyperparameters,
)

FIXTURE = Path(__file__).parent / "fixtures" / "study_v0_1.db"


@pytest.fixture
def old(tmp_path):
    db = tmp_path / "v0_1.db"
    shutil.copy(FIXTURE, db)  # never write to the committed file
    return open_study("v0_1", f"sqlite:///{db}", create=False), f"sqlite:///{db}"


def test_its_config_loads_as_the_typed_config(old):
    study, _ = old
    config = study_config(study)
    assert config.space == "lr_momentum" and config.space_keys == ("lr0", "lrf", "momentum")
    assert config.fixed == {"optimizer": "SGD"} and config.fitness == "v5"
    assert (config.epochs, config.imgsz, config.batch, config.fraction) == (1, 64, 4, 0.5)
    assert config.baseline_fixed is None and config.auto_optimizer is None  # not written then


def test_its_trials_give_their_training_args_and_best_yaml(old, tmp_path):
    study, _ = old
    assert trial_args(study, study.trials[0]) == {"optimizer": "SGD", "lr0": 0.01, "lrf": 0.01,
                                                  "momentum": 0.937}
    path = write_best_hyperparameters(study, tmp_path / "best.yaml")
    assert yaml.safe_load(path.read_text())["optimizer"] == "SGD"
    assert latest_promotion(study)["fitness"] == 0.1234


def test_the_cli_lists_exports_and_reports_it(old, tmp_path):
    from tests.conftest import run_cli

    _, url = old
    listed = run_cli("studies", "--storage", url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "v0_1" in listed.stdout and "#0 0.1234" in listed.stdout
    exported = run_cli("export", "--study", "v0_1", "--storage", url, "--out", "out",
                       cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "out" / "trials.csv").is_file()
    report = run_cli("report", "--study", "v0_1", "--storage", url, "--out", "r.html",
                     cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "lr_momentum" in (tmp_path / "r.html").read_text()


def test_continuing_it_with_todays_space_is_refused_with_the_reason(old):
    study, _ = old
    today = StudyConfig.from_dict({**study_config(study).to_dict(),
                                   "fixed": {"optimizer": "AdamW", "warmup_bias_lr": 0.0,
                                             "batch": 4}})
    with pytest.raises(ConfigError, match=r"created with fixed=\{'optimizer': 'SGD'\}"):
        check_config(study, today)
