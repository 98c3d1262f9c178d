"""Shared test utilities."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

# Short, stable schedules for tiny runs: no warm-up (so a few steps move the weights), no mosaic at 64 px.
TINY_HYP = {"warmup_epochs": 0.0, "close_mosaic": 0, "mosaic": 0.0, "scale": 0.2, "translate": 0.05}


def randomize_batchnorm(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters (a fresh BN is nearly the identity and
    hides fuse bugs)."""
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            n = m.num_features

            def uniform(low: float, high: float, n: int = n) -> torch.Tensor:
                return torch.rand(n, generator=generator) * (high - low) + low

            m.running_mean.copy_(uniform(-1.0, 1.0))
            m.running_var.copy_(uniform(0.3, 3.0))
            if m.weight is not None:
                m.weight.data.copy_(uniform(0.4, 1.6))
                m.bias.data.copy_(uniform(-0.5, 0.5))
    return module


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-12))


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) for m in module.modules())
