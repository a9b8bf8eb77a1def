"""Trial #0 is the user's plain `yolo train`: ultralytics' optimizer=auto resolved as it would."""

from __future__ import annotations

import math

import optuna
import pytest

import automl
from automl.data.demo import make_demo_dataset
from automl.searching.baseline import optimizer_steps, resolve_auto, trial_fixed
from automl.study import BASELINE_ATTR, CONFIG_ATTR


@pytest.mark.parametrize(("nc", "lr"), [(1, 0.002), (2, 0.001667), (80, 0.000119)])
def test_auto_on_short_schedules_is_adamw_with_a_class_count_learning_rate(nc, lr):
    auto = resolve_auto(n_images=120, epochs=20, batch=16, nbs=64, nc=nc)
    assert (auto.optimizer, auto.lr0, auto.momentum, auto.warmup_bias_lr) == ("AdamW", lr, 0.9, 0.0)
    assert auto.iterations == 40  # 2 nominal batches of 64 an epoch: what ultralytics counts


def test_auto_beyond_ten_thousand_steps_is_sgd_like_at_lr_0_01():
    auto = resolve_auto(n_images=40_000, epochs=30, batch=16, nbs=64, nc=3)
    assert auto.iterations == 625 * 30
    assert auto.optimizer in ("MuSGD", "SGD") and auto.lr0 == 0.01 and auto.warmup_bias_lr == 0.0


def test_optimizer_steps_count_nominal_batches():
    assert optimizer_steps(120, 20, 16, 64) == 40
    assert optimizer_steps(80, 10, 8, 8) == 100
    assert optimizer_steps(10, 1, 16, 8) == 1


def test_an_auto_space_trains_the_resolved_optimizer_with_auto_values_for_unsearched_keys():
    auto = resolve_auto(n_images=120, epochs=20, batch=16, nbs=64, nc=2)
    # not auto's warmup_bias_lr 0: ultralytics' default 0.1 (left out, ultralytics fills it in)
    assert trial_fixed({"optimizer": "auto"}, ("lr0", "momentum"), auto) == {"optimizer": "AdamW"}
    assert trial_fixed({}, ("box",), auto) == {
        "optimizer": "AdamW", "lr0": 0.001667, "momentum": 0.9}
    # the space's own values stay; a named optimizer is kept as it is
    assert trial_fixed({"warmup_bias_lr": 0.1}, ("lr0",), auto)["warmup_bias_lr"] == 0.1
    assert trial_fixed({"optimizer": "SGD"}, ("lr0",), auto) == {"optimizer": "SGD"}
    assert trial_fixed({}, ("optimizer", "lr0"), auto) == {}


def _trial_0_is_the_plain_training(data, project, study_name: str, trials: int = 2,
                                   model: str = "yolo11n.yaml", settings=None):
    """Search `data`, train `yolo train` on it with the same flags; trial #0 must be that training:
    the same images (counted by ultralytics in both), the same weights (val loss and metrics).

    Deterministic CPU training at one thread (ultralytics' own count on this 2-core machine,
    --cpus-per-trial 1 for the trial). Returns the study.
    """
    from ultralytics import YOLO

    from automl.execution.trainer import epoch_metrics, validation_loss

    flags = dict(epochs=3, imgsz=64, batch=4)
    seen = {}

    def on_train_start(trainer):  # in the trial's process too: ultralytics' counts, reported back
        seen.setdefault("plain", (len(trainer.train_loader.dataset),
                                  sum(len(lb["cls"]) for lb in trainer.train_loader.dataset.labels)))

    settings = dict(settings or {})
    automl.search(data=str(data), trials=trials, seed=0, cpus_per_trial=1, pruner="none",
                  study=study_name, log=lambda line: None, model=model, train_args=settings,
                  **flags)
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///studies/{study_name}.db")
    trial = study.trials[0]
    assert trial.user_attrs[BASELINE_ATTR] is True

    per_epoch, used = {}, {}

    def on_epoch_end(trainer):
        per_epoch.setdefault(trainer.epoch + 1, {**epoch_metrics(trainer),
                                                 "val_loss": validation_loss(trainer)})
        used.update(optimizer=trainer.args.optimizer, lr0=trainer.args.lr0,
                    warmup_bias_lr=trainer.args.warmup_bias_lr,
                    **{k: getattr(trainer.args, k) for k in settings})

    yolo = YOLO(model)
    yolo.add_callback("on_fit_epoch_end", on_epoch_end)
    yolo.add_callback("on_train_start", on_train_start)
    yolo.train(data=str(data), plots=False, project=str(project), name="run", **flags, **settings)

    config = study.user_attrs[CONFIG_ATTR]
    plain = config["baseline_fixed"]
    # what ultralytics' auto chose, as automl resolved it, and the user's settings
    assert {k: plain[k] for k in used} == used
    last = per_epoch[3]
    assert math.isfinite(last["val_loss"]) and last["val_loss"] > 0
    # ultralytics rounds losses to 5 decimals; another configuration lands far from it
    assert trial.user_attrs["val_loss"] == pytest.approx(last["val_loss"], abs=1e-6)
    best_epoch = trial.user_attrs["best_epoch"]
    for key in ("precision", "recall", "map50", "map50_95"):
        assert trial.user_attrs[key] == pytest.approx(per_epoch[best_epoch][key], abs=1e-6)
    return study, seen["plain"]


@pytest.mark.integration
def test_trial_0_equals_a_plain_yolo_train_with_the_same_arguments(in_tmp):
    data = make_demo_dataset(in_tmp / "data", n_train=24, n_val=8, seed=3, nc=2,
                             image_sizes=((160, 90), (128, 96)), boxes_per_image=(1, 2, 3))
    study, _ = _trial_0_is_the_plain_training(data, in_tmp / "plain", "data-lr_momentum")
    assert study.user_attrs[CONFIG_ATTR]["fraction"] == 1.0  # 24 images: a split would starve it
    trial, other = study.trials
    assert BASELINE_ATTR not in other.user_attrs
    # trial #1 is ultralytics' default values with the same optimizer: another training
    assert other.params == {"lr0": 0.01, "lrf": 0.01, "momentum": 0.937}
    assert abs(other.user_attrs["val_loss"] - trial.user_attrs["val_loss"]) > 1e-3


@pytest.mark.integration
def test_trial_0_equals_yolo_train_with_the_users_own_settings_from_a_trained_start(in_tmp):
    """A fine-tuning: a checkpoint trained here, frozen backbone, cosine schedule, mosaic
    closed early, RAM cache, ...: trial #0 is `yolo train` with exactly those settings."""
    from ultralytics import YOLO

    data = make_demo_dataset(in_tmp / "data", n_train=16, n_val=8, seed=4, nc=2,
                             image_sizes=((128, 96),), boxes_per_image=(1, 2))
    YOLO("yolo11n.yaml").train(data=str(data), epochs=1, imgsz=64, batch=4, plots=False,
                               project=str(in_tmp / "start"), name="run", val=False)
    start = in_tmp / "start" / "run" / "weights" / "last.pt"
    # nbs 4: an optimizer step every batch, so that three short epochs change the weights
    # fraction: yolo train reads the first 12 of the 16 train images; trial #0, a list of them
    settings = {"cos_lr": True, "close_mosaic": 2, "patience": 20, "freeze": 10, "nbs": 4,
                "cache": "ram", "mosaic": 0.5, "fliplr": 0.2, "warmup_epochs": 1.0,
                "fraction": 0.75}
    study, seen = _trial_0_is_the_plain_training(data, in_tmp / "plain", "finetune", trials=1,
                                                 model=str(start), settings=settings)
    assert seen[0] == 12
    config = study.user_attrs[CONFIG_ATTR]
    assert config["settings"] == settings and config["model"] == str(start)
    # the weights trained: a val loss that does not move would match any training
    rows = (in_tmp / "studies" / "finetune" / "trials" / "trial_0000" / "results.csv"
            ).read_text().splitlines()
    losses = {line.split(",")[9] for line in rows[1:]}  # val/box_loss of each epoch
    assert len(losses) == 3, rows


@pytest.mark.integration
@pytest.mark.parametrize("layout", ["roboflow", "cvat"])
def test_trial_0_is_the_plain_training_on_data_as_exported(in_tmp, monkeypatch, layout):
    # issue 27: polygons, a mixed file ultralytics drops, `../train/images`, lists relative to
    # the working directory: trial #0 trains the same images and boxes as `yolo train`
    from automl.data.checks import usable
    from automl.data.dataset import load_dataset
    from tests import exports

    data, cwd = exports.build(layout, in_tmp / "export")
    monkeypatch.chdir(cwd)
    study, (images, boxes) = _trial_0_is_the_plain_training(data, in_tmp / "plain", layout,
                                                            trials=1)
    dataset, _ = usable(load_dataset(data))
    assert images == len(dataset.train)
    assert boxes == sum(len(dataset.boxes[f]) for f in dataset.train)


@pytest.mark.integration
def test_a_training_does_not_depend_on_what_the_process_ran_before_it(tmp_path):
    """The first training of a process that has not imported ray.tune yet (its import draws
    from Python's global random right after ultralytics seeds it) equals the next one: automl
    seeds again before the dataset and model exist."""
    import subprocess
    import sys

    data = make_demo_dataset(tmp_path / "data", n_train=16, n_val=8, seed=5, nc=2)
    script = tmp_path / "twice.py"
    # the global random's state as automl's setup leaves it, before the dataset and the model,
    # in each of two trainings of one fresh process (a short training may not show the draw in
    # its losses; 20 epochs do: 0.27 against 0.21 mAP50-95 on the small regime's config 1)
    script.write_text(
        "import random, sys\n"
        "import automl.execution.trainer as trainer\n"
        "from automl.config import RunSpec\n"
        "from automl.execution.trainer import train_once\n"
        "drop = trainer._drop_raytune_callback  # what setup calls right after seeding\n"
        "def probe(t):\n"
        "    print('STATE', hash(random.getstate()), flush=True)\n"
        "    drop(t)\n"
        "trainer._drop_raytune_callback = probe\n"
        "run = RunSpec(data=sys.argv[1], model='yolo11n.yaml', epochs=1, imgsz=64, batch=4,\n"
        "              project=sys.argv[2], threads=1, fixed={'workers': 0})\n"
        "for i in range(2):\n"
        "    train_once({}, run, name=f't{i}', report=lambda r: None)\n")
    out = subprocess.run([sys.executable, str(script), str(data), str(tmp_path / "runs")],
                         capture_output=True, text=True, timeout=600)
    states = [line for line in out.stdout.splitlines() if line.startswith("STATE")]
    assert len(states) == 2, out.stderr[-2000:]
    assert states[0] == states[1]
