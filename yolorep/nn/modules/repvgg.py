"""RepVGG blocks (Ding et al., "RepVGG: Making VGG-style ConvNets Great Again", CVPR 2021) and the stages built
from them.

Training uses parallel k x k, 1 x 1 and identity branches; ``fused()`` folds them into one k x k convolution.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from yolorep.nn.fuse import add_pointwise_and_identity, bn_kernel_bias, conv_from_kernel, identity_kernel, pad_kernel
from yolorep.nn.modules.acb import ACBlock
from yolorep.nn.modules.conv import Conv, ConvBN, FusedConv, apply_conv, check_kernel_size, make_activation
from yolorep.nn.modules.dbb import DBBlock
from yolorep.nn.modules.mobileone import MobileOneBlock, MobileOneUnit
from yolorep.nn.registry import register

__all__ = ["STAGE_BLOCKS", "QARepVGGBlock", "RepBlock", "RepCSP", "RepVGGBlock"]


@register
class RepVGGBlock(nn.Module):
    """k x k conv+BN, 1 x 1 conv+BN (k > 1) and identity BN (in == out, stride 1) branches, summed, then SiLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: bool | str | nn.Module | None = True,
    ) -> None:
        super().__init__()
        check_kernel_size(kernel_size, type(self).__name__)
        self.out_channels = out_channels
        self.dense = ConvBN(in_channels, out_channels, kernel_size, stride, groups)
        self.pointwise = ConvBN(in_channels, out_channels, 1, stride, groups) if kernel_size > 1 else None
        self.identity = nn.BatchNorm2d(out_channels) if in_channels == out_channels and stride == 1 else None
        self.act = make_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        y = self.dense(x)
        if self.pointwise is not None:
            y = y + self.pointwise(x)
        if self.identity is not None:
            y = y + self.identity(x)
        return self.act(y)

    def fused(self) -> FusedConv:
        conv = self.dense.conv
        kernel, bias = add_pointwise_and_identity(*self.dense.kernel_bias(), conv, self.pointwise, self.identity)
        return FusedConv(conv_from_kernel(conv, kernel, bias), copy.deepcopy(self.act)).eval()


@register
class QARepVGGBlock(nn.Module):
    """Quantization-friendly RepVGG (YOLOv6 v3, Chu et al. 2022): k x k conv+BN, bare 1 x 1 conv and bare
    identity summed, then one BatchNorm after the sum, then SiLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: bool | str | nn.Module | None = True,
    ) -> None:
        super().__init__()
        check_kernel_size(kernel_size, type(self).__name__)
        self.out_channels = out_channels
        self.dense = ConvBN(in_channels, out_channels, kernel_size, stride, groups)
        self.pointwise = (
            nn.Conv2d(in_channels, out_channels, 1, stride, groups=groups, bias=False) if kernel_size > 1 else None
        )
        self.has_identity = in_channels == out_channels and stride == 1
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = make_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        y = self.dense(x)
        if self.pointwise is not None:
            y = y + apply_conv(self.pointwise, x)
        if self.has_identity:
            y = y + x
        return self.act(self.bn(y))

    def fused(self) -> FusedConv:
        conv = self.dense.conv
        k = conv.kernel_size[0]
        kernel, bias = self.dense.kernel_bias()
        if self.pointwise is not None:
            kernel = kernel + pad_kernel(self.pointwise.weight.to(kernel.dtype), k)
        if self.has_identity:
            kernel = kernel + identity_kernel(conv.in_channels, conv.groups, k, like=kernel)
        kernel, bias = bn_kernel_bias(kernel, self.bn, bias)
        return FusedConv(conv_from_kernel(conv, kernel, bias), copy.deepcopy(self.act)).eval()


# The block a RepBlock / RepCSP stage stacks, by the name a model YAML writes (``block: QARepVGGBlock``).
STAGE_BLOCKS: dict[str, type[nn.Module]] = {
    "RepVGGBlock": RepVGGBlock,
    "QARepVGGBlock": QARepVGGBlock,
    "ACBlock": ACBlock,
    "DBBlock": DBBlock,
    "MobileOneBlock": MobileOneBlock,
    "MobileOneUnit": MobileOneUnit,
}


def _stage_block(block: str, stage: str) -> type[nn.Module]:
    if block not in STAGE_BLOCKS:
        raise ValueError(f"{stage}: block={block!r} is not a stage block; use one of {', '.join(STAGE_BLOCKS)}")
    return STAGE_BLOCKS[block]


@register(repeats="n")
class RepBlock(nn.Module):
    """``n`` stacked RepVGGBlocks (or another of ``STAGE_BLOCKS``: ``block: QARepVGGBlock``, ``ACBlock``,
    ``DBBlock``, ``MobileOneBlock``, ``MobileOneUnit``); the first maps ``in_channels`` to ``out_channels``.
    ``act`` is the blocks' activation (``relu`` in YOLOv6)."""

    def __init__(
        self, in_channels: int, out_channels: int, n: int = 1, block: str = "RepVGGBlock", act: bool | str = True
    ) -> None:
        super().__init__()
        cls = _stage_block(block, type(self).__name__)
        self.out_channels = out_channels
        self.blocks = nn.Sequential(
            *(cls(in_channels if i == 0 else out_channels, out_channels, act=act) for i in range(max(n, 1)))
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


@register(repeats="n")
class RepCSP(nn.Module):
    """CSP stage of RepVGG blocks (like YOLOv6's BepC3): half the channels go through a RepBlock, half bypass it,
    and a 1 x 1 Conv merges them. ``block`` picks the RepBlock's block, as for ``RepBlock``."""

    def __init__(
        self, in_channels: int, out_channels: int, n: int = 1, expansion: float = 0.5, block: str = "RepVGGBlock"
    ) -> None:
        super().__init__()
        hidden = max(int(out_channels * expansion), 1)
        self.out_channels = out_channels
        self.main = Conv(in_channels, hidden, 1)
        self.bypass = Conv(in_channels, hidden, 1)
        self.blocks = RepBlock(hidden, hidden, n, block)
        self.merge = Conv(2 * hidden, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.merge(torch.cat((self.blocks(self.main(x)), self.bypass(x)), dim=1))
