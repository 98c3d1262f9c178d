"""The blocks of YOLOv6 v3.0 (Li et al., "YOLOv6 v3.0: A Full-Scale Reloading", 2023) that yolorep's own blocks do
not already cover: the CSPStackRep stage (``BepC3``) of the M/L backbones and necks, the bi-directional fusion of
the RepBiFPAN neck (``BiFusion``) and the CSP version of SPPF (``CSPSPPF``).

YOLOv6's RepVGG blocks, RepBlock stages and SPPF are yolorep's ``RepVGGBlock``, ``RepBlock`` and ``SPPF`` with
``act: relu``; its detection head is yolorep's ``Detect`` (``reg_max: 0`` for N/S, 17 bins for M/L).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from yolorep.nn.modules.conv import Conv
from yolorep.nn.modules.repvgg import STAGE_BLOCKS
from yolorep.nn.registry import register

__all__ = ["CSPSPPF", "BepC3", "BiFusion", "BottleRep"]

# The 3 x 3 block a CSPStackRep stage stacks: RepVGG (YOLOv6-M) or a plain conv + BN (YOLOv6-L's "conv_silu").
_BASIC_BLOCKS: dict[str, type[nn.Module]] = {**STAGE_BLOCKS, "Conv": Conv}


class BottleRep(nn.Module):
    """Two 3 x 3 blocks with a residual scaled by a learnt ``alpha`` (YOLOv6 v3's BottleRep)."""

    def __init__(self, channels: int, block: str = "RepVGGBlock", act: bool | str = "relu") -> None:
        super().__init__()
        if block not in _BASIC_BLOCKS:
            raise ValueError(f"BottleRep: block={block!r}; use one of {', '.join(_BASIC_BLOCKS)}")
        cls = _BASIC_BLOCKS[block]
        self.conv1 = cls(channels, channels, 3, act=act)
        self.conv2 = cls(channels, channels, 3, act=act)
        self.alpha = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x)) + self.alpha * x


@register(repeats="n")
class BepC3(nn.Module):
    """CSPStackRep stage: 1 x 1 convs split the input, ``max(n // 2, 1)`` BottleReps process one half, a 1 x 1
    conv merges both halves. ``block`` and ``act`` pick the 3 x 3 blocks and every activation (YOLOv6-M:
    ``RepVGGBlock`` with ``relu``; YOLOv6-L: ``Conv`` with ``silu``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 1,
        expansion: float = 0.5,
        block: str = "RepVGGBlock",
        act: bool | str = "relu",
    ) -> None:
        super().__init__()
        hidden = max(int(out_channels * expansion), 1)
        self.out_channels = out_channels
        self.main = Conv(in_channels, hidden, 1, act=act)
        self.bypass = Conv(in_channels, hidden, 1, act=act)
        self.blocks = nn.Sequential(*(BottleRep(hidden, block, act) for _ in range(max(n // 2, 1))))
        self.merge = Conv(2 * hidden, out_channels, 1, act=act)

    def forward(self, x: Tensor) -> Tensor:
        return self.merge(torch.cat((self.blocks(self.main(x)), self.bypass(x)), dim=1))


@register
class CSPSPPF(nn.Module):
    """SPPF inside a CSP split (YOLOv6 v3's SimCSPSPPF): one half goes through 1 x 1, 3 x 3, 1 x 1 convs, three
    chained max-pools and two more convs; the other half bypasses it; a 1 x 1 conv merges them."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 5,
        expansion: float = 0.5,
        act: bool | str = "relu",
    ) -> None:
        super().__init__()
        hidden = max(int(out_channels * expansion), 1)
        self.out_channels = out_channels
        self.main = nn.Sequential(
            Conv(in_channels, hidden, 1, act=act), Conv(hidden, hidden, 3, act=act), Conv(hidden, hidden, 1, act=act)
        )
        self.bypass = Conv(in_channels, hidden, 1, act=act)
        self.pool = nn.MaxPool2d(kernel_size, stride=1, padding=kernel_size // 2)
        self.pooled = nn.Sequential(Conv(4 * hidden, hidden, 1, act=act), Conv(hidden, hidden, 3, act=act))
        self.merge = Conv(2 * hidden, out_channels, 1, act=act)

    def forward(self, x: Tensor) -> Tensor:
        y0 = self.main(x)
        y1 = self.pool(y0)
        y2 = self.pool(y1)
        pooled = self.pooled(torch.cat((y0, y1, y2, self.pool(y2)), dim=1))
        return self.merge(torch.cat((self.bypass(x), pooled), dim=1))


@register
class BiFusion(nn.Module):
    """Bi-directional fusion of YOLOv6 v3's RepBiFPAN neck: the coarser level upsampled by a 2 x 2 transposed conv,
    the same level through a 1 x 1 conv and the finer level through a 1 x 1 and a strided 3 x 3 conv, concatenated
    and merged by a 1 x 1 conv.

    Args:
        in_channels: channels of [coarser (stride 2s), same (s), finer (s/2)] levels, in the order of ``from``.
    """

    def __init__(self, in_channels: list[int], out_channels: int, act: bool | str = "relu") -> None:
        super().__init__()
        if not isinstance(in_channels, (list, tuple)) or len(in_channels) != 3:
            raise ValueError("BiFusion reads three levels: write its 'from' as [coarser, same, finer]")
        self.out_channels = out_channels
        self.upsample = nn.ConvTranspose2d(in_channels[0], out_channels, 2, 2, bias=True)
        self.lateral = Conv(in_channels[1], out_channels, 1, act=act)
        self.finer = Conv(in_channels[2], out_channels, 1, act=act)
        self.downsample = Conv(out_channels, out_channels, 3, 2, act=act)
        self.merge = Conv(3 * out_channels, out_channels, 1, act=act)

    def forward(self, xs: list[Tensor]) -> Tensor:
        coarser, same, finer = xs
        fused = (self.upsample(coarser), self.lateral(same), self.downsample(self.finer(finer)))
        return self.merge(torch.cat(fused, dim=1))
