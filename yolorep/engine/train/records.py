"""What the training loop hands its hooks: its settings, the epoch and batch being trained, and a read-only
summary of the run so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

__all__ = ["Batch", "EpochRecord", "LoopSettings", "TrainState"]


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs besides its objects.

    Args:
        hyp: hyperparameters; the loop reads ``amp``, ``nbs``, ``grad_clip`` and the warm-up's ``warmup_bias_lr``,
            ``warmup_momentum`` and ``momentum``.
        device: where the model trains.
        save_dir: the run folder (hooks write into it; only rank 0 writes).
        seed: the run's seed; each epoch is seeded from it and the epoch.
        profile: synchronise a GPU at the end of each timed phase, so ``trainer.timer`` attributes exactly.
    """

    hyp: dict[str, Any]
    device: torch.device
    save_dir: Path
    seed: int
    profile: bool


@dataclass
class EpochRecord:
    """What the loop measured of the epoch being trained, for hooks (results rows, the time budget)."""

    started: float  # time.perf_counter() at its start
    train_seconds: float = 0.0  # its batches and the scheduler step
    images: int = 0  # training images seen, all ranks
    validated: bool = False  # set by validation (on_validate)
    val_seconds: float = 0.0  # validation and on_val_end, when it validated
    lr: list[float] = field(default_factory=list)  # each parameter group's learning rate at its last batch


class Batch(NamedTuple):
    """The batch being trained: images [B, 3, H, W] uint8, targets [N, 6] (image, class, box xyxy in pixels), as
    the loader gave it or as an ``on_train_batch_start`` hook replaced it (multi-scale)."""

    index: int
    images: torch.Tensor
    targets: torch.Tensor


@dataclass(frozen=True)
class TrainState:
    """A read-only summary for callbacks: the last completed epoch and what the hooks keep."""

    epoch: int = -1  # last completed epoch (0-based)
    best_fitness: float = -1.0
    best_epoch: int = -1  # the epoch best.pt holds
    epochs_without_improvement: int = 0
    history: list[dict[str, float]] = field(default_factory=list)  # results rows (the list itself)
    elapsed: float = 0.0  # seconds of fitting so far, earlier processes of a resumed run included
    cycles: list[float] = field(default_factory=list)  # wall seconds of each epoch: training to saving
