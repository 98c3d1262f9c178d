"""Evaluators: what the validator's inference loop feeds, image by image (detectron2's reset / process / evaluate).

Each evaluator sees every image's ground truth (its ``ImageRecord``: boxes as xyxy original pixels, contiguous
classes) and its detections in the same pixel space, and returns its figures from ``evaluate``. Evaluators given a
``save_dir`` also write their files there. ``report`` holds the text to log after ``evaluate``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import torch

from yolorep.atomic import write_text_atomic
from yolorep.datasets.targets import ImageRecord
from yolorep.evaluation.coco import evaluate_coco, predictions_to_coco
from yolorep.evaluation.metrics import ConfusionMatrix, DetectionMetrics

__all__ = ["CONFIDENCE_CURVES", "COCOEvaluator", "Detections", "Evaluator", "MetricsEvaluator", "SampleImages"]

# the metric-confidence curves a validation with a save_dir draws, and their files
CONFIDENCE_CURVES = {"f1": "F1_curve.png", "p": "P_curve.png", "r": "R_curve.png"}


class Detections(NamedTuple):
    """Detections of one image after NMS, in original-image pixels."""

    boxes_xyxy: torch.Tensor  # [N, 4] float32
    scores: torch.Tensor  # [N] float32
    classes: torch.Tensor  # [N] int64 contiguous class indices


class Evaluator:
    """Base class: ``reset()`` before a pass, ``process(record, detections)`` per image, then ``evaluate()``."""

    report = ""

    def reset(self) -> None:
        raise NotImplementedError

    def process(self, record: ImageRecord, detections: Detections) -> None:
        raise NotImplementedError

    def evaluate(self) -> dict[str, Any]:
        raise NotImplementedError


class MetricsEvaluator(Evaluator):
    """The internal COCO-style metrics (``DetectionMetrics``: mirrors COCOeval, adds per-class P/R) and the
    confusion matrix; with ``save_dir``, ``pr_curve.png``, ``confusion_matrix.png`` and the metric-confidence curves
    ``F1_curve.png``, ``P_curve.png`` and ``R_curve.png`` (ultralytics' names).

    ``evaluate`` returns ``map50_95_internal``, ``map50_internal``, ``map75_internal``, ``precision``, ``recall`` and
    ``per_class``; ``report`` is the per-class table.
    """

    def __init__(self, names: list[str], save_dir: Path | None = None) -> None:
        self.names, self.save_dir = list(names), save_dir
        self.reset()

    def reset(self) -> None:
        self.metrics = DetectionMetrics(self.names)
        self.confusion = ConfusionMatrix(len(self.names))

    def process(self, record: ImageRecord, detections: Detections) -> None:
        boxes, classes, _, ignored = record.evaluated
        self.metrics.update(*detections, boxes, classes, ignored)  # crowds and difficult objects as COCOeval does
        self.confusion.update(*detections, boxes[~ignored], classes[~ignored])

    def evaluate(self) -> dict[str, Any]:
        computed = self.metrics.compute()
        self.report = self.metrics.format_table()
        if self.save_dir is not None:
            from yolorep.plots import plot_confidence_curve, plot_confusion_matrix, plot_pr_curve

            curves = self.metrics.pr_curve()
            plot_pr_curve(curves, self.save_dir / "pr_curve.png")
            for metric, name in CONFIDENCE_CURVES.items():
                plot_confidence_curve(curves, metric, self.save_dir / name)
            plot_confusion_matrix(self.confusion.matrix, self.names, self.save_dir / "confusion_matrix.png")
        return {
            "map50_95_internal": computed["map50_95"],
            "map50_internal": computed["map50"],
            "map75_internal": computed["map75"],
            "precision": computed["precision"],
            "recall": computed["recall"],
            "per_class": computed["per_class"],
        }


class COCOEvaluator(Evaluator):
    """pycocotools' COCOeval on the detections: the number of record.

    Args:
        ground_truth: a COCO ground-truth dict, or the path of the data set's instances JSON.
        category_ids: COCO category id of each contiguous class.
        save_dir: with it, the detections are written to ``predictions.json`` (COCO results format) and beside
            it ``images.json``: the ground truth's ``images`` entries (``id``, ``file_name``, ``width``,
            ``height``) of the images scored, which map each ``image_id`` to its file.

    ``evaluate`` returns ``map50_95``, ``map50``, ``map75`` and ``coco_stats`` (the 12 COCOeval numbers);
    ``report`` is COCOeval's summary.
    """

    def __init__(self, ground_truth: dict[str, Any] | Path, category_ids: list[int], save_dir: Path | None = None):
        self.ground_truth, self.category_ids, self.save_dir = ground_truth, list(category_ids), save_dir
        self.reset()

    def reset(self) -> None:
        self.predictions: list[dict[str, Any]] = []
        self.image_ids: list[int] = []

    def process(self, record: ImageRecord, detections: Detections) -> None:
        self.predictions += predictions_to_coco(record.image_id, *detections, self.category_ids)
        self.image_ids.append(record.image_id)

    def evaluate(self) -> dict[str, Any]:
        if self.save_dir is not None:
            write_text_atomic(self.save_dir / "predictions.json", json.dumps(self.predictions))
            write_text_atomic(self.save_dir / "images.json", json.dumps(self._images(), indent=1))
        coco = evaluate_coco(self.ground_truth, self.predictions, image_ids=self.image_ids)
        self.report = coco["summary"]
        figures = {key: coco[key] for key in ("map50_95", "map50", "map75")}
        return {**figures, "coco_stats": coco["stats"]}

    def _images(self) -> list[dict[str, Any]]:
        """The ground truth's entries of the images scored, in the order they were scored."""
        gt = self.ground_truth
        if not isinstance(gt, dict):
            gt = json.loads(Path(gt).read_text())
        by_id = {image["id"]: image for image in gt["images"]}
        return [by_id[i] for i in self.image_ids if i in by_id]


class SampleImages(Evaluator):
    """Writes the first ``count`` images with their labels (left) beside the detections scoring at least
    ``conf`` (right), as ``val_image{i}_labels_vs_pred.jpg``."""

    def __init__(self, names: list[str], save_dir: Path, count: int = 4, conf: float = 0.25) -> None:
        self.names, self.save_dir, self.count, self.conf = list(names), save_dir, count, conf
        self.reset()

    def reset(self) -> None:
        self.written = 0

    def process(self, record: ImageRecord, detections: Detections) -> None:
        if self.written >= self.count:
            return
        import cv2

        from yolorep.plots import save_side_by_side

        image = cv2.imread(str(record.path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)  # pixels as stored
        if image is None:
            return
        keep = detections.scores >= self.conf
        shown = (detections.boxes_xyxy[keep], detections.classes[keep], detections.scores[keep])
        path = self.save_dir / f"val_image{self.written}_labels_vs_pred.jpg"
        captions = ("labels", f"predictions scoring >= {self.conf:g}")
        save_side_by_side(image, (record.boxes_xyxy, record.classes), shown, self.names, path, captions)
        self.written += 1

    def evaluate(self) -> dict[str, Any]:
        return {}
