"""F1, precision and recall against the confidence threshold: the curves, and the plots val and training write."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from yolorep.datasets.targets import ImageRecord
from yolorep.evaluation import CONFIDENCE_CURVES, Detections, MetricsEvaluator


def _record(boxes, classes, index: int = 0) -> ImageRecord:
    boxes_xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    return ImageRecord(f"img{index}.jpg", index, (100, 100), boxes_xyxy, np.array(classes, np.int64))


def _evaluated(save_dir=None) -> MetricsEvaluator:
    """Class 0: one object found at score 0.9, plus a false box at 0.3. Class 1: one object found at 0.6."""
    evaluator = MetricsEvaluator(["cat", "dog"], save_dir)
    record = _record([[10, 10, 40, 40], [50, 50, 90, 90]], [0, 1])
    found = Detections(
        torch.tensor([[10.0, 10, 40, 40], [60, 0, 99, 30], [50, 50, 90, 90]]),
        torch.tensor([0.9, 0.3, 0.6]),
        torch.tensor([0, 0, 1]),
    )
    evaluator.process(record, found)
    return evaluator


def test_curves_against_confidence():
    evaluator = _evaluated()
    figures = evaluator.evaluate()
    curves = evaluator.metrics.pr_curve()
    at = {c: int(np.searchsorted(curves["conf"], c)) for c in (0.1, 0.45, 0.6, 0.7, 0.95)}
    cat, dog = 0, 1
    # between the ranked scores the curves are interpolated, as ultralytics' are
    assert curves["p"][cat, at[0.1]] == pytest.approx(0.5)  # the true and the false box both kept
    assert curves["p"][cat, at[0.6]] == pytest.approx(0.75, abs=2e-3)  # half-way from 0.3 (P 0.5) to 0.9 (P 1)
    assert curves["p"][cat, at[0.95]] == 1 and curves["r"][cat, at[0.95]] == 0  # nothing kept
    assert curves["r"][cat, at[0.45]] == pytest.approx(1.0) and curves["r"][dog, at[0.7]] == 0
    assert curves["f1"][dog, at[0.45]] == pytest.approx(1.0)
    expected_f1 = 2 * curves["p"] * curves["r"] / (curves["p"] + curves["r"] + 1e-16)
    assert np.allclose(curves["f1"], expected_f1)
    # P and R are read where the smoothed mean F1 peaks (near 0.6: dog perfect, cat's precision rising)
    best = int(np.argmax(curves["f1_mean"]))
    assert 0.4 < curves["conf"][best] < 0.65
    assert evaluator.metrics.compute()["conf"] == pytest.approx(curves["conf"][best])
    assert figures["precision"] == pytest.approx(curves["p"][:, best].mean())
    assert figures["recall"] == pytest.approx(curves["r"][:, best].mean())


def test_no_ground_truth_gives_flat_curves(tmp_path):
    evaluator = MetricsEvaluator(["cat"], tmp_path)
    evaluator.process(_record([], []), Detections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long)))
    evaluator.evaluate()
    assert not evaluator.metrics.pr_curve()["f1_mean"].any()
    assert all((tmp_path / name).is_file() for name in CONFIDENCE_CURVES.values())


def test_evaluator_writes_the_f1_p_and_r_plots(tmp_path):
    _evaluated(tmp_path).evaluate()
    assert sorted(CONFIDENCE_CURVES.values()) == ["F1_curve.png", "P_curve.png", "R_curve.png"]
    for name in CONFIDENCE_CURVES.values():
        image = cv2.imread(str(tmp_path / name))
        assert image is not None and image.shape[:2] == (900, 1350)  # 9 x 6 inches at 150 dpi
        assert (image < 128).any(axis=2).mean() > 0.01  # lines and text drawn, not a blank page


def test_training_writes_them_at_the_end(trained_tiny):
    for name in ("pr_curve.png", *CONFIDENCE_CURVES.values()):
        assert cv2.imread(str(trained_tiny / name)) is not None, name
