from __future__ import annotations

import math

import pytest

from automl.errors import FitnessError
from automl.fitness import CLS_METRICS, METRICS, PRESETS, TASK_METRICS, f1_score, parse_fitness

M = {"precision": 0.8, "recall": 0.6, "map50": 0.7, "map75": 0.5, "map50_95": 0.45, "f1": 0.0}


def test_default_is_yolov5_fitness():
    fit = parse_fitness(None)
    assert fit(M) == pytest.approx(0.1 * 0.7 + 0.9 * 0.45)
    assert parse_fitness("v5")(M) == fit(M)


@pytest.mark.parametrize(("spec", "expected"), [
    ("map50_95", 0.45), ("map50", 0.7), ("map75", 0.5), ("mAP50-95", 0.45), ("mAP@0.5", 0.7),
    ("0.2*map50+0.8*map75", 0.2 * 0.7 + 0.8 * 0.5),
    ("0.5 * mAP50 + 0.5 * map50-95", 0.5 * 0.7 + 0.5 * 0.45),
    ("map50 + map75", 1.2),
    ("1e-1*map50+0.9*map50_95", 0.1 * 0.7 + 0.9 * 0.45),
])
def test_presets_aliases_and_sums(spec, expected):
    assert parse_fitness(spec)(M) == pytest.approx(expected)


def test_f1_preset_uses_the_f1_metric():
    m = dict(M, f1=f1_score(0.8, 0.6))
    assert parse_fitness("f1")(m) == pytest.approx(2 * 0.8 * 0.6 / 1.4)
    assert f1_score(0.0, 0.0) == 0.0


def test_every_preset_parses_to_known_metrics():
    for name in PRESETS:
        known = {*METRICS, *(m for names in TASK_METRICS.values() for m in names), *CLS_METRICS}
        assert {m for m, _ in parse_fitness(name).weights} <= known


@pytest.mark.parametrize(("spec", "match"), [
    ("0.2*map90", "unknown metric 'map90'"),
    ("__import__('os').system('x')", "cannot read the term"),
    ("0.5*map50*2", "cannot read the term"),
    ("0*map50", "at least one weight must be > 0"),
    ("map50 +", "cannot read the term ''"),
])
def test_bad_expressions(spec, match):
    with pytest.raises(FitnessError, match=match):
        parse_fitness(spec)


def test_missing_or_nan_metric_gives_nan():
    assert math.isnan(parse_fitness("map75")({"map50": 0.5}))
    assert math.isnan(parse_fitness("map50")({"map50": float("nan")}))
