"""Confusion-matrix metrics against matrices worked out by hand, and the evaluation tallies that
pair predictions with labels by stamp."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from seg_perception.core.classes import CAMVID, IGNORE_LABEL, ClassSet
from seg_perception.core.metrics import ConfusionMatrix
from seg_perception.evaluation.config import choose_overlays
from seg_perception.evaluation.tally import Tally, build_metrics, percentile_summary, summary_line

I = IGNORE_LABEL  # noqa: E741 - reads like the 'ignore' it is in the arrays below


def test_hand_computed_three_classes():
    label = np.array([[0, 0, 1], [1, 2, I]], np.uint8)
    pred = np.array([[0, 1, 1], [2, 2, 0]], np.uint8)
    cm = ConfusionMatrix(3)
    cm.update(pred, label)
    # (true, pred) pairs: (0,0) (0,1) (1,1) (1,2) (2,2); the 255 pixel is not scored.
    assert cm.mat.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert cm.scored_pixels == 5
    # IoU = TP / (row + column - TP): 1/(2+1-1), 1/(2+2-1), 1/(1+2-1)
    np.testing.assert_allclose(cm.iou(), [1 / 2, 1 / 3, 1 / 2])
    assert cm.miou() == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)
    assert cm.pixel_accuracy() == pytest.approx(3 / 5)


def test_out_of_range_prediction_is_a_miss_credited_to_no_class():
    cm = ConfusionMatrix(3)
    cm.update(np.array([7, 1, 1], np.uint8), np.array([0, 1, 1], np.uint8))
    assert cm.mat.tolist() == [[0, 0, 0], [0, 2, 0], [0, 0, 0]]
    iou = cm.iou()
    assert iou[0] == 0.0 and iou[1] == 1.0 and math.isnan(iou[2])  # class 2 absent: NaN
    assert cm.miou() == pytest.approx(0.5)  # mean over classes that occur
    assert cm.pixel_accuracy() == pytest.approx(2 / 3)


def test_labels_outside_the_classes_are_not_scored():
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 1, 0, 1], np.uint8), np.array([0, 11, I, 1], np.uint8))
    assert cm.mat.tolist() == [[1, 0], [0, 1]]
    assert cm.scored_pixels == 2
    assert cm.out_of_range == 1  # 11: neither a class nor the ignore id, counted
    both = ConfusionMatrix(2, (I, 11))  # a class set whose own void is 11: ignored, not counted
    both.update(np.array([0, 1, 0, 1], np.uint8), np.array([0, 11, I, 1], np.uint8))
    assert both.scored_pixels == 2 and both.out_of_range == 0


def test_16_bit_label_ids_do_not_wrap_into_classes(tmp_path):
    """uint16 ids (Cityscapes-style) were cast to uint8 first: 257 became class 1."""
    import cv2

    from seg_perception.datasets.camvid import read_label

    p = tmp_path / "l.png"
    cv2.imwrite(str(p), np.array([[0, 257, 267, 10, 300]], np.uint16))
    assert read_label(p, CAMVID).tolist() == [[0, I, I, 10, I]]


def test_an_ignore_id_inside_the_classes_is_refused():
    with pytest.raises(ValueError, match="ignore_id 0 must lie outside the 2 class ids"):
        ClassSet(names=("a", "b"), palette=((0, 0, 0), (1, 1, 1)), ignore_id=0)


def test_pooled_over_pixels_not_averaged_over_frames():
    """Frame A: 100 pixels of class 0, all right. Frame B: one class-1 pixel called 0.
    Pooled: IoU0 = 100/101, IoU1 = 0 -> mIoU 0.495; a per-frame mean would say 0.5."""
    cm = ConfusionMatrix(2)
    cm.update(np.zeros(100, np.uint8), np.zeros(100, np.uint8))
    cm.update(np.zeros(1, np.uint8), np.ones(1, np.uint8))
    assert cm.mat.tolist() == [[100, 0], [1, 0]]
    assert cm.miou() == pytest.approx((100 / 101 + 0) / 2)
    other = ConfusionMatrix(2)
    other.update(np.ones(3, np.uint8), np.ones(3, np.uint8))
    cm.merge(other)
    assert cm.mat.tolist() == [[100, 0], [1, 3]]


def test_empty_matrix_and_shape_mismatch():
    cm = ConfusionMatrix(4)
    assert math.isnan(cm.miou()) and math.isnan(cm.pixel_accuracy())
    cm.update(np.full((2, 2), 3, np.uint8), np.full((2, 2), I, np.uint8))  # all ignored
    assert cm.scored_pixels == 0
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8))


def test_percentiles():
    s = percentile_summary([float(v) for v in range(1, 101)])
    assert s["p50"] == pytest.approx(50.5) and s["max"] == 100.0
    assert s["p95"] == pytest.approx(95.05) and s["p99"] == pytest.approx(99.01)
    assert s["n"] == 100
    assert percentile_summary([]) == {"p50": None, "p95": None, "p99": None, "max": None,
                                      "mean": None, "n": 0}


TWO = ClassSet(names=("a", "b"), palette=((0, 0, 0), (255, 255, 255)))


def test_tally_pairs_by_stamp_in_either_order():
    t = Tally(TWO)
    lab = np.array([[0, 1]], np.uint8)
    t.add_image(10)
    t.add_label(10, lab)  # label first
    t.add_prediction(10, np.array([[0, 0]], np.uint8), 5.0)
    t.add_image(20)
    t.add_prediction(20, np.array([[0, 1]], np.uint8), 7.0)  # prediction first
    t.add_label(20, lab)
    t.add_label(30, lab)  # no image with this stamp
    t.add_image(40)  # no label, no prediction: dropped
    assert t.scored == 2
    assert t.cm.mat.tolist() == [[2, 0], [1, 1]]
    assert t.counts() == {"labels_without_image": 1, "images_without_label": 1, "dropped": 1,
                          "evicted": 0}
    m = build_metrics(t, mode="offline", bag=None, bag_path=Path("b"), backend="x",
                      precision="fp32", model=Path("m.onnx"), fps=None, complete=True, error=None)
    assert m["frames"] == 3 and m["frames_scored"] == 2 and m["dropped"] == 1
    assert m["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["latency_ms"]["max"] == 7.0
    json.dumps(m, allow_nan=False)  # strict JSON: no NaN anywhere


def test_tally_live_latency_and_unexpected_masks():
    t = Tally(TWO)
    t.add_image(1)
    t.published(1, 100.0)
    t.received(1, np.zeros((1, 2), np.uint8), 100.025)
    t.received(1, np.zeros((1, 2), np.uint8), 100.03)  # a second mask for the same stamp
    t.received(99, np.zeros((1, 2), np.uint8), 100.04)  # never published
    assert t.latencies_ms == [pytest.approx(25.0)]
    assert t.unexpected_masks == 2
    assert t.output_fps() is None  # one mask: no rate yet
    for i, stamp in enumerate((2, 3, 4)):
        t.add_image(stamp)
        t.published(stamp, 100.1 + 0.1 * i)
        t.received(stamp, np.zeros((1, 2), np.uint8), 100.125 + 0.1 * i)
    assert t.output_fps() == pytest.approx(3 / 0.3)  # 4 masks 0.1 s apart: 10 per second


def test_a_repeated_stamp_is_not_scored_against_the_wrong_label():
    """Live: two frames share a stamp; their labels differ. Pairing by stamp cannot tell the
    masks apart, nor which publish timed them: neither is scored or timed, and it is said."""
    t = Tally(TWO)
    zeros, ones = np.zeros((1, 2), np.uint8), np.ones((1, 2), np.uint8)
    t.add_image(5)
    t.published(5, 10.0)
    t.add_label(5, zeros)
    t.add_image(5)  # the camera repeated the stamp before the first mask came back
    t.published(5, 10.033)
    t.add_label(5, ones)
    t.received(5, zeros, 10.05)
    t.received(5, ones, 10.08)
    assert t.scored == 0 and t.latencies_ms == [] and t.cm.scored_pixels == 0
    m = build_metrics(t, mode="live", bag=None, bag_path=Path("b"), backend="x",
                      precision="fp32", model=Path("m"), fps=None, complete=True, error=None)
    assert m["duplicate_image_stamps"] == 1 and m["duplicate_label_stamps"] == 1
    assert m["unscored_repeated_stamps"] == 1 and m["dropped"] == 0
    assert "1 stamps repeated" in summary_line(m)
    # Offline, a pair completed before the repeat stays scored; the repeat is not.
    t = Tally(TWO)
    t.add_image(7)
    t.add_prediction(7, zeros, 1.0)
    t.add_label(7, zeros)
    t.add_image(7)
    t.add_prediction(7, ones, 1.0)
    t.add_label(7, zeros)
    assert t.scored == 1 and t.cm.mat.tolist() == [[2, 0], [0, 0]]
    assert t.latencies_ms == [1.0, 1.0]  # unscored, still timed: offline fps counts it


def test_pairs_let_go_from_the_pending_buffer_are_reported():
    """Labels written far from their images (here all labels after all images): the first
    predictions are let go unscored once more than PENDING_LIMIT wait, and that is counted."""
    from seg_perception.evaluation.tally import PENDING_LIMIT

    t = Tally(TWO)
    n = PENDING_LIMIT + 10
    for s in range(n):
        t.add_image(s)
        t.add_prediction(s, np.zeros((1, 2), np.uint8), 1.0)
    for s in range(n):
        t.add_label(s, np.zeros((1, 2), np.uint8))
    assert t.scored == PENDING_LIMIT
    m = build_metrics(t, mode="offline", bag=None, bag_path=Path("b"), backend="x",
                      precision="fp32", model=Path("m"), fps=None, complete=True, error=None)
    assert m["unscored_evicted"] == 10 and m["frames_scored"] == PENDING_LIMIT
    assert m["dropped"] == 0 and m["images_without_label"] == 0
    assert f"10 frames not scored: their label was more than {PENDING_LIMIT}" in summary_line(m)


def test_masks_after_the_grace_are_late_and_their_frames_dropped():
    t = Tally(TWO)
    for s in (1, 2):
        t.add_image(s)
        t.published(s, float(s))
    t.received(1, np.zeros((1, 2), np.uint8), 1.02)
    t.stop_receiving()
    t.received(2, np.zeros((1, 2), np.uint8), 9.0)
    assert t.late_masks == 1 and t.counts()["dropped"] == 1 and t.latencies_ms == [
        pytest.approx(20.0)]


def test_metrics_absent_class_is_null_not_nan():
    t = Tally(CAMVID)
    t.add_image(1)
    t.add_label(1, np.zeros((2, 2), np.uint8))
    t.add_prediction(1, np.zeros((2, 2), np.uint8), 1.0)
    m = build_metrics(t, mode="offline", bag=None, bag_path=Path("b"), backend="x",
                      precision="fp32", model=Path("m"), fps=1.0, complete=True, error=None)
    assert m["per_class_iou"]["Sky"] == 1.0 and m["per_class_iou"]["Car"] is None
    assert m["miou"] == 1.0
    json.dumps(m, allow_nan=False)


def test_overlay_choice_spreads_over_the_bag():
    assert choose_overlays(10, 4) == {0, 3, 6, 9}
    assert choose_overlays(2, 4) == {0, 1}
    assert choose_overlays(0, 4) == set() and choose_overlays(5, 0) == set()
