"""Pure tensor functions shared by training, validation, prediction and export: box formats, decoding, NMS."""

from __future__ import annotations

from yolorep.ops.boxes import box_ioa, clip_boxes, cxcywh_to_xyxy, scale_boxes, xyxy_to_cxcywh, xyxy_to_ltwh
from yolorep.ops.decode import (
    box_bins,
    box_distances,
    decode_predictions,
    dfl_expectation,
    flatten_maps,
    make_anchor_points,
)
from yolorep.ops.nms import non_max_suppression

__all__ = [
    "box_bins",
    "box_distances",
    "box_ioa",
    "clip_boxes",
    "cxcywh_to_xyxy",
    "decode_predictions",
    "dfl_expectation",
    "flatten_maps",
    "make_anchor_points",
    "non_max_suppression",
    "scale_boxes",
    "xyxy_to_cxcywh",
    "xyxy_to_ltwh",
]
