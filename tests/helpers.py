"""Shared test utilities."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

# Short, stable schedules for tiny runs: no warm-up (so a few steps move the weights), no mosaic at 64 px.
TINY_HYP = {"warmup_epochs": 0.0, "close_mosaic": 0, "mosaic": 0.0, "scale": 0.2, "translate": 0.05}


def flat(output: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """A model output (one tensor, or the head's per-level maps) as one float64 vector."""
    tensors = output if isinstance(output, (list, tuple)) else [output]
    return torch.cat([t.detach().double().flatten() for t in tensors])


def relative_error(a: torch.Tensor | list[torch.Tensor], b: torch.Tensor | list[torch.Tensor]) -> float:
    """||a - b|| / ||b|| over every value; a and b are tensors or lists of tensors of matching shapes."""
    a, b = flat(a), flat(b)
    assert a.shape == b.shape, f"outputs differ in size: {a.shape} vs {b.shape}"
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) for m in module.modules())


def write_video(path, frames=12, size_wh=(96, 64), fps=10.0, fourcc="mp4v"):
    """A short video of flat frames getting brighter, one grey level step of 10 per frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size_wh)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size_wh[1], size_wh[0], 3), 10 * i, np.uint8))
    writer.release()
    return path
