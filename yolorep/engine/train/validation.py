"""Validation during training as a policy: a fused copy of the EMA model, every few epochs and always the last."""

from __future__ import annotations

from typing import Any

from yolorep.engine.train.hooks import Hook
from yolorep.engine.val.validator import Validator
from yolorep.nn.fuse import fused_copy

__all__ = ["Validation"]


class Validation(Hook):
    """Validate a fused copy of the model of record (the EMA) into ``trainer.metrics`` every ``period`` epochs and
    at the plan's last epoch; best.pt is chosen among the validated epochs.

    Args:
        validator: the per-epoch validator (the internal estimate; best.pt is re-scored by pycocotools at the end).
        period: validate every this many epochs.
    """

    def __init__(self, validator: Validator, period: int) -> None:
        self.validator, self.period = validator, period

    def on_validate(self, trainer: Any) -> None:
        done = trainer.epoch + 1
        if done % self.period and done < trainer.epochs:
            return
        with trainer.timer("fuse"):
            fused = fused_copy(trainer.eval_model)
        with trainer.timer("validation"):
            trainer.metrics = self.validator(fused, trainer.device)
        trainer.this_epoch.validated = True
