"""Scoring detections: COCO-style metrics that mirror pycocotools, pycocotools itself, and the evaluators the
validator feeds."""

from yolorep.evaluation.coco import build_coco_gt, evaluate_coco, has_pycocotools, predictions_to_coco
from yolorep.evaluation.evaluators import (
    CONFIDENCE_CURVES,
    COCOEvaluator,
    Detections,
    Evaluator,
    MetricsEvaluator,
    SampleImages,
)
from yolorep.evaluation.metrics import ConfusionMatrix, DetectionMetrics

__all__ = [
    "CONFIDENCE_CURVES",
    "COCOEvaluator",
    "ConfusionMatrix",
    "DetectionMetrics",
    "Detections",
    "Evaluator",
    "MetricsEvaluator",
    "SampleImages",
    "build_coco_gt",
    "evaluate_coco",
    "has_pycocotools",
    "predictions_to_coco",
]
