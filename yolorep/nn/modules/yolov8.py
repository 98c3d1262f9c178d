"""The blocks of ultralytics YOLOv8 (Jocher et al., 2023): the ``C2f`` stage and its bottleneck, and the head
with separate box and class branches per level (``YOLOv8Detect``). Its SPPF is yolorep's ``SPPF``."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from yolorep.nn.modules.conv import Conv
from yolorep.nn.modules.head import DetectionHead
from yolorep.nn.registry import register
from yolorep.ops.decode import box_bins

__all__ = ["C2f", "Bottleneck", "YOLOv8Detect"]


class Bottleneck(nn.Module):
    """Two convs (k x k each) with a residual when the shapes allow it and ``shortcut`` is set."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        shortcut: bool = True,
        kernel_sizes: tuple[int, int] = (3, 3),
        expansion: float = 0.5,
        groups: int = 1,
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = Conv(in_channels, hidden, kernel_sizes[0])
        self.conv2 = Conv(hidden, out_channels, kernel_sizes[1], groups=groups)
        self.add = shortcut and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.add else y


@register(repeats="n")
class C2f(nn.Module):
    """CSP stage with two convolutions where every bottleneck's output joins the concatenation (YOLOv8): a 1 x 1
    conv splits into two halves, ``n`` bottlenecks chain on the second, and a 1 x 1 conv merges all ``2 + n``.
    ``n`` comes last so that YAML rows read as ultralytics' (``[128, True]``: out_channels, shortcut)."""

    def __init__(
        self, in_channels: int, out_channels: int, shortcut: bool = False, expansion: float = 0.5, n: int = 1
    ) -> None:
        super().__init__()
        self.hidden = int(out_channels * expansion)
        self.out_channels = out_channels
        self.split = Conv(in_channels, 2 * self.hidden, 1)
        self.blocks = nn.ModuleList(self._block(shortcut) for _ in range(n))
        self.merge = Conv((2 + n) * self.hidden, out_channels, 1)

    def _block(self, shortcut: bool) -> nn.Module:
        return Bottleneck(self.hidden, self.hidden, shortcut, (3, 3), expansion=1.0)

    def forward(self, x: Tensor) -> Tensor:
        ys = list(self.split(x).chunk(2, dim=1))
        for block in self.blocks:
            ys.append(block(ys[-1]))
        return self.merge(torch.cat(ys, dim=1))


def _branch(in_channels: int, hidden: int, out: int, depthwise: bool) -> nn.Sequential:
    """Two convs then a 1 x 1 predictor; ``depthwise`` makes each conv a 3 x 3 depthwise + 1 x 1 pair (YOLO11's
    class branch)."""
    if depthwise:
        first = nn.Sequential(Conv(in_channels, in_channels, 3, groups=in_channels), Conv(in_channels, hidden, 1))
        second = nn.Sequential(Conv(hidden, hidden, 3, groups=hidden), Conv(hidden, hidden, 1))
        return nn.Sequential(first, second, nn.Conv2d(hidden, out, 1))
    return nn.Sequential(Conv(in_channels, hidden, 3), Conv(hidden, hidden, 3), nn.Conv2d(hidden, out, 1))


@register(out_channels=None)
class YOLOv8Detect(DetectionHead):
    """Anchor-free head with a box branch and a class branch per level (YOLOv8, YOLO11), DFL box regression.

    ``forward(xs)`` returns one [B, 4 * reg_max + nc, H_i, W_i] per level, box logits first, as ``Detect`` does.

    Args:
        in_channels: channels of each level.
        box_channels: width of the box branches (default, as ultralytics: ``max(16, in_channels[0] // 4,
            4 * reg_max)``).
        cls_channels: width of the class branches (default ``max(in_channels[0], min(nc, 100))``); a model
            fine-tuned to another class count keeps the width it was trained with, so only the last conv changes.
        depthwise: class branches of depthwise + pointwise pairs (YOLO11) instead of 3 x 3 convs (YOLOv8).
    """

    def __init__(
        self,
        in_channels: list[int],
        nc: int = 80,
        reg_max: int = 16,
        box_channels: int | None = None,
        cls_channels: int | None = None,
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(in_channels, (list, tuple)):
            raise ValueError("YOLOv8Detect reads several levels: write its 'from' as a list, e.g. [15, 18, 21]")
        self.nc, self.reg_max = nc, reg_max
        self.out_channels = 4 * box_bins(reg_max) + nc
        box_channels = box_channels or max(16, in_channels[0] // 4, 4 * reg_max)
        cls_channels = cls_channels or max(in_channels[0], min(nc, 100))
        self.box_branches = nn.ModuleList(_branch(c, box_channels, 4 * box_bins(reg_max), False) for c in in_channels)
        self.cls_branches = nn.ModuleList(_branch(c, cls_channels, nc, depthwise) for c in in_channels)

    def initialize_biases(self, strides: Tensor, imgsz: int = 640) -> None:
        """Box logits start at 2 and class logits at ``log(5 / nc / cells)`` (about 5 objects per image and level,
        as ultralytics starts them)."""
        for box, cls, stride in zip(self.box_branches, self.cls_branches, strides.tolist()):
            nn.init.constant_(box[-1].bias, 2.0)
            nn.init.constant_(cls[-1].bias, math.log(5 / self.nc / (imgsz / stride) ** 2))

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        return [torch.cat((box(x), cls(x)), dim=1) for box, cls, x in zip(self.box_branches, self.cls_branches, xs)]
