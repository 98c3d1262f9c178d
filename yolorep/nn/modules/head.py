"""The detection head: anchor-free, decoupled, with distribution focal (DFL) box regression (YOLOv6 / YOLOv8).

For each level the head predicts ``4 * reg_max`` box logits (a distribution over distances, in stride units, from
the anchor point to the left, top, right and bottom edges) and ``nc`` class logits.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from yolorep.nn.modules.conv import Conv
from yolorep.nn.registry import register

__all__ = ["Detect", "make_anchor_points"]


def make_anchor_points(shapes: list[tuple[int, int]], strides: Tensor, offset: float = 0.5) -> tuple[Tensor, Tensor]:
    """Anchor points at cell centres for feature maps of ``shapes`` [(H, W), ...].

    Returns:
        points [N, 2] (x, y) in grid units of their level, and strides [N, 1], N = sum(H * W), level-major,
        row-major inside a level (the order of ``Detect``'s flattened outputs).
    """
    points, point_strides = [], []
    for (h, w), stride in zip(shapes, strides):
        ys = torch.arange(h, device=strides.device, dtype=strides.dtype) + offset
        xs = torch.arange(w, device=strides.device, dtype=strides.dtype) + offset
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((grid_x, grid_y), -1).reshape(-1, 2))
        point_strides.append(stride.expand(h * w, 1))
    return torch.cat(points), torch.cat(point_strides)


class _LevelHead(nn.Module):
    """Per-level decoupled branches: a 1 x 1 stem, then a 3 x 3 Conv and a 1 x 1 predictor for each task."""

    def __init__(self, channels: int, nc: int, reg_max: int) -> None:
        super().__init__()
        self.stem = Conv(channels, channels, 1)
        self.cls_conv = Conv(channels, channels, 3)
        self.reg_conv = Conv(channels, channels, 3)
        self.cls_pred = nn.Conv2d(channels, nc, 1)
        self.reg_pred = nn.Conv2d(channels, 4 * reg_max, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        return torch.cat((self.reg_pred(self.reg_conv(x)), self.cls_pred(self.cls_conv(x))), dim=1)


@register(out_channels=None)
class Detect(nn.Module):
    """Anchor-free decoupled detection head over several levels (P3-P5).

    Train mode returns the raw maps the loss needs: a list with one [B, 4 * reg_max + nc, H_i, W_i] per level.
    Eval mode returns [B, N, 4 + nc]: boxes xyxy in input pixels, then per-class sigmoid scores, for the
    N = sum(H_i * W_i) anchor points.
    """

    def __init__(self, in_channels: list[int], nc: int = 80, reg_max: int = 16) -> None:
        super().__init__()
        if not isinstance(in_channels, (list, tuple)):
            raise ValueError("Detect reads several levels: write its 'from' as a list, e.g. [17, 20, 23]")
        self.nc = nc
        self.reg_max = reg_max
        self.out_channels = 4 + nc
        self.levels = nn.ModuleList(_LevelHead(c, nc, reg_max) for c in in_channels)
        self.register_buffer("strides", torch.zeros(len(in_channels)))
        self.register_buffer("project", torch.arange(reg_max, dtype=torch.float32), persistent=False)

    def initialize_biases(self, imgsz: int = 640) -> None:
        """Start class scores near a 1% prior per location (RetinaNet) so early training is stable."""
        for level, stride in zip(self.levels, self.strides.tolist()):
            nn.init.constant_(level.reg_pred.bias, 1.0)
            nn.init.constant_(level.cls_pred.bias, math.log(5 / self.nc / (imgsz / stride) ** 2))

    def forward(self, xs: list[Tensor]) -> list[Tensor] | Tensor:
        maps = [level(x) for level, x in zip(self.levels, xs)]
        if self.training:
            return maps
        return self.decode(maps)

    def decode(self, maps: list[Tensor]) -> Tensor:
        """Raw maps -> [B, N, 4 + nc] (xyxy input pixels, class probabilities)."""
        batch = maps[0].shape[0]
        flat = torch.cat([m.flatten(2) for m in maps], dim=2)  # [B, 4 * reg_max + nc, N]
        box_logits, cls_logits = flat.split((4 * self.reg_max, self.nc), dim=1)
        points, strides = make_anchor_points([m.shape[2:] for m in maps], self.strides.to(flat.dtype))
        distances = self.expected_distances(box_logits.view(batch, 4, self.reg_max, -1))  # [B, 4, N]
        lt, rb = distances.transpose(1, 2).chunk(2, dim=2)  # [B, N, 2] each, grid units
        boxes = torch.cat((points - lt, points + rb), dim=2) * strides
        return torch.cat((boxes, cls_logits.sigmoid().transpose(1, 2)), dim=2)

    def expected_distances(self, logits: Tensor) -> Tensor:
        """DFL decoding: [B, 4, reg_max, N] bin logits -> [B, 4, N] expected distances in grid units."""
        return (logits.softmax(dim=2) * self.project.to(logits.dtype).view(1, 1, -1, 1)).sum(dim=2)
