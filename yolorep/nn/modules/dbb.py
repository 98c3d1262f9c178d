"""The Diverse Branch Block (Ding et al., "Diverse Branch Block: Building a Convolution as an Inception-like Unit",
CVPR 2021).

Training sums four branches, each ending in BatchNorm: k x k conv, 1 x 1 conv, 1 x 1 conv -> k x k conv, and
1 x 1 conv -> k x k average pool; ``fused()`` folds them into one k x k convolution.

The border. A fused k x k conv zero-pads its input x, so at the border the 1 x 1 -> k x k sequence must see what
its 1 x 1 conv + BN gives for x = 0 (the BN's bias), not zero. Padding the BN output with zeros, as a plain
``Conv2d(padding=k // 2)`` after it would, makes the fused conv wrong on a k // 2 wide frame. The original code pads
the BN output with its bias; here the bias-free 1 x 1 conv itself is padded (``padding=k // 2``; padding then a
1 x 1 conv without bias is a 1 x 1 conv then zero padding), so the BN turns the frame into exactly its bias, in
training and in evaluation alike, and the k x k conv after it runs unpadded. The average-pool branch does the same.
One difference from the original in training: the BatchNorm statistics include that frame, i.e. they describe
exactly what the next layer reads. Evaluation, and so every fused output, is unchanged.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from yolorep.nn.fuse import (
    average_kernel,
    bn_kernel_bias,
    conv_from_kernel,
    identity_kernel,
    merge_1x1_kxk,
    pad_kernel,
)
from yolorep.nn.modules.conv import ConvBN, FusedConv, check_kernel_size, make_activation
from yolorep.nn.registry import register

__all__ = ["DBBlock"]


class _ExpandConv(nn.Module):
    """1 x 1 conv (padded by k // 2, see the module docstring) + BN, then an unpadded k x k conv + BN."""

    def __init__(self, in_channels: int, mid: int, out_channels: int, kernel_size: int, stride: int, groups: int):
        super().__init__()
        self.expand = nn.Conv2d(in_channels, mid, 1, padding=kernel_size // 2, groups=groups, bias=False)
        self.expand_bn = nn.BatchNorm2d(mid)
        self.conv = nn.Conv2d(mid, out_channels, kernel_size, stride, 0, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        if mid == in_channels:  # DBB starts this 1 x 1 conv as the identity
            with torch.no_grad():
                self.expand.weight.copy_(identity_kernel(in_channels, groups, 1, like=self.expand.weight))

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(self.expand_bn(self.expand(x))))

    def kernel_bias(self) -> tuple[Tensor, Tensor]:
        first = bn_kernel_bias(self.expand.weight, self.expand_bn)
        second = bn_kernel_bias(self.conv.weight, self.bn)
        return merge_1x1_kxk(first, second, self.conv.groups)


class _AverageBranch(nn.Module):
    """k x k average pool + BN, after a 1 x 1 conv + BN (padded by k // 2) unless the block is depthwise with
    ``in == out``, where the pool reads the input directly (zero padding counted in the average)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int, direct: bool):
        super().__init__()
        pad = kernel_size // 2
        self.groups = groups
        self.conv = None if direct else nn.Conv2d(in_channels, out_channels, 1, padding=pad, groups=groups, bias=False)
        self.conv_bn = None if direct else nn.BatchNorm2d(out_channels)
        self.pool = nn.AvgPool2d(kernel_size, stride, pad if direct else 0)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        if self.conv is not None:
            x = self.conv_bn(self.conv(x))
        return self.bn(self.pool(x))

    def kernel_bias(self) -> tuple[Tensor, Tensor]:
        k = self.pool.kernel_size
        if self.conv is None:
            pooled = average_kernel(self.bn.num_features, self.groups, k, like=self.bn.running_mean)
            return bn_kernel_bias(pooled, self.bn)
        # a k x k average of a 1 x 1 conv's output is that 1 x 1 kernel spread evenly over k x k, with its bias
        kernel, bias = bn_kernel_bias(self.conv.weight, self.conv_bn)
        return bn_kernel_bias(kernel.expand(-1, -1, k, k) / k**2, self.bn, bias)


@register
class DBBlock(nn.Module):
    """Diverse Branch Block: k x k, 1 x 1 (unless depthwise), 1 x 1 -> k x k and 1 x 1 -> average branches, each
    ending in BatchNorm, summed, then an activation (SiLU by default).

    Args:
        internal_channels: width of the 1 x 1 -> k x k branch; default ``in_channels`` (the 1 x 1 conv then starts
            as the identity), twice that for a depthwise block (``groups == in_channels == out_channels``), as in
            the paper.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        internal_channels: int | None = None,
        act: bool | nn.Module | None = True,
    ) -> None:
        super().__init__()
        check_kernel_size(kernel_size, type(self).__name__)
        depthwise = groups == in_channels == out_channels
        mid = internal_channels or (2 * in_channels if depthwise else in_channels)
        self.out_channels = out_channels
        self.dense = ConvBN(in_channels, out_channels, kernel_size, stride, groups)
        has_pointwise = kernel_size > 1 and not depthwise
        self.pointwise = ConvBN(in_channels, out_channels, 1, stride, groups) if has_pointwise else None
        self.sequence = _ExpandConv(in_channels, mid, out_channels, kernel_size, stride, groups)
        self.average = _AverageBranch(in_channels, out_channels, kernel_size, stride, groups, direct=depthwise)
        self.act = make_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        y = self.dense(x) + self.sequence(x) + self.average(x)
        if self.pointwise is not None:
            y = y + self.pointwise(x)
        return self.act(y)

    def fused(self) -> FusedConv:
        conv = self.dense.conv
        k = conv.kernel_size[0]
        kernel, bias = self.dense.kernel_bias()
        branches = [self.sequence, self.average] + ([self.pointwise] if self.pointwise is not None else [])
        for branch in branches:
            branch_kernel, branch_bias = branch.kernel_bias()
            kernel, bias = kernel + pad_kernel(branch_kernel.to(kernel.dtype), k), bias + branch_bias.to(bias.dtype)
        return FusedConv(conv_from_kernel(conv, kernel, bias), copy.deepcopy(self.act)).eval()
