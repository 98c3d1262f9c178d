"""Convolution primitives: ``Conv`` (conv + BN + activation) and ``FusedConv``, the inference form of every
fusable block."""

from __future__ import annotations

import copy

from torch import Tensor, nn

from yolorep.errors import YolorepError
from yolorep.nn.fuse import fuse_conv_bn
from yolorep.nn.registry import register

__all__ = ["ACTIVATIONS", "Conv", "FusedConv", "make_activation"]


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
