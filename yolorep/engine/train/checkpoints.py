"""Checkpoints as a training policy: ``last.pt`` and ``best.pt`` after each epoch, and how a stopped run gets back a
``best.pt`` it did not finish writing.

``last.pt`` is written first and holds everything ``best.pt`` would (the same EMA weights and metadata, and
``best_epoch``): a run stopped between the two writes is repaired on resume by ``restore_best``. (Writing
``best.pt`` first instead leaves a gap in the first epoch, before any ``last.pt`` exists.)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from yolorep.engine.checkpoint import save_checkpoint, write_atomic
from yolorep.engine.train.hooks import Hook
from yolorep.engine.train.trainer import Trainer

__all__ = ["Checkpointer", "restore_best"]

LOGGER = logging.getLogger(__name__)


class Checkpointer(Hook):
    """After every epoch write ``last.pt`` (the model of record, metadata and the trainer's resume record), then
    ``best.pt`` (model and metadata) when the epoch is the best so far (``trainer.state.best_epoch``); with
    ``save_period`` N, every N epochs also ``epochN.pt`` (model and metadata, as ``best.pt``; epochs counted from 1),
    written before ``last.pt``: a run stopped between the two trains that epoch again and writes it again.

    Args:
        weights_dir: where they go (the run's ``weights``).
        train_args: the run's options, stored for ``--resume``; ``save_period`` is read from them.
        eval_args: ``imgsz``, ``conf``, ``iou`` and ``max_det``, which ``yolorep val`` reuses.
    """

    def __init__(self, weights_dir: Path, train_args: dict[str, Any], eval_args: dict[str, Any]) -> None:
        self.weights_dir, self.train_args, self.eval_args = weights_dir, train_args, eval_args
        self.save_period = int(train_args.get("save_period") or 0)

    def on_save(self, trainer: Any) -> None:
        meta = {
            "epoch": trainer.last_epoch,
            "metrics": {k: v for k, v in trainer.metrics.items() if k != "per_class"},
            "train_args": self.train_args,
            "eval_args": self.eval_args,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        model, epochs = trainer.eval_model, trainer.last_epoch + 1
        if self.save_period > 0 and epochs % self.save_period == 0:
            save_checkpoint(model, self.weights_dir / f"epoch{epochs}.pt", **meta)
        save_checkpoint(model, self.weights_dir / "last.pt", **{**meta, **trainer.state_dict()})
        if trainer.state.best_epoch == trainer.last_epoch:
            save_checkpoint(model, self.weights_dir / "best.pt", **meta)


def restore_best(last: Path, checkpoint: dict[str, Any]) -> bool:
    """Write ``best.pt`` from ``last.pt`` when the epoch ``last.pt`` holds was the best and ``best.pt`` does not
    hold it (the run stopped between the two writes). Returns whether it did."""
    record = Trainer.best_checkpoint(checkpoint)
    best = last.parent / "best.pt"
    if record is None:
        return False
    if best.is_file():
        try:
            if torch.load(best, map_location="cpu", weights_only=True).get("epoch") == record["epoch"]:
                return False
        except Exception:  # an unreadable best.pt is replaced too
            pass
    write_atomic(record, best)
    LOGGER.info("%s: restored from %s (the run stopped before writing it)", best, last.name)
    return True
