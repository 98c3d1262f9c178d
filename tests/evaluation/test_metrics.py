from __future__ import annotations

import numpy as np
import pytest
import torch

from yolorep.errors import DatasetError
from yolorep.evaluation.metrics import ConfusionMatrix, DetectionMetrics, match_detections

NAMES = ["cat", "dog", "bird"]


def _gt(seed: int = 0, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 400, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(10, 100, (n, 2))], axis=1), rng.integers(0, len(NAMES), n)


@pytest.mark.parametrize("random_scores", [False, True])
def test_ground_truth_as_predictions_is_perfect(random_scores: bool) -> None:
    metrics = DetectionMetrics(NAMES)
    rng = np.random.default_rng(1)
    for seed in range(5):
        boxes, classes = _gt(seed)
        scores = rng.random(len(boxes)) if random_scores else np.ones(len(boxes))
        metrics.update(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), boxes, classes)
    result = metrics.compute()
    assert result["map50_95"] == pytest.approx(1.0)
    assert result["map50"] == pytest.approx(1.0) and result["map75"] == pytest.approx(1.0)
    assert result["precision"] == pytest.approx(1.0) and result["recall"] == pytest.approx(1.0)
    assert {pc["name"] for pc in result["per_class"]} <= set(NAMES)
    assert sum(pc["instances"] for pc in result["per_class"]) == 30


def test_no_detections_and_no_ground_truth() -> None:
    metrics = DetectionMetrics(NAMES)
    boxes, classes = _gt()
    metrics.update(np.zeros((0, 4)), [], [], boxes, classes)
    assert metrics.compute()["map50_95"] == 0.0
    empty = DetectionMetrics(NAMES)
    empty.update(boxes, np.ones(len(boxes)), classes, np.zeros((0, 4)), [])
    assert empty.compute() | {"per_class": None} == {
        "precision": 0.0, "recall": 0.0, "conf": 0.0, "map50": 0.0, "map75": 0.0, "map50_95": 0.0, "per_class": None,
    }  # fmt: skip


def test_classes_without_ground_truth_are_left_out_of_the_mean() -> None:
    metrics = DetectionMetrics(NAMES)
    box = np.array([[0.0, 0.0, 10.0, 10.0]])
    # A perfect "cat" and a stray "bird" far away: bird has no ground truth, so it does not count.
    metrics.update(np.array([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]]), [0.9, 0.95], [0, 2], box, [0])
    result = metrics.compute()
    assert result["map50_95"] == pytest.approx(1.0)
    assert [pc["class"] for pc in result["per_class"]] == [0]


def test_detection_on_crowd_is_ignored_not_false_positive() -> None:
    gt = np.array([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 300.0, 300.0]])
    preds = np.array([[0.0, 0.0, 10.0, 10.0], [120.0, 120.0, 160.0, 160.0]])
    with_crowd, without_crowd = DetectionMetrics(NAMES), DetectionMetrics(NAMES)
    # The small detection inside the crowd scores higher, so as a FP it would halve precision at recall 1.
    with_crowd.update(preds, [0.5, 0.9], [0, 0], gt, [0, 0], gt_crowd=[False, True])
    without_crowd.update(preds[:1], [0.5], [0], gt[:1], [0])
    without_crowd.update(preds[1:], [0.9], [0], np.zeros((0, 4)), [])
    assert with_crowd.compute()["map50_95"] == pytest.approx(1.0)
    assert with_crowd.compute()["per_class"][0]["instances"] == 1
    assert without_crowd.compute()["map50_95"] == pytest.approx(0.5, abs=0.01)


def test_max_det_keeps_top_detections_per_image_and_class() -> None:
    gt = np.array([[0.0, 0.0, 10.0, 10.0]])
    far = np.tile([[500.0, 500.0, 510.0, 510.0]], (100, 1))
    preds = np.concatenate([far, gt])
    scores = np.r_[np.full(100, 0.9), 0.1]  # the true positive ranks 101st
    for max_det, expected in ((100, 0.0), (101, 1 / 101)):
        metrics = DetectionMetrics(NAMES, max_det=max_det)
        metrics.update(preds, scores, np.zeros(101), gt, [0])
        assert metrics.compute()["map50"] == pytest.approx(expected, abs=1e-3)


def test_match_prefers_highest_iou_and_uses_each_ground_truth_once() -> None:
    ious = np.array([[0.6, 0.8], [0.7, 0.9]])  # two detections, both best on ground truth 1
    matched, ignored = match_detections(ious, np.array([False, False]), np.array([0.5, 0.65, 0.75]))
    assert matched.tolist() == [[True, True], [True, True], [True, False]]
    assert not ignored.any()


def test_update_checks_inputs() -> None:
    metrics = DetectionMetrics(NAMES)
    with pytest.raises(ValueError, match="one score and one class per box"):
        metrics.update(np.zeros((2, 4)), [0.5], [0, 1], np.zeros((0, 4)), [])
    with pytest.raises(DatasetError, match="ground truth class 5"):
        metrics.update(np.zeros((0, 4)), [], [], np.zeros((1, 4)), [5])


def test_format_table_lists_all_first() -> None:
    metrics = DetectionMetrics(NAMES)
    boxes, classes = _gt()
    metrics.update(boxes, np.ones(len(boxes)), classes, boxes, classes)
    lines = metrics.format_table().splitlines()
    assert lines[0].split() == ["Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95"]
    assert lines[1].split()[:3] == ["all", "1", "6"]
    assert len(lines) == 2 + len(np.unique(classes))


def test_confusion_matrix_counts() -> None:
    cm = ConfusionMatrix(nc=3)
    gt = np.array([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [50.0, 50.0, 60.0, 60.0]])
    preds = np.array([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 31.0], [90.0, 90.0, 99.0, 99.0], gt[2]])
    # correct cat, dog predicted as bird, a stray dog, and a low-score box that is dropped (so gt 2 is missed)
    cm.update(preds, [0.9, 0.8, 0.7, 0.1], [0, 2, 1, 2], gt, [0, 1, 2])
    expected = np.zeros((4, 4), dtype=int)
    expected[0, 0] = expected[2, 1] = expected[1, 3] = expected[3, 2] = 1
    np.testing.assert_array_equal(cm.matrix, expected)
