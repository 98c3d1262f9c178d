"""Optimizer and the exponential moving average of weights (the learning-rate schedule is ``schedule.py``)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

__all__ = ["ModelEMA", "build_optimizer", "resolve_optimizer"]


def resolve_optimizer(name: str, nc: int, iterations: int, lr0: float, lr0_set: bool = False) -> tuple[str, float]:
    """``auto`` picks AdamW with a class-count-scaled learning rate for short schedules (small data converges in
    few epochs with it) and SGD at 0.01 for long ones, as YOLOv8 does; an ``lr0`` the user set (``lr0_set``) is
    kept rather than replaced."""
    if name != "auto":
        return name, lr0
    if iterations > 10_000:
        return "SGD", lr0 if lr0_set else 0.01
    return "AdamW", lr0 if lr0_set else round(0.002 * 5 / (4 + nc), 6)


def build_optimizer(
    model: nn.Module, name: str, lr: float, momentum: float = 0.937, weight_decay: float = 5e-4
) -> torch.optim.Optimizer:
    """Three parameter groups: conv/linear weights (with weight decay), normalisation weights and biases (without).

    Decaying BatchNorm scales or biases only shrinks them toward a worse function, so they are left out.
    """
    decay, no_decay, biases = [], [], []
    for module in model.modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if param_name == "bias":
                biases.append(param)
            elif isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)):
                no_decay.append(param)
            else:
                decay.append(param)
    if name == "SGD":
        optimizer = torch.optim.SGD(no_decay, lr=lr, momentum=momentum, nesterov=True)
    elif name == "AdamW":
        optimizer = torch.optim.AdamW(no_decay, lr=lr, betas=(momentum, 0.999), weight_decay=0.0)
    else:
        raise ValueError(f"optimizer {name!r} is not supported; use SGD, AdamW or auto")
    optimizer.add_param_group({"params": decay, "weight_decay": weight_decay})
    optimizer.add_param_group({"params": biases, "weight_decay": 0.0})
    return optimizer


class ModelEMA:
    """Exponential moving average of a model's weights and buffers (Polyak averaging), with a decay that ramps
    up over the first ``tau`` updates so early, poor weights are forgotten quickly."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000, updates: int = 0) -> None:
        self.ema = copy.deepcopy(getattr(model, "module", model)).eval().requires_grad_(False)
        self.decay_max, self.tau, self.updates = decay, tau, updates

    def decay(self) -> float:
        return self.decay_max * (1 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay()
        source = getattr(model, "module", model).state_dict()
        for key, value in self.ema.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(source[key].detach(), alpha=1 - d)
            else:
                value.copy_(source[key])

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "state_dict": self.ema.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.ema.load_state_dict(state["state_dict"])
