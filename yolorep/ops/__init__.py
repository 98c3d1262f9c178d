"""Pure tensor functions shared by training, validation, prediction and export: box formats and NMS."""

from __future__ import annotations

from yolorep.ops.boxes import box_ioa, clip_boxes, scale_boxes, xywh_to_xyxy, xyxy_to_ltwh, xyxy_to_xywh
from yolorep.ops.nms import non_max_suppression

__all__ = [
    "box_ioa",
    "clip_boxes",
    "non_max_suppression",
    "scale_boxes",
    "xywh_to_xyxy",
    "xyxy_to_ltwh",
    "xyxy_to_xywh",
]
