"""Decoding the detection head's raw maps: anchor points, distribution focal (DFL) distances, boxes and scores.

The head predicts, for every cell of every level, ``4 * reg_max`` box logits (a distribution over distances, in
stride units, from the cell centre to the left, top, right and bottom edges) and ``nc`` class logits. A head with
``reg_max = 0`` (YOLOv6-N/S) predicts the four distances themselves instead: 4 box channels, no distribution. The
loss and the post-processing both read the maps through these functions, so training and inference decode alike.

Index grids (anchor points, DFL bins) are made with ``new_ones(...).cumsum`` on a tensor that is already on the
right device rather than ``torch.arange(..., device=...)``: a trace (the TorchScript and ONNX exports) records an
``arange``'s device as a constant, so an export traced on the CPU would fail on a GPU and the reverse.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["box_bins", "box_distances", "decode_predictions", "dfl_expectation", "flatten_maps", "make_anchor_points"]


def box_bins(reg_max: int) -> int:
    """Box channels per side: ``reg_max`` DFL bins, or 1 (the distance itself) when ``reg_max`` is 0."""
    return max(reg_max, 1)


def flatten_maps(maps: list[Tensor], reg_max: int) -> tuple[Tensor, Tensor]:
    """Concatenate the levels' raw maps.

    Args:
        maps: one [B, 4 * box_bins(reg_max) + nc, H_i, W_i] per level.

    Returns:
        box logits [B, 4, box_bins(reg_max), N] and class logits [B, nc, N], N = sum(H_i * W_i), level-major,
        row-major.
    """
    bins = box_bins(reg_max)
    flat = torch.cat([m.flatten(2) for m in maps], dim=2)  # [B, 4 * bins + nc, N]
    box_logits, cls_logits = flat.split((4 * bins, flat.shape[1] - 4 * bins), dim=1)
    return box_logits.reshape(flat.shape[0], 4, bins, -1), cls_logits


def make_anchor_points(shapes: list[tuple[int, int]], strides: Tensor, offset: float = 0.5) -> tuple[Tensor, Tensor]:
    """Anchor points at cell centres for feature maps of ``shapes`` [(H, W), ...] with ``strides`` [levels].

    Returns:
        points [N, 2] (x, y) in grid units of their level, and strides [N, 1], in the order of ``flatten_maps``;
        both on the device and in the dtype of ``strides``.
    """
    points, point_strides = [], []
    for (h, w), stride in zip(shapes, strides):
        ones = strides.new_ones(h, w)  # [H, W]; cumsum counts 1, 2, ... exactly (integers below 2**24 in fp32)
        grid_x, grid_y = ones.cumsum(1) - (1 - offset), ones.cumsum(0) - (1 - offset)
        points.append(torch.stack((grid_x, grid_y), -1).reshape(-1, 2))
        point_strides.append(stride.expand(h * w, 1))
    return torch.cat(points), torch.cat(point_strides)


def dfl_expectation(box_logits: Tensor) -> Tensor:
    """DFL decoding: [B, 4, reg_max, N] bin logits -> [B, 4, N] expected distances in grid units."""
    bins = box_logits.new_ones(box_logits.shape[2]).cumsum(0) - 1  # 0, 1, ..., reg_max - 1
    return (box_logits.softmax(dim=2) * bins.view(1, 1, -1, 1)).sum(dim=2)


def box_distances(box_logits: Tensor, reg_max: int) -> Tensor:
    """[B, 4, box_bins(reg_max), N] box logits -> [B, 4, N] distances in grid units: the DFL expectation, or the
    predicted distances themselves when ``reg_max`` is 0."""
    return box_logits[:, :, 0] if reg_max == 0 else dfl_expectation(box_logits)


def decode_predictions(maps: list[Tensor], strides: Tensor, reg_max: int) -> Tensor:
    """Raw head maps -> detections before NMS, computed in fp32 whatever the maps' dtype.

    Boxes are pixel coordinates up to the image size: fp16 would round them to 0.25 px above 256 and 0.5 px above
    512, more than an fp16 network's own error. So fp16 or bf16 maps are decoded in fp32 and the output is fp32.

    Args:
        maps: one [B, 4 * box_bins(reg_max) + nc, H_i, W_i] per level, as the model returns them (any float dtype).
        strides: [levels] input pixels per cell of each level.
        reg_max: DFL bins per box side; 0 for heads that predict the distances themselves.

    Returns:
        [B, N, 4 + nc] float32: boxes (x1, y1, x2, y2) in input pixels, then per-class sigmoid scores.
    """
    box_logits, cls_logits = flatten_maps(maps, reg_max)
    box_logits, cls_logits = box_logits.float(), cls_logits.float()  # no-ops in fp32
    points, point_strides = make_anchor_points([m.shape[2:] for m in maps], strides.float())
    # channels first until the one transpose at the end: an exported graph then concatenates whole rows and
    # transposes once (0.2 of the 8.1 ms yolorep-n takes in OpenVINO at 640, against transposing two parts)
    lt, rb = box_distances(box_logits, reg_max).chunk(2, dim=1)  # [B, 2, N] each, grid units
    boxes_xyxy = torch.cat((points.T - lt, points.T + rb), dim=1) * point_strides.T
    return torch.cat((boxes_xyxy, cls_logits.sigmoid()), dim=1).transpose(1, 2)
