"""The optimizer a run trains with, and ``optimizer: auto`` under a time budget as a training policy.

``auto`` picks by the length of the run in optimizer updates (``resolve_optimizer``: AdamW for at most 10,000,
SGD beyond). With ``--time`` that length is unknown until the first epoch has been timed: sizing it on the epoch
cap (10,000 epochs when ``--epochs`` is not given) picked SGD for runs of a few minutes. So a budgeted run trains
its first epoch with the short-run choice (AdamW, during warm-up), and once the plan is fitted to the budget from
the first epoch's time, ``AutoOptimizer`` picks on the epochs planned, the same with or without ``--epochs`` when
the cap is not what limits the plan; a different pick replaces the optimizer (and its scheduler) from the second
epoch on. The choice travels in ``last.pt``, so a resumed run builds the optimizer it had.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from yolorep.engine.train import distributed
from yolorep.engine.train.hooks import Hook
from yolorep.engine.train.optim import build_optimizer, resolve_optimizer

__all__ = ["AutoOptimizer", "OptimizerSettings", "build_run_optimizer"]

LOGGER = logging.getLogger(__name__)
STATE_KEY = "optimizer_choice"


@dataclass(frozen=True)
class OptimizerSettings:
    """What choosing and building a run's optimizer takes.

    Args:
        asked: the hyperparameter ``optimizer`` (``auto``, ``SGD`` or ``AdamW``).
        nc: classes (``auto`` scales AdamW's learning rate by them).
        updates_per_epoch: optimizer updates an epoch makes (images / the larger of the total batch and ``nbs``).
        lr0: the hyperparameter ``lr0``; ``lr0_set``: whether the user set it (``auto`` then keeps it).
        momentum: SGD momentum / Adam beta1.
        weight_decay: already scaled to the nominal batch.
    """

    asked: str
    nc: int
    updates_per_epoch: int
    lr0: float
    lr0_set: bool
    momentum: float
    weight_decay: float

    @classmethod
    def of_run(cls, args: dict[str, Any], n_images: int, batch: int, nc: int) -> OptimizerSettings:
        """From a run's plain options; ``batch`` is per rank."""
        hyp, world = args["hyp"], distributed.world_size()
        accumulate = max(round(hyp["nbs"] / (batch * world)), 1)
        return cls(
            asked=args["optimizer"],
            nc=nc,
            updates_per_epoch=math.ceil(n_images / max(batch * world, hyp["nbs"])),
            lr0=hyp["lr0"],
            lr0_set="lr0" in args.get("hyp_set", ()),
            momentum=hyp["momentum"],
            weight_decay=hyp["weight_decay"] * batch * world * accumulate / hyp["nbs"],
        )

    def choose(self, epochs: int) -> tuple[str, float]:
        """The optimizer and ``lr0`` for a plan of ``epochs``."""
        return resolve_optimizer(self.asked, self.nc, self.updates_per_epoch * epochs, self.lr0, self.lr0_set)


class AutoOptimizer(Hook):
    """Record the run's optimizer and, for ``auto`` under a time budget, pick it again on the epochs the budget
    allows once the first epoch has fitted the plan (see the module docstring).

    Args:
        settings: how the optimizer is chosen and built.
        name, lr0: the optimizer the run was built with.
        decided: whether that choice is final (False: chosen provisionally, before the budget's plan was known).
    """

    def __init__(self, settings: OptimizerSettings, name: str, lr0: float, decided: bool) -> None:
        self.settings, self.name, self.lr0, self.decided = settings, name, lr0, decided

    def on_train_epoch_start(self, trainer: Any) -> None:
        # from the second epoch on, every rank holds the plan rank 0 fitted after the first
        if self.decided or trainer.epoch < 1:
            return
        self.decided = True
        name, lr0 = self.settings.choose(trainer.epochs)
        updates = self.settings.updates_per_epoch * trainer.epochs
        if (name, lr0) == (self.name, self.lr0):
            LOGGER.info("optimizer auto: %s lr0=%g kept for the %d epochs (%d updates) the budget allows", name, lr0,
                        trainer.epochs, updates)  # fmt: skip
            return
        LOGGER.info(
            "optimizer auto: %s lr0=%g from epoch %d for the %d epochs (%d updates) the budget allows (epoch 1 "
            "trained with %s)", name, lr0, trainer.epoch + 1, trainer.epochs, updates, self.name,
        )  # fmt: skip
        self.name, self.lr0 = name, lr0
        trainer.optimizer, trainer.scheduler = _rebuilt(trainer, self.settings, name, lr0)

    def state_dict(self) -> dict[str, Any]:
        return {STATE_KEY: {"name": self.name, "lr0": self.lr0, "decided": self.decided}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if STATE_KEY in state:  # older last.pt files built their optimizer from train_args alone: nothing to change
            self.decided = bool(state[STATE_KEY]["decided"])


def _rebuilt(
    trainer: Any, settings: OptimizerSettings, name: str, lr0: float
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """A new optimizer (same parameter groups) and a scheduler at the current epoch of the same plan."""
    optimizer = build_optimizer(trainer.raw_model, name, lr0, settings.momentum, settings.weight_decay)
    for group in optimizer.param_groups:
        group["initial_lr"] = lr0
    # constructed one epoch back, a LambdaLR steps once: it then sets each group's lr to lr0 * schedule(epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, trainer.schedule, last_epoch=trainer.epoch - 1)
    return optimizer, scheduler


def build_run_optimizer(
    model: nn.Module, settings: OptimizerSettings, epochs: int, budgeted: bool, stored: dict[str, Any] | None
) -> tuple[torch.optim.Optimizer, AutoOptimizer]:
    """The optimizer a run starts (or resumes) with and the hook that keeps its choice.

    Args:
        epochs: the epochs planned (with a budget, its cap).
        budgeted: the run has a time budget, whose epochs are known after the first.
        stored: the choice a resumed ``last.pt`` holds (``train_state["optimizer_choice"]``), if any.
    """
    if stored is not None:
        name, lr0, decided = stored["name"], float(stored["lr0"]), bool(stored["decided"])
    elif settings.asked == "auto" and budgeted:
        (name, lr0), decided = settings.choose(1), False  # the short-run choice until the budget's plan is known
    else:
        (name, lr0), decided = settings.choose(epochs), True
    optimizer = build_optimizer(model, name, lr0, settings.momentum, settings.weight_decay)
    if distributed.is_main_process():
        pending = ", until the first epoch's time shows the epochs the --time budget allows" if not decided else ""
        LOGGER.info("optimizer %s lr0=%g%s%s", name, lr0, " (auto)" if settings.asked == "auto" else "", pending)
    return optimizer, AutoOptimizer(settings, name, lr0, decided)
