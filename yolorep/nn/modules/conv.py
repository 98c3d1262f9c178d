"""Convolution primitives: ``Conv`` (conv + BN + activation), ``ConvBN`` (one branch of a re-parameterizable
block) and ``FusedConv``, the inference form of every fusable block."""

from __future__ import annotations

import copy

import torch.nn.functional as F
from torch import Tensor, nn

from yolorep.errors import YolorepError
from yolorep.nn.fuse import bn_kernel_bias, fuse_conv_bn
from yolorep.nn.registry import register

__all__ = ["ACTIVATIONS", "Conv", "ConvBN", "FusedConv", "apply_conv", "check_kernel_size", "make_activation"]


# Activations a model YAML names (YOLOv6 uses ReLU in its RepVGG blocks and necks).
ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "hardswish": nn.Hardswish, "identity": nn.Identity}


def make_activation(act: bool | str | nn.Module | None) -> nn.Module:
    """``True`` -> SiLU, ``False``/``None`` -> identity, a name of :data:`ACTIVATIONS` (``"relu"``) -> that
    activation, a module -> that module."""
    if act is True:
        return nn.SiLU()
    if act is False or act is None:
        return nn.Identity()
    if isinstance(act, str) and act in ACTIVATIONS:
        return ACTIVATIONS[act]()
    if isinstance(act, nn.Module):
        return act
    raise ValueError(f"act must be true, false, one of {', '.join(ACTIVATIONS)} or an nn.Module; got {act!r}")


def check_kernel_size(kernel_size: int, block: str) -> None:
    """Branches are aligned on the kernel centre, which only an odd kernel has."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"{block}: kernel_size={kernel_size} is not a positive odd number; the branches are aligned on the "
            "kernel centre, so use 1, 3, 5 or 7"
        )


def apply_conv(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)``, with a strided 1 x 1 convolution applied to the pixels it reads (``x[..., ::s, ::s]``) at
    stride 1: the same sums, but oneDNN's strided 1 x 1 kernels cost several times the plain ones on CPU. In
    yolorep-n's first block (3 -> 16 channels, batch 16, 320 px) the 1 x 1 branch's forward and backward took
    94 ms strided and 41 ms subsampled, and a whole training step was 3-6% faster."""
    if conv.kernel_size != (1, 1) or conv.stride == (1, 1) or conv.padding != (0, 0):
        return conv(x)
    sy, sx = conv.stride
    return F.conv2d(x[..., ::sy, ::sx].contiguous(), conv.weight, conv.bias, 1, 0, conv.dilation, conv.groups)


class ConvBN(nn.Sequential):
    """A bias-free convolution followed by BatchNorm: one branch of a re-parameterizable block.

    ``kernel_size`` is an int (square, padded to keep the size at stride 1) or ``(kh, kw)`` (ACB's 1 x k and k x 1
    branches, padded by ``(kh // 2, kw // 2)`` so that every branch is centred on the same input pixel).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int, groups: int
    ) -> None:
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.conv = nn.Conv2d(
            in_channels, out_channels, (kh, kw), stride, (kh // 2, kw // 2), groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(apply_conv(self.conv, x))

    def kernel_bias(self) -> tuple[Tensor, Tensor]:
        """The branch as one kernel [C_out, C_in/g, kh, kw] and bias [C_out] (eval-mode BatchNorm folded in)."""
        return bn_kernel_bias(self.conv.weight, self.bn)


class FusedConv(nn.Module):
    """A single convolution with bias followed by an activation: what fusing turns a block into.

    It exists only for inference: BatchNorm has been folded into ``conv`` using running statistics, so
    training it would optimise a different function than the one the blocks were trained as.
    """

    is_fused = True

    def __init__(self, conv: nn.Conv2d, act: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.act = act
        self.out_channels = conv.out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(x))

    def train(self, mode: bool = True) -> FusedConv:
        # The one training guard: a fused model refuses train() because its FusedConvs do.
        if mode:
            raise YolorepError(
                "this model is fused (BatchNorm folded into its convolutions) and cannot be trained; train the "
                "unfused model (build it, or load an unfused checkpoint such as last.pt) and fuse it afterwards"
            )
        return super().train(False)


@register(name="Conv")
class Conv(nn.Module):
    """Convolution without bias, BatchNorm, activation (SiLU by default); padding keeps the size at stride 1."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: bool | str | nn.Module | None = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = make_activation(act)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))

    def fused(self) -> FusedConv:
        return FusedConv(fuse_conv_bn(self.conv, self.bn), copy.deepcopy(self.act)).eval()
