"""Neck modules: SPPF and Concat (``nn.Upsample`` is registered as an alias)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from yolorep.nn.modules.conv import Conv
from yolorep.nn.registry import register

__all__ = ["SPPF", "Concat"]


@register
class SPPF(nn.Module):
    """Spatial pyramid pooling, fast (YOLOv5): three chained k x k max-pools concatenated with their input.

    ``act`` is the activation of both 1 x 1 convs (``relu`` in YOLOv6's SimSPPF), ``reduce_act`` overrides the
    first one's (ultralytics 8.4 builds it without activation; its older releases with SiLU).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 5,
        act: bool | str = True,
        reduce_act: bool | str | None = None,
    ) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.out_channels = out_channels
        self.reduce = Conv(in_channels, hidden, 1, act=act if reduce_act is None else reduce_act)
        self.pool = nn.MaxPool2d(kernel_size, stride=1, padding=kernel_size // 2)
        self.expand = Conv(hidden * 4, out_channels, 1, act=act)

    def forward(self, x: Tensor) -> Tensor:
        y0 = self.reduce(x)
        y1 = self.pool(y0)
        y2 = self.pool(y1)
        return self.expand(torch.cat((y0, y1, y2, self.pool(y2)), dim=1))


@register(out_channels=None)
class Concat(nn.Module):
    """Concatenate the outputs of the layers listed in ``from`` along ``dim`` (channels by default)."""

    def __init__(self, in_channels: list[int], dim: int = 1) -> None:
        super().__init__()
        if not isinstance(in_channels, (list, tuple)):
            raise ValueError("Concat needs several inputs: write its 'from' as a list, e.g. [-1, 6]")
        self.dim = dim
        self.out_channels = sum(in_channels) if dim == 1 else in_channels[0]

    def forward(self, xs: list[Tensor]) -> Tensor:
        return torch.cat(xs, dim=self.dim)
