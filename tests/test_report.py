"""`automl report`: a self-contained HTML whose figures really draw in headless Chromium.

Chromium comes from Debian's package: `.ci/run` installs it and sets AUTOML_REQUIRE_CHROMIUM=1,
so in CI a missing browser fails the rendering test instead of skipping it.
"""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from automl.config import StudyConfig
from automl.results.reporting import figures, write_report
from automl.searching.spaces import load_space
from automl.study import BASELINE_ATTR, check_config, open_study, record_promotion
from tests.browser import Browser
from tests.conftest import run_cli

optuna.logging.set_verbosity(optuna.logging.WARNING)
SECTIONS = ["Optimization history", "Learning curves", "Parameter importances",
            "Parallel coordinates", "Slices", "Fitness against each parameter", "Top trials"]


@pytest.fixture
def study(in_tmp):
    s = open_study("rep", None)
    check_config(s, StudyConfig.from_dict({"fixed": {"optimizer": "SGD"}, "fitness": "v5", "space": "lr_momentum"}))
    dists = load_space("lr_momentum").distributions()
    for i in range(6):
        curve = {e: 0.05 * e * (i + 1) / 6 for e in range(1, 6)}
        s.add_trial(optuna.trial.create_trial(
            params={"lr0": 0.001 * (i + 1), "lrf": 0.1 + 0.1 * i, "momentum": 0.8 + 0.02 * i},
            distributions=dists, value=curve[5], intermediate_values=curve,
            user_attrs={"map50": curve[5] + 0.1, "map50_95": curve[5],
                        **({BASELINE_ATTR: True} if i == 0 else {})}))
    s.add_trial(optuna.trial.create_trial(
        params={"lr0": 0.05, "lrf": 0.5, "momentum": 0.7}, distributions=dists,
        state=TrialState.PRUNED, intermediate_values={1: 0.0, 2: 0.01},
        user_attrs={"fitness": 0.01}))
    s.add_trial(optuna.trial.create_trial(
        params={"lr0": 0.09, "lrf": 0.9, "momentum": 0.61}, distributions=dists,
        state=TrialState.FAIL, user_attrs={"error": "CUDA out of memory"}))
    record_promotion(s, {"trial": 5, "fitness": 0.61, "weights": "runs/x/best.pt",
                         "metrics": {"map50": 0.7}, "thresholds": {"iou": 0.68, "conf": 0.001}})
    return s


def test_every_section_has_a_figure(study):
    got = figures(study)
    assert [title.split(" (")[0].split(";")[0] for title, _ in got] == SECTIONS
    assert all(not isinstance(fig, str) and fig is not None for _, fig in got)
    curves = dict(got)["Learning curves (fitness per epoch; pruned trials included)"]
    assert len(curves.data) == 7  # six complete trials and the pruned one


def test_the_figures_say_what_they_show(study):
    got = dict(figures(study))
    history = got["Optimization history (pruned trials at the fitness they had when stopped)"]
    pruned = history.data[-1]
    assert pruned.name.startswith("pruned") and list(pruned.x) == [6] and list(pruned.y) == [0.01]
    assert history.layout.yaxis.title.text == "fitness"
    curves = got["Learning curves (fitness per epoch; pruned trials included)"]
    assert curves.layout.showlegend and all(c.showlegend for c in curves.data)
    assert [c.name for c in curves.data][::6] == ["#0 plain", "#6 pruned"]
    assert curves.layout.xaxis.title.text == "epoch"
    # six COMPLETE trials rank parameters roughly at best: the title says so
    assert "Parameter importances; only 6 COMPLETE trials: a rough ranking, not a measurement" in got


def test_the_report_leads_with_the_answer(in_tmp, study):
    page = write_report(study, in_tmp / "report.html").read_text()
    answer = page.index("<h2>The answer</h2>")
    assert answer < page.index("Promotion of trial #5") < page.index("<h2>Optimization history")
    top = page[answer:page.index("<h2>Optimization history")]
    assert "best #5 0.2500 beats the plain training #0 0.0417 by +0.2083" in top
    assert "<td>#5</td>" in top and "<td>#0 plain</td>" in top and "<td>0.006</td>" in top
    assert "7 of 8 trials" not in top and "6 of 8 trials completed" in top
    assert "automl validate" in top  # not yet validated: the caveat says how to check


def test_the_report_reads_the_reports_of_the_curves_it_draws_alone(study, monkeypatch):
    # `automl report` reads the study without its reports (a 10,000-trial study holds 200,000)
    from automl.results import reporting
    from automl.study import read_once

    summary = read_once(open_study("rep", None, create=False), intermediate=False)
    assert all(not t.intermediate_values for t in summary.trials)
    curves = dict(figures(summary))["Learning curves (fitness per epoch; pruned trials included)"]
    assert sorted(tuple(c.y) for c in curves.data) == sorted(
        tuple(t.intermediate_values.values()) for t in study.trials if t.intermediate_values)
    monkeypatch.setattr(reporting, "CURVES", 2)
    part = dict(figures(summary))["Learning curves (fitness per epoch; pruned trials included; "
                                  "best 2 of 8 trials)"]
    # the best two, and the plain training to measure them against
    assert [tuple(c.y) for c in part.data] == [tuple(t.intermediate_values.values())
                                               for t in (study.trials[0], *study.trials[4:6])]


def test_report_via_cli_is_self_contained(in_tmp, study):
    result = run_cli("report", "--study", "rep", cwd=in_tmp)
    assert result.returncode == 0, result.stderr
    page = (in_tmp / "studies" / "rep" / "report.html").read_text()
    assert page.count("<script src=") == 0  # nothing fetched: plotly.js is inline
    for title in SECTIONS + ["Promotion of trial #5", "Inference thresholds of trial #5"]:
        assert title in page
    assert "runs/x/best.pt" in page and "0.68" in page


@pytest.mark.integration  # a real browser process
def test_what_a_person_sees_in_headless_chromium(in_tmp, study):
    page = write_report(study, in_tmp / "report.html")
    with Browser() as browser:
        seen = browser.open(page.as_uri()).seen()
        tables = browser.html_tables()  # the answer, the promotion and its thresholds
        shot = browser.screenshot(in_tmp / "report.png")
        errors = browser.errors
    assert errors == []
    assert len(seen) == len(SECTIONS)
    for figure in seen:  # every figure has something drawn: points, lines, bars or table rows
        assert figure["traces"] and (figure["drawn"] or figure["tables"]), figure
        for table in figure["tables"]:  # and every row of its tables inside the visible area
            assert table["shown"] == table["rows"] > 0, figure
    assert len(tables) == 3 and all(t["shown"] == t["rows"] > 0 for t in tables), tables
    assert shot.stat().st_size > 20_000  # a page with drawn figures, not a blank one


def test_a_large_study_draws_its_curves_and_per_trial_plots_in_part(study, monkeypatch):
    # 10,000 curves are a wall of ink and take minutes to lay out: the best few (and the plain
    # training), and an even spread for the per-trial plots; the history keeps every trial
    from automl.results import reporting

    monkeypatch.setattr(reporting, "CURVES", 3)
    monkeypatch.setattr(reporting, "PER_TRIAL", 4)
    got = dict(figures(study))
    curves = got["Learning curves (fitness per epoch; pruned trials included; best 3 of 8 trials)"]
    assert len(curves.data) == 4  # the three best COMPLETE trials and the plain training
    assert "Parallel coordinates; evenly spaced 4 of 8 trials" in got
    history = got["Optimization history (pruned trials at the fitness they had when stopped)"]
    assert len(history.data[0].x) == 6  # every COMPLETE trial


def test_a_validated_study_says_so_at_the_top(in_tmp, study):
    from automl.results.validation import Row, judge
    from automl.study import VALIDATION_ATTR

    rows = [Row(number=n, baseline=n == 0, mini=study.trials[n].value,
                full={0: 0.1 + 0.05 * n, 1: 0.12 + 0.05 * n}) for n in (0, 3, 4, 5)]
    study.set_user_attr(VALIDATION_ATTR, judge(rows).as_dict())
    page = write_report(study, in_tmp / "report.html").read_text()
    top = page[page.index("<h2>The answer</h2>"):page.index("<h2>Optimization history")]
    assert "<h3>On the full data (automl validate)</h3>" in top
    assert "full winner #5" in top and "Spearman 1" in top
    assert "Not yet checked on the full data" not in top
    assert "Mini against full data (automl validate)" in page  # and its figure below


def test_a_study_of_few_trials_reports_without_optunas_warnings(in_tmp, recwarn):
    s = open_study("few", None)
    check_config(s, StudyConfig.from_dict({"fitness": "v5", "space": "lr_momentum"}))
    dists = load_space("lr_momentum").distributions()
    for i in range(1):
        s.add_trial(optuna.trial.create_trial(
            params={"lr0": 0.001 * (i + 1), "lrf": 0.1, "momentum": 0.9}, distributions=dists,
            value=0.1 * i, intermediate_values={1: 0.1 * i}, user_attrs={"map50_95": 0.1 * i}))
    got = dict(figures(s))
    assert "Parameter importances; only 1 COMPLETE trial: a rough ranking, not a measurement" in got
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)], [
        str(w.message) for w in recwarn]
