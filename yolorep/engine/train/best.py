"""The best model and patience as a training policy: which validated epoch best.pt holds, and early stopping."""

from __future__ import annotations

import logging
from typing import Any

from yolorep.engine.train.hooks import Hook

__all__ = ["BestModel", "fitness"]

LOGGER = logging.getLogger(__name__)


def fitness(metrics: dict[str, Any]) -> float:
    """What "best" means: mAP50-95, with a little mAP50 to break ties early in training."""
    return 0.9 * metrics["map50_95"] + 0.1 * metrics["map50"]


class BestModel(Hook):
    """Score each validated epoch by ``fitness``; the best so far is the one best.pt holds (``best_epoch``).

    Args:
        patience: stop after this many validated epochs without improvement; 0 never stops.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_fitness = -1.0
        self.best_epoch = -1  # the epoch best.pt holds
        self.epochs_without_improvement = 0

    def on_review(self, trainer: Any) -> None:
        if trainer.this_epoch.validated:
            score = fitness(trainer.metrics)
            improved = score > self.best_fitness
            self.best_fitness = max(score, self.best_fitness)
            self.best_epoch = trainer.epoch if improved else self.best_epoch
            self.epochs_without_improvement = 0 if improved else self.epochs_without_improvement + 1
        if self.patience and self.epochs_without_improvement >= self.patience:
            LOGGER.info("no improvement for %d epochs: stopping early", self.patience)
            trainer.stop = True

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_fitness": self.best_fitness,
            "best_epoch": self.best_epoch,
            "epochs_without_improvement": self.epochs_without_improvement,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_fitness = float(state["best_fitness"])
        self.best_epoch = int(state.get("best_epoch", self.best_epoch))
        self.epochs_without_improvement = int(state.get("epochs_without_improvement", self.epochs_without_improvement))
