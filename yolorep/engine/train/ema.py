"""The exponential moving average of the weights as a training policy: what is validated and saved."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from yolorep.engine.train.hooks import Hook
from yolorep.engine.train.optim import ModelEMA

__all__ = ["EMA"]


class EMA(Hook):
    """Keep ``ModelEMA`` of ``model``, updated after every optimizer step, its warm-up fitted to the plan at the
    start of each epoch (``Schedule.ema_tau``). ``trainer.ema`` is its ``average``.

    Args:
        model: the trained model (DDP-wrapped or not).
        decay: the decay the average approaches (hyp ``ema_decay``).
        tau: the warm-up asked for, in updates (hyp ``ema_tau``); short plans get less.
    """

    def __init__(self, model: nn.Module, decay: float, tau: float) -> None:
        self.average = ModelEMA(model, decay, tau)
        self.tau_asked = tau

    def on_train_epoch_start(self, trainer: Any) -> None:
        updates_per_epoch = math.ceil(len(trainer.train_loader) / trainer.accumulate)
        self.average.tau = trainer.schedule.ema_tau(self.tau_asked, updates_per_epoch)

    def on_optimizer_step(self, trainer: Any) -> None:
        with trainer.timer("ema"):
            self.average.update(trainer.model)

    def state_dict(self) -> dict[str, Any]:
        return {"ema_updates": self.average.updates}  # its weights are the checkpoint's own model

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average.updates = int(state["ema_updates"])
