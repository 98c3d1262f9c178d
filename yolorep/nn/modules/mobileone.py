"""MobileOne (Vasu et al., "MobileOne: An Improved One millisecond Mobile Backbone", CVPR 2023).

A ``MobileOneBlock`` is one re-parameterizable convolution: ``branches`` parallel k x k conv+BN branches (the
paper's over-parameterization factor), a 1 x 1 conv+BN "scale" branch (k > 1) and an identity BatchNorm (same
channels, stride 1), summed, then an activation. With ``groups == in_channels`` it is the paper's depthwise layer,
with ``kernel_size == 1`` its pointwise layer. ``MobileOneUnit`` is the paper's block: depthwise k x k, then
pointwise 1 x 1. ``fused()`` folds every branch into one k x k convolution, as for RepVGG.
"""

from __future__ import annotations

import copy

from torch import Tensor, nn

from yolorep.nn.fuse import add_pointwise_and_identity, conv_from_kernel
from yolorep.nn.modules.conv import ConvBN, FusedConv, check_kernel_size, make_activation
from yolorep.nn.registry import register

__all__ = ["MobileOneBlock", "MobileOneUnit"]


@register
class MobileOneBlock(nn.Module):
    """``branches`` k x k conv+BN, a 1 x 1 conv+BN (k > 1) and an identity BN (in == out, stride 1), summed, then
    an activation (SiLU by default)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        branches: int = 1,
        act: bool | nn.Module | None = True,
    ) -> None:
        super().__init__()
        check_kernel_size(kernel_size, type(self).__name__)
        if branches < 1:
            raise ValueError(f"{type(self).__name__}: branches={branches} must be at least 1")
        self.out_channels = out_channels
        self.dense = nn.ModuleList(
            ConvBN(in_channels, out_channels, kernel_size, stride, groups) for _ in range(branches)
        )
        self.scale = ConvBN(in_channels, out_channels, 1, stride, groups) if kernel_size > 1 else None
        self.identity = nn.BatchNorm2d(out_channels) if in_channels == out_channels and stride == 1 else None
        self.act = make_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        y = self.identity(x) if self.identity is not None else 0
        if self.scale is not None:
            y = y + self.scale(x)
        for branch in self.dense:
            y = y + branch(x)
        return self.act(y)

    def fused(self) -> FusedConv:
        conv = self.dense[0].conv
        kernel, bias = self.dense[0].kernel_bias()
        for branch in self.dense[1:]:
            branch_kernel, branch_bias = branch.kernel_bias()
            kernel, bias = kernel + branch_kernel, bias + branch_bias
        kernel, bias = add_pointwise_and_identity(kernel, bias, conv, self.scale, self.identity)
        return FusedConv(conv_from_kernel(conv, kernel, bias), copy.deepcopy(self.act)).eval()


@register
class MobileOneUnit(nn.Module):
    """The MobileOne block of the paper: a depthwise k x k ``MobileOneBlock`` (carrying the stride), then a
    pointwise 1 x 1 ``MobileOneBlock`` from ``in_channels`` to ``out_channels``; each has its own activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        branches: int = 1,
        act: bool | nn.Module | None = True,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.depthwise = MobileOneBlock(
            in_channels, in_channels, kernel_size, stride, groups=in_channels, branches=branches, act=act
        )
        self.pointwise = MobileOneBlock(in_channels, out_channels, 1, branches=branches, act=copy.deepcopy(act))

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))
