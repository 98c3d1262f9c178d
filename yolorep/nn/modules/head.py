"""The detection head: anchor-free, decoupled, with distribution focal (DFL) box regression (YOLOv6 / YOLOv8).

For each level the head predicts ``4 * reg_max`` box logits (a distribution over distances, in stride units, from
the cell centre to the left, top, right and bottom edges) and ``nc`` class logits. With ``reg_max = 0`` it predicts
the four distances themselves (YOLOv6-N/S's head). It returns these raw maps in training and in evaluation alike;
``decode`` (``yolorep.ops.decode_predictions``) turns them into boxes and scores.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from yolorep.nn.modules.conv import Conv
from yolorep.nn.registry import register
from yolorep.ops.decode import box_bins, decode_predictions

__all__ = ["Detect", "DetectionHead"]


class DetectionHead(nn.Module):
    """What a model's last layer is: per-level raw maps [B, 4 * box_bins(reg_max) + nc, H_i, W_i] (box logits
    first), decoded by ``decode``; ``nc`` and ``reg_max`` are the plain numbers the loss is built from."""

    nc: int
    reg_max: int

    def initialize_biases(self, strides: Tensor, imgsz: int = 640) -> None:
        raise NotImplementedError

    def decode(self, maps: list[Tensor], strides: Tensor) -> Tensor:
        """Raw maps -> [B, N, 4 + nc]: boxes (x1, y1, x2, y2) in input pixels, then class probabilities."""
        return decode_predictions(maps, strides, self.reg_max)


class _LevelHead(nn.Module):
    """Per-level decoupled branches: a 1 x 1 stem, then a 3 x 3 Conv and a 1 x 1 predictor for each task."""

    def __init__(self, channels: int, nc: int, reg_max: int) -> None:
        super().__init__()
        self.stem = Conv(channels, channels, 1)
        self.cls_conv = Conv(channels, channels, 3)
        self.reg_conv = Conv(channels, channels, 3)
        self.cls_pred = nn.Conv2d(channels, nc, 1)
        self.reg_pred = nn.Conv2d(channels, 4 * box_bins(reg_max), 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        return torch.cat((self.reg_pred(self.reg_conv(x)), self.cls_pred(self.cls_conv(x))), dim=1)


@register(out_channels=None)
class Detect(DetectionHead):
    """Anchor-free decoupled detection head over several levels (P3-P5): YOLOv6's efficient decoupled head.

    ``forward(xs)`` takes one feature map per level and returns one [B, 4 * reg_max + nc, H_i, W_i] per level:
    box bin logits first, then class logits. ``reg_max = 0`` predicts 4 distances instead of 4 distributions.
    """

    def __init__(self, in_channels: list[int], nc: int = 80, reg_max: int = 16) -> None:
        super().__init__()
        if not isinstance(in_channels, (list, tuple)):
            raise ValueError("Detect reads several levels: write its 'from' as a list, e.g. [17, 20, 23]")
        self.nc = nc
        self.reg_max = reg_max
        if reg_max < 0:
            raise ValueError(f"reg_max={reg_max} must be 0 (distances) or a number of DFL bins")
        self.out_channels = 4 * box_bins(reg_max) + nc
        self.levels = nn.ModuleList(_LevelHead(c, nc, reg_max) for c in in_channels)

    def initialize_biases(self, strides: Tensor, imgsz: int = 640) -> None:
        """Start the class logits at a prior that keeps early training stable (YOLOv5/YOLOv8's choice).

        About 5 objects per ``imgsz`` image are expected on each level, spread over its ``(imgsz / stride) ** 2``
        cells and ``nc`` classes, so each class logit starts at ``log(5 / nc / cells)``, close to the logit of
        that small probability. Box logits start at 1, a flat distance distribution.

        Args:
            strides: [levels] input pixels per cell of each level.
        """
        for level, stride in zip(self.levels, strides.tolist()):
            nn.init.constant_(level.reg_pred.bias, 1.0)
            nn.init.constant_(level.cls_pred.bias, math.log(5 / self.nc / (imgsz / stride) ** 2))

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        return [level(x) for level, x in zip(self.levels, xs)]
