"""The operating point on constructed detections: the metric's syntax, the counts at one conf or
one per class, the choice for F1 and for a floor, per-class confs, and the held-out folds."""

from __future__ import annotations

import numpy as np
import pytest

from automl.errors import ConfigError
from automl.results import operating_point as op

CONFS = (0.1, 0.3, 0.5, 0.7, 0.9)


def matched(dets, gts, n_images, n_classes=2) -> op.Matched:
    """Detections as (image, class, conf, right) rows and labels as (image, class) rows."""
    d = np.array(dets, dtype=float).reshape(-1, 4)
    g = np.array(gts, dtype=int).reshape(-1, 2)
    return op.Matched(det_img=d[:, 0].astype(int), det_cls=d[:, 1].astype(int), det_conf=d[:, 2],
                   det_tp=d[:, 3].astype(bool), gt_img=g[:, 0], gt_cls=g[:, 1],
                   n_images=n_images, n_classes=n_classes)


@pytest.mark.parametrize(("text", "spec", "kind", "floor"), [
    ("f1", "f1", "f1", None), ("F1", "f1", "f1", None),
    ("precision@recall=0.9", "precision@recall=0.9", "precision", 0.9),
    ("recall @ precision = 0.95", "recall@precision=0.95", "recall", 0.95),
    ("fitness", "fitness", "ranking", None), ("map75", "map75", "ranking", None),
    ("0.5*map75+0.5*map50", "0.5*map75+0.5*map50", "ranking", None),
])
def test_metric_names_what_the_model_is_for(text, spec, kind, floor):
    metric = op.parse_metric(text)
    assert (metric.spec, metric.kind, metric.floor) == (spec, kind, floor)
    assert metric.operating == (kind != "ranking")


@pytest.mark.parametrize("text", ["precision@recall=1.5", "precision@recall=0", "recall@recall=0.9",
                                  "precision@recall=high", "precision@0.9", "map90"])
def test_a_bad_metric_names_the_flag_and_the_fix(text):
    with pytest.raises(ConfigError) as e:
        op.parse_metric(text)
    assert str(e.value).startswith(f"--metric {text}")
    assert "\n" not in str(e.value)


def test_counts_follow_one_conf_or_one_per_class_and_the_images():
    m = matched([(0, 0, 0.9, 1), (0, 0, 0.4, 0), (1, 0, 0.6, 1), (1, 1, 0.8, 0), (1, 1, 0.2, 1)],
                [(0, 0), (1, 0), (1, 1), (1, 1)], n_images=2)
    tp, fp, n_gt = m.counts(0.5)
    assert tp.tolist() == [2, 0] and fp.tolist() == [0, 1] and n_gt.tolist() == [2, 2]
    tp, fp, _ = m.counts(np.array([0.5, 0.1]))  # class 1 down to 0.1: its 0.2 box counts
    assert tp.tolist() == [2, 1] and fp.tolist() == [0, 1]
    tp, fp, n_gt = m.counts(0.3, images=np.array([True, False]))
    assert tp.tolist() == [1, 0] and fp.tolist() == [1, 0] and n_gt.tolist() == [1, 0]
    assert m.counts(0.95)[0].sum() == 0  # strictly above: a box at 0.9 is gone at 0.9 too
    assert m.counts(0.9)[0].sum() == 0


def test_matched_from_validator_stats_takes_images_without_detections():
    stats = {"tp": [np.array([[True] * 10, [False] * 10]), np.zeros(0)],
             "conf": [np.array([0.9, 0.4]), np.zeros(0)], "pred_cls": [np.array([0, 1]), np.zeros(0)],
             "target_cls": [np.array([0]), np.array([1, 1])]}
    m = op.Matched.from_stats(stats, n_classes=2)
    assert m.det_tp.tolist() == [True, False] and m.gt_img.tolist() == [0, 1, 1]
    tp, fp, n_gt = m.counts(0.1)
    assert tp.tolist() == [1, 0] and fp.tolist() == [0, 1] and n_gt.tolist() == [1, 2]


def test_rates_average_over_the_labelled_classes_and_count_a_silent_class_as_zero():
    r = op.Rates(tp=np.array([3, 0, 0]), fp=np.array([1, 0, 2]), n_gt=np.array([4, 2, 0]))
    assert r.precision.tolist() == [0.75, 0.0, 0.0] and r.recall.tolist() == [0.75, 0.0, 0.0]
    s = r.summary()  # class 2 has no labels: left out of the means, though it shows 2 boxes
    assert s == pytest.approx({"precision": 0.375, "recall": 0.375, "f1": 0.375})
    assert np.isnan(op.Rates(np.zeros(2), np.zeros(2), np.zeros(2)).summary()["f1"])


def two_class_model() -> op.Matched:
    """Class 0 is right above 0.5 with a false alarm at 0.35; class 1 is right only at 0.2-0.45
    and wrong at 0.6: F1 wants conf 0.5 for class 0 and 0.1 for class 1."""
    dets = [(0, 0, 0.95, 1), (1, 0, 0.8, 1), (2, 0, 0.6, 1), (3, 0, 0.35, 0),
            (0, 1, 0.45, 1), (1, 1, 0.4, 1), (2, 1, 0.2, 1), (3, 1, 0.6, 0)]
    gts = [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    return matched(dets, gts, n_images=4)


def test_f1_picks_a_usable_conf_and_per_class_confs_beat_one():
    m = two_class_model()
    iou, conf, met = op.best_global(op.parse_metric("f1"), {0.7: m}, CONFS)
    assert (iou, conf, met) == (0.7, 0.1, True)  # one conf must keep class 1's 0.2 boxes
    per, ok = op.best_per_class(op.parse_metric("f1"), m, CONFS, fallback=conf)
    assert per.tolist() == [0.5, 0.1] and ok.all()
    assert op.Rates(*m.counts(per)).mean("f1") > op.Rates(*m.counts(conf)).mean("f1")


def test_a_floor_is_met_where_it_can_be_and_the_closest_miss_is_said():
    m = two_class_model()
    # precision at recall >= 1: every label found only at 0.1; precision there is 3/4 and 3/4
    assert op.best_global(op.parse_metric("precision@recall=1"), {0.7: m}, CONFS) == (0.7, 0.1, True)
    # recall at precision >= 1: class 1's false alarm at 0.6 sits above its right boxes, so no
    # conf reaches mean precision 1; the closest is 0.1 (mean precision 0.75)
    iou, conf, met = op.best_global(op.parse_metric("recall@precision=1"), {0.7: m}, CONFS)
    assert not met and conf == 0.1
    per, ok = op.best_per_class(op.parse_metric("recall@precision=1"), m, CONFS, fallback=conf)
    assert per.tolist() == [0.5, 0.1]  # class 0 meets it at 0.5 with all its labels found
    assert ok.tolist() == [True, False]


def test_a_class_never_right_shows_the_fewest_boxes():
    # class 1's boxes are all wrong: F1 0 at every conf; the highest conf shows fewest of them
    m = matched([(0, 0, 0.9, 1), (0, 1, 0.95, 0), (0, 1, 0.6, 0), (0, 1, 0.2, 0)],
                [(0, 0), (0, 1)], n_images=1)
    per, ok = op.best_per_class(op.parse_metric("f1"), m, CONFS, fallback=0.1)
    assert per.tolist() == [0.7, 0.9] and ok.all()  # class 0: F1 1 from 0.1 to 0.7, the highest


def test_the_better_iou_wins_and_a_class_without_labels_keeps_the_global_conf():
    good, bad = two_class_model(), matched([(0, 0, 0.9, 0)], [(0, 0), (1, 0)], n_images=4)
    assert op.best_global(op.parse_metric("f1"), {0.5: bad, 0.7: good}, CONFS)[0] == 0.7
    only_0 = matched([(0, 0, 0.9, 1), (0, 1, 0.9, 0)], [(0, 0)], n_images=1)
    per, _ = op.best_per_class(op.parse_metric("f1"), only_0, CONFS, fallback=0.3)
    assert per[1] == 0.3


def test_folds_are_seeded_and_even():
    a, b = op.folds(23, 5, seed=0), op.folds(23, 5, seed=0)
    assert (a == b).all() and not (a == op.folds(23, 5, seed=1)).all()
    assert sorted(np.bincount(a).tolist()) == [4, 4, 5, 5, 5]


@pytest.mark.parametrize(("k", "n", "expected"), [
    (1, 10, "--folds 1: must be at least 2"),
    (5, 3, "--folds 5: the val split has 3 image(s); use --folds 3 or fewer"),
])
def test_too_few_images_for_the_folds_is_refused(k, n, expected):
    with pytest.raises(ConfigError, match="^" + expected.replace("(", r"\(").replace(")", r"\)")):
        op.check_folds(k, n, "val")


def test_held_out_measures_each_image_once_with_thresholds_that_never_saw_it():
    rng = np.random.default_rng(0)
    # 40 images; class 0 right above 0.5 and wrong below, class 1 the other way round, so a
    # choice made on any 4/5 of them is the same; then held out == in-sample exactly
    dets, gts = [], []
    for i in range(40):
        gts += [(i, 0), (i, 1)]
        dets += [(i, 0, rng.uniform(0.55, 0.99), 1), (i, 0, rng.uniform(0.05, 0.45), 0),
                 (i, 1, rng.uniform(0.15, 0.45), 1), (i, 1, rng.uniform(0.05, 0.09), 0)]
    m = matched(dets, gts, n_images=40)
    out = op.held_out(op.parse_metric("f1"), {0.6: m}, CONFS, k=5, seed=0, per_class=True)
    assert out.global_rates.n_gt.tolist() == [40, 40]  # every label measured once
    assert out.per_class_rates.summary()["f1"] == pytest.approx(1.0)
    assert out.global_rates.summary()["f1"] < 1.0  # one conf cannot serve both classes
    assert len(out.picks) == 5


def test_held_out_is_below_in_sample_when_the_choice_fits_noise():
    # the one right box per image scores at random; a choice on 4 images fits their scores
    rng = np.random.default_rng(1)
    dets, gts = [], []
    for i in range(10):
        gts.append((i, 0))
        dets += [(i, 0, rng.uniform(0.05, 0.95), 1), (i, 0, rng.uniform(0.05, 0.95), 0)]
    m = matched(dets, gts, n_images=10, n_classes=1)
    metric = op.parse_metric("f1")
    _, conf, _ = op.best_global(metric, {0.6: m}, np.linspace(0.05, 0.95, 19))
    in_sample = op.Rates(*m.counts(conf)).mean("f1")
    out = op.held_out(metric, {0.6: m}, np.linspace(0.05, 0.95, 19), k=5, seed=0, per_class=False)
    assert out.global_rates.mean("f1") <= in_sample
