"""The blocks of ultralytics YOLO11 (Jocher and Qiu, 2024): the ``C3k2`` stage (C2f with C3k or bottleneck
blocks) and ``C2PSA``, a CSP stage of position-sensitive attention blocks."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from yolorep.nn.modules.conv import Conv
from yolorep.nn.modules.yolov8 import Bottleneck, C2f
from yolorep.nn.registry import register

__all__ = ["C2PSA", "Attention", "C3k", "C3k2", "PSABlock"]


class C3k(nn.Module):
    """CSP stage with three convolutions around ``n`` k x k bottlenecks (YOLOv5's C3 with a kernel size)."""

    def __init__(
        self, in_channels: int, out_channels: int, n: int = 2, shortcut: bool = True, kernel_size: int = 3
    ) -> None:
        super().__init__()
        hidden = int(out_channels * 0.5)
        self.main = Conv(in_channels, hidden, 1)
        self.bypass = Conv(in_channels, hidden, 1)
        k = (kernel_size, kernel_size)
        self.blocks = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, k, expansion=1.0) for _ in range(n)))
        self.merge = Conv(2 * hidden, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.merge(torch.cat((self.blocks(self.main(x)), self.bypass(x)), dim=1))


@register(repeats="n")
class C3k2(C2f):
    """C2f whose blocks are C3k stages (``c3k``) or bottlenecks of expansion 0.5 (YOLO11); YAML rows read as
    ultralytics' (``[256, False, 0.25]``: out_channels, c3k, expansion)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        c3k: bool = False,
        expansion: float = 0.5,
        shortcut: bool = True,
        n: int = 1,
    ) -> None:
        self.c3k = c3k
        super().__init__(in_channels, out_channels, shortcut, expansion, n)

    def _block(self, shortcut: bool) -> nn.Module:
        if self.c3k:
            return C3k(self.hidden, self.hidden, 2, shortcut)
        return Bottleneck(self.hidden, self.hidden, shortcut, (3, 3), expansion=0.5)


class Attention(nn.Module):
    """Multi-head self-attention over all positions with a depthwise 3 x 3 positional term on the values.

    ``qkv`` gives, per head, ``key_dim`` query and key channels and ``head_dim`` value channels.
    """

    def __init__(self, dim: int, num_heads: int = 8, attn_ratio: float = 0.5) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        self.qkv = Conv(dim, dim + 2 * self.key_dim * num_heads, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, groups=dim, act=False)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        per_head = self.qkv(x).view(b, self.num_heads, 2 * self.key_dim + self.head_dim, h * w)
        q, k, v = per_head.split((self.key_dim, self.key_dim, self.head_dim), dim=2)  # [B, heads, d, HW]
        attn = ((q * self.scale).transpose(-2, -1) @ k).softmax(dim=-1)  # [B, heads, HW, HW]
        out = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(out)


class PSABlock(nn.Module):
    """Attention then a two-layer 1 x 1 feed-forward, each with a residual."""

    def __init__(self, channels: int, attn_ratio: float = 0.5, num_heads: int = 4) -> None:
        super().__init__()
        self.attn = Attention(channels, num_heads, attn_ratio)
        self.ffn = nn.Sequential(Conv(channels, 2 * channels, 1), Conv(2 * channels, channels, 1, act=False))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(x)
        return x + self.ffn(x)


@register(repeats="n")
class C2PSA(nn.Module):
    """CSP stage of ``n`` PSA blocks (YOLO11): a 1 x 1 conv splits, one half goes through the blocks, a 1 x 1 conv
    merges. It keeps its channel count: ``out_channels`` must equal ``in_channels``."""

    def __init__(self, in_channels: int, out_channels: int, n: int = 1, expansion: float = 0.5) -> None:
        super().__init__()
        if in_channels != out_channels:
            raise ValueError(f"C2PSA keeps its channels: in_channels={in_channels}, out_channels={out_channels}")
        self.hidden = int(in_channels * expansion)
        self.out_channels = out_channels
        self.split = Conv(in_channels, 2 * self.hidden, 1)
        heads = max(self.hidden // 64, 1)
        self.blocks = nn.Sequential(*(PSABlock(self.hidden, 0.5, heads) for _ in range(n)))
        self.merge = Conv(2 * self.hidden, in_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.split(x).split((self.hidden, self.hidden), dim=1)
        return self.merge(torch.cat((a, self.blocks(b)), dim=1))
