"""The asymmetric convolution block (ACNet: Ding et al., "ACNet: Strengthening the Kernel Skeletons for Powerful CNN
via Asymmetric Convolution Blocks", ICCV 2019).

Training sums a k x k, a 1 x k and a k x 1 conv+BN branch; ``fused()`` adds the 1 x k kernel to the centre row and
the k x 1 kernel to the centre column of the k x k kernel. All three are padded by half their extent along each
axis, so every branch reads a window centred on the same input pixel and the sum is one zero-padded k x k
convolution, at the border as well.
"""

from __future__ import annotations

import copy

from torch import Tensor, nn

from yolorep.nn.fuse import conv_from_kernel, pad_kernel
from yolorep.nn.modules.conv import ConvBN, FusedConv, check_kernel_size, make_activation
from yolorep.nn.registry import register

__all__ = ["ACBlock"]


@register
class ACBlock(nn.Module):
    """k x k, 1 x k and k x 1 conv+BN branches (k > 1), summed, then an activation (SiLU by default)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: bool | nn.Module | None = True,
    ) -> None:
        super().__init__()
        check_kernel_size(kernel_size, type(self).__name__)
        self.out_channels = out_channels
        self.square = ConvBN(in_channels, out_channels, kernel_size, stride, groups)
        asymmetric = kernel_size > 1
        self.horizontal = ConvBN(in_channels, out_channels, (1, kernel_size), stride, groups) if asymmetric else None
        self.vertical = ConvBN(in_channels, out_channels, (kernel_size, 1), stride, groups) if asymmetric else None
        self.act = make_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        y = self.square(x)
        if self.horizontal is not None:
            y = y + self.horizontal(x) + self.vertical(x)
        return self.act(y)

    def fused(self) -> FusedConv:
        conv = self.square.conv
        k = conv.kernel_size[0]
        kernel, bias = self.square.kernel_bias()
        for branch in (self.horizontal, self.vertical):
            if branch is not None:
                branch_kernel, branch_bias = branch.kernel_bias()
                kernel, bias = kernel + pad_kernel(branch_kernel, k), bias + branch_bias
        return FusedConv(conv_from_kernel(conv, kernel, bias), copy.deepcopy(self.act)).eval()
