"""A search sized to a time budget: durations read in one place, the pure planner
(automl.searching.budget_plan) and the pace that keeps a running search to it
(automl.execution.budget.Pace, on a fake clock)."""

from __future__ import annotations

import pytest

from automl.cli import main
from automl.durations import duration_text, parse_duration
from automl.errors import ConfigError
from automl.execution.budget import Pace
from automl.searching.budget_plan import MARGIN, MIN_EPOCHS, asha_epochs, plan_budget


@pytest.mark.parametrize(("text", "seconds"), [
    ("45m", 2700), ("2h", 7200), ("1h30m", 5400), ("90s", 90), ("1h0m30s", 3630),
    (" 1H 5M ", 3900), ("120", 120), ("0.5h", 1800), (300, 300)])
def test_durations_read_as_people_write_them(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "45", "-5m", "0s", "5x", "30m1h", "1h1h", "5m 3",
                                  "1.5.2h", "inf"])
def test_a_duration_that_means_nothing_is_refused(text):
    if text == "45":  # a bare number is seconds
        assert parse_duration(text) == 45
        return
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [1, 59, 60, 61, 3599, 3600, 5400, 7201])
def test_a_written_duration_reads_back_at_least_as_long(seconds):
    assert parse_duration(duration_text(seconds)) >= seconds
    assert parse_duration(duration_text(seconds)) < seconds + 60


def test_a_bad_budget_flag_exits_2_in_one_line(capsys):
    assert main(["search", "--budget", "45 minutes"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("automl search: error: --budget 45 minutes: use a duration such as 45m, 2h, "
                   "1h30m or 90s")


@pytest.mark.parametrize(("extra", "named"), [
    (["--timeout", "60"], "--timeout 60"), (["--repeats", "2"], "--repeats 2"),
    (["--replay", "x.npz"], "--replay-epoch-seconds")])
def test_what_a_budget_cannot_go_with_is_refused_before_anything_loads(extra, named, capsys):
    assert main(["search", "--budget", "10m", *extra]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1


def plan(**kw):
    args = dict(budget_s=3600, spent_s=30, epoch_s=6.0, fraction=0.5, fraction_fixed=False,
                epochs=30, epochs_fixed=False, trials_cap=None,
                concurrency=lambda n: max(1, min(2, n // 4)), trial_overhead_s=5,
                startup_s=5)
    args.update(kw)
    return plan_budget(**args)


def wall(p, n):
    """Wall seconds of n whole trials at the plan's concurrency rule (none stopped early)."""
    import math

    return math.ceil(n / max(1, min(2, n // 4))) * p.trial_s


def test_a_roomy_budget_keeps_the_epochs_and_share_and_plans_trials_that_fit():
    p = plan()
    assert (p.epochs, p.fraction) == (30, 0.5) and p.why == ""
    assert p.trial_s == pytest.approx(30 * 6.0 + 5)
    usable = 3600 * (1 - MARGIN) - 30 - 5
    assert wall(p, p.sure) <= usable < wall(p, p.sure + 1)  # as many as fit, no more
    assert p.eta_s <= 3600 * (1 - MARGIN)
    # ASHA stops some trials at its rungs: up to more trials are launched, never fewer
    assert p.pruner == "asha" and p.rungs == (3, 9, 27) and p.trials > p.sure
    assert p.concurrency == 2


def test_the_users_trials_and_epochs_are_caps_the_plan_keeps():
    p = plan(trials_cap=5, epochs=12)
    assert p.trials <= 5 and p.sure <= 5 and p.epochs <= 12
    assert plan(trials_cap=3).trials == 3


def test_a_tight_budget_trades_epochs_then_the_share_for_trials():
    tight = plan(budget_s=600)  # 4 trials of 30 epochs do not fit
    assert tight.epochs < 30 and tight.epochs >= MIN_EPOCHS and "30 epochs" in tight.why
    assert tight.eta_s <= 600 * (1 - MARGIN)
    assert plan(budget_s=240).epochs >= 15  # down to half the epochs for more trials
    tighter = plan(budget_s=80)  # then, to fit at all, shorter still and a smaller share
    assert tighter.epochs == MIN_EPOCHS and tighter.fraction < 0.5
    assert tighter.epoch_s == pytest.approx(6.0 * tighter.fraction / 0.5)
    assert tighter.sure >= 2 and tighter.eta_s <= 80 * (1 - MARGIN)
    # the user's share is kept: fewer trials instead
    kept = plan(budget_s=600, fraction_fixed=True)
    assert kept.fraction == 0.5


def test_where_asha_makes_room_for_enough_trials_the_plan_keeps_the_epochs():
    # 4 whole trials of 30 epochs fit (8 do not): rather than 8 trials of 20 epochs, the plan
    # is multi-fidelity, successive halving at ASHA's rungs: trials of 30 epochs, up to as many
    # as fit when 2 in 3 stop at each rung, and still 4 whole ones if none does
    multi = plan(budget_s=900)
    assert (multi.epochs, multi.pruner, multi.rungs) == (30, "asha", (3, 9, 27))
    assert multi.sure == 4 and multi.trials >= 8
    assert multi.eta_s <= 900 * (1 - MARGIN)  # the whole trials' ETA
    assert "ASHA's rungs at epochs 3, 9, 27 make room for up to" in multi.why
    # without ASHA (another --pruner) the same budget plans shorter trials instead
    plain = plan(budget_s=900, asha=False)
    assert plain.epochs < 30 and plain.pruner == "none" and plain.trials == plain.sure >= 4
    # too few whole trials under it (2 < SURE_UNDER_ASHA): shorter trials, as before
    assert plan(budget_s=600).epochs < 30
    # a roomy budget needs no early stopping to plan enough trials: no multi-fidelity reason
    assert "ASHA" not in plan().why


def test_a_replay_keeps_its_recorded_epochs():
    assert plan(budget_s=900, epochs=20, epochs_fixed=True, fraction_fixed=True).epochs == 20


def test_a_budget_too_small_names_the_smallest_that_fits():
    with pytest.raises(ConfigError) as e:
        plan(budget_s=40)
    message = str(e.value)
    assert message.startswith("--budget 40s: too small for the plain training and one more trial")
    smallest = parse_duration(message.rsplit("--budget ", 1)[1])
    assert plan(budget_s=smallest).sure >= 2  # the budget it names fits
    with pytest.raises(ConfigError):
        plan(budget_s=smallest * 0.95)  # 5% less does not


def test_time_kept_for_full_data_trainings_after_the_search_ends_it_earlier():
    alone, fit = plan(), plan(after=2, after_s=30)
    # two trainings of the plan's epochs on all images (the measured share's epoch x 1/0.5)
    assert fit.reserve_s == pytest.approx(2 * (fit.epochs * 6.0 / 0.5 + 5) + 30)
    assert fit.eta_s + fit.reserve_s <= 3600 * (1 - MARGIN)
    assert fit.sure < alone.sure and alone.reserve_s == 0
    assert "kept for the full-data trainings" in fit.describe()
    with pytest.raises(ConfigError) as e:  # the smallest budget named holds the reserve too
        plan(budget_s=120, after=2)
    smallest = parse_duration(str(e.value).rsplit("--budget ", 1)[1])
    assert "and the full-data trainings" in str(e.value)
    assert plan(budget_s=smallest, after=2).sure >= 2
    # the running search's pace stops launching trials that early too
    assert Pace.of(fit, started=100.0).end == pytest.approx(
        100.0 + 3600 * (1 - MARGIN) - fit.reserve_s)


def test_asha_expected_epochs_count_what_each_rung_lets_through():
    assert asha_epochs(30, (), 3) == 30
    assert asha_epochs(30, (3, 9, 27), 3) == pytest.approx(3 + 6 / 3 + 18 / 9 + 3 / 27)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_pace_refuses_a_trial_the_measured_epochs_say_would_overrun():
    clock = Clock()
    pace = Pace(end=100.0, epochs=10, trial_s=20.0, budget_s=105, clock=clock)
    assert pace.trial_seconds() == 20.0 and pace.fits()  # the plan's, before any report
    pace.started(0)
    clock.now = 12.0
    pace.epoch(0, 4)  # 3 s an epoch, not the planned 2: a trial takes 30 s
    assert pace.trial_seconds() == pytest.approx(30.0)
    clock.now = 70.0
    assert pace.fits()  # ends at 100
    clock.now = 70.5
    assert not pace.fits() and pace.refused == 1
    assert "left no room for the other 3" in pace.ending(5, 8, 99.0)


def test_the_pace_counts_a_trials_slow_start_once_not_per_epoch():
    clock = Clock()
    pace = Pace(end=1000.0, epochs=10, trial_s=20.0, budget_s=1050, clock=clock)
    pace.started(0)
    clock.now = 8.0
    pace.epoch(0, 1)  # a new process's start (6 s) and one epoch of 2 s
    clock.now = 16.0
    pace.epoch(0, 5)  # 2 s an epoch since
    assert pace.trial_seconds() == pytest.approx(6 + 10 * 2)
    pace.started(1)  # a reused process starts at once: its start is the one a new trial gets
    clock.now = 16.5
    pace.epoch(1, 1)
    clock.now = 20.5
    pace.epoch(1, 3)
    assert pace.trial_seconds() == pytest.approx(10 * 2)


def test_a_study_that_goes_on_needs_room_for_one_more_trial_only():
    with pytest.raises(ConfigError):
        plan(budget_s=70, fraction_fixed=True, epochs=4)  # two 4-epoch trials do not fit
    assert plan(budget_s=70, fraction_fixed=True, epochs=4, resumed=True).sure == 1


def test_the_fitted_search_trains_on_the_share_its_plan_timed(monkeypatch, in_tmp):
    """Fewer epochs would make --fraction auto pick a larger share (more optimizer steps): the
    search must train on the share whose epoch was timed and planned, not a new one."""
    import time
    from pathlib import Path

    from automl.config import SearchFlags
    from automl.data.dataset import Dataset
    from automl.execution import budget
    from automl.searching.fraction import auto_fraction
    from automl.searching.planning import check_search, resolve_search
    from automl.searching.spaces import load_space, ultralytics_defaults

    monkeypatch.setattr(budget, "measure_epoch", lambda plan, **kw: 10.0)  # no training here
    monkeypatch.setattr("automl.execution.ray_runner.init_ray", lambda **kw: None)
    dataset = Dataset(yaml_path=in_tmp / "data.yaml", names=("a",),
                      train=tuple(Path(f"t/{i}.jpg") for i in range(600)),
                      val=tuple(Path(f"v/{i}.jpg") for i in range(100)))
    flags = check_search(SearchFlags(data="data.yaml", budget="12m20s", epochs=30, batch=16,
                                     study="pin"))

    def resolve(f):
        return resolve_search(f, dataset=dataset, space=load_space("lr_momentum"),
                              ultralytics_defaults=ultralytics_defaults(), cpu_count=2,
                              gpu_count=0, studies_dir=in_tmp / "studies")

    plan = budget.fit_budget(flags, resolve, started=time.monotonic(), cpu_count=2, gpu_count=0,
                             say=lambda line: None)
    assert plan.budget.epochs == 15 and plan.run.epochs == 15
    assert auto_fraction(600, epochs=15, batch=16, nbs=64)[0] != 0.5  # auto would move
    assert plan.config.fraction == plan.budget.fraction == 0.5
    assert plan.fraction_why.startswith("half the data")
    assert plan.trials == plan.budget.trials and plan.concurrency == plan.budget.concurrency
