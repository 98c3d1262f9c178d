"""Box format conversions and the inverse of letterboxing.

Formats used across yolorep:

- ``xyxy``: ``(x1, y1, x2, y2)`` corners.
- ``cxcywh``: ``(cx, cy, w, h)`` centre and size (YOLO label format; torchvision's name).
- ``ltwh``: ``(x, y, w, h)`` top-left corner and size (the COCO ``bbox`` format).

Every function accepts a torch tensor or a numpy array ``[..., 4]`` and returns the same kind.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torchvision.ops import box_convert

Boxes = TypeVar("Boxes", torch.Tensor, np.ndarray)
RatioPad = tuple[tuple[float, float], tuple[float, float]]


def _convert(boxes: Boxes, in_fmt: str, out_fmt: str) -> Boxes:
    if isinstance(boxes, np.ndarray):
        return box_convert(torch.from_numpy(boxes), in_fmt, out_fmt).numpy()
    return box_convert(boxes, in_fmt, out_fmt)


def cxcywh_to_xyxy(boxes_cxcywh: Boxes) -> Boxes:
    """Convert centre boxes to corners.

    Args:
        boxes_cxcywh: [..., 4] as (cx, cy, w, h).

    Returns:
        [..., 4] as (x1, y1, x2, y2).
    """
    return _convert(boxes_cxcywh, "cxcywh", "xyxy")


def xyxy_to_cxcywh(boxes_xyxy: Boxes) -> Boxes:
    """Convert corner boxes to centre boxes.

    Args:
        boxes_xyxy: [..., 4] as (x1, y1, x2, y2).

    Returns:
        [..., 4] as (cx, cy, w, h).
    """
    return _convert(boxes_xyxy, "xyxy", "cxcywh")


def xyxy_to_ltwh(boxes_xyxy: Boxes) -> Boxes:
    """Convert corner boxes to the COCO ``bbox`` format.

    Args:
        boxes_xyxy: [..., 4] as (x1, y1, x2, y2).

    Returns:
        [..., 4] as (x, y, w, h) with (x, y) the top-left corner.
    """
    # torchvision calls the COCO format "xywh" (top-left corner and size)
    return _convert(boxes_xyxy, "xyxy", "xywh")


def clip_boxes(boxes_xyxy: Boxes, shape_hw: tuple[int, int]) -> Boxes:
    """Clip boxes to an image.

    Args:
        boxes_xyxy: [..., 4] as (x1, y1, x2, y2), pixels.
        shape_hw: (height, width) of the image.

    Returns:
        A new [..., 4] xyxy array with x in [0, width] and y in [0, height].
    """
    h, w = shape_hw
    out = boxes_xyxy.copy() if isinstance(boxes_xyxy, np.ndarray) else boxes_xyxy.clone()
    out[..., 0::2] = out[..., 0::2].clip(0, w)
    out[..., 1::2] = out[..., 1::2].clip(0, h)
    return out


def scale_boxes(boxes_xyxy: Boxes, ratio_pad: RatioPad, shape_hw: tuple[int, int] | None = None) -> Boxes:
    """Map boxes from a letterboxed network input back to the original image (the inverse of letterboxing).

    Args:
        boxes_xyxy: [..., 4] as (x1, y1, x2, y2), pixels of the letterboxed input.
        ratio_pad: ``((r_w, r_h), (pad_w, pad_h))``: the resize ratios and the left/top padding the letterbox
            applied, so that ``input = original * r + pad``.
        shape_hw: (height, width) of the original image; when given, the result is clipped to it.

    Returns:
        A new [..., 4] xyxy array in original-image pixels.
    """
    (r_w, r_h), (pad_w, pad_h) = ratio_pad
    out = boxes_xyxy.copy() if isinstance(boxes_xyxy, np.ndarray) else boxes_xyxy.clone()
    out[..., 0::2] = (out[..., 0::2] - pad_w) / r_w
    out[..., 1::2] = (out[..., 1::2] - pad_h) / r_h
    return clip_boxes(out, shape_hw) if shape_hw is not None else out


def box_ioa(boxes1_xyxy: torch.Tensor, boxes2_xyxy: torch.Tensor) -> torch.Tensor:
    """Intersection over the area of the first box set (torchvision has IoU but not this).

    COCO scores a detection against a crowd region with this measure, so a detection inside the crowd counts
    as a full match however large the crowd is.

    Args:
        boxes1_xyxy: [N, 4] as (x1, y1, x2, y2).
        boxes2_xyxy: [M, 4] as (x1, y1, x2, y2).

    Returns:
        [N, M] intersection area divided by the area of ``boxes1``; 0 where ``boxes1`` has no area.
    """
    top_left = torch.maximum(boxes1_xyxy[:, None, :2], boxes2_xyxy[None, :, :2])  # [N, M, 2]
    bottom_right = torch.minimum(boxes1_xyxy[:, None, 2:], boxes2_xyxy[None, :, 2:])  # [N, M, 2]
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)  # [N, M]
    area1 = (boxes1_xyxy[:, 2:] - boxes1_xyxy[:, :2]).clamp(min=0).prod(-1)  # [N]
    return torch.where(area1[:, None] > 0, inter / area1[:, None].clamp(min=torch.finfo(inter.dtype).tiny), 0.0)
