from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from yolorep.evaluation.metrics import ConfusionMatrix, DetectionMetrics
from yolorep.plots import draw_boxes, plot_confusion_matrix, plot_pr_curve, plot_results_csv, save_side_by_side

NAMES = ["cat", "dog", "bird"]
PNG_SIGNATURE = b"\x89PNG"


def _gt(seed: int = 0, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 400, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(10, 100, (n, 2))], axis=1), rng.integers(0, len(NAMES), n)


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:4] == PNG_SIGNATURE


def test_plots_write_png_files(tmp_path: Path) -> None:
    metrics, cm = DetectionMetrics(NAMES), ConfusionMatrix(len(NAMES))
    for seed in range(3):
        boxes, classes = _gt(seed)
        noisy = boxes + np.random.default_rng(seed).normal(0, 3, boxes.shape)
        metrics.update(noisy, np.linspace(1, 0.3, len(boxes)), classes, boxes, classes)
        cm.update(noisy, np.linspace(1, 0.3, len(boxes)), classes, boxes, classes)
    assert _is_png(plot_pr_curve(metrics.pr_curve(), tmp_path / "pr.png"))
    assert _is_png(plot_confusion_matrix(cm.matrix, NAMES, tmp_path / "cm.png"))
    assert _is_png(plot_confusion_matrix(cm.matrix, NAMES, tmp_path / "cm_counts.png", normalize=False))

    csv_path = tmp_path / "results.csv"
    csv_path.write_text("epoch, train/box_loss, metrics/mAP50, lr/pg0\n0, 1.5, 0.1, 0.01\n1, 1.2, 0.3, 0.009\n")
    assert _is_png(plot_results_csv(csv_path, tmp_path / "results.png"))

    image = np.zeros((480, 640, 3), dtype=np.uint8)
    boxes, classes = _gt()
    drawn = draw_boxes(image, torch.from_numpy(boxes), classes, NAMES, scores=np.ones(len(boxes)))
    assert drawn.shape == image.shape and drawn.any() and not image.any()
    pred = (boxes, classes, np.ones(len(boxes)))
    assert _is_png(save_side_by_side(image, (boxes, classes), pred, NAMES, tmp_path / "pair.png"))
