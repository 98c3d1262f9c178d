"""What a training run writes after each epoch (``last.pt``, ``best.pt``) and how a stopped run gets back a
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

__all__ = ["restore_best", "save_epoch"]

LOGGER = logging.getLogger(__name__)


def save_epoch(trainer: Any, best: bool) -> None:
    """Write ``last.pt`` (EMA weights, metadata and the training state to resume from), then ``best.pt``."""
    hyp, state = trainer.hyp, trainer.state
    meta = {
        "epoch": state.epoch,
        "metrics": {k: v for k, v in trainer.metrics.items() if k != "per_class"},
        "train_args": trainer.train_args,
        "eval_args": {
            "imgsz": int(trainer.train_args.get("imgsz", 640)),
            "conf": float(hyp["val_conf"]),
            "iou": float(hyp["val_iou"]),
            "max_det": int(hyp["max_det"]),
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    train_state = {
        "model": {k: v.detach().cpu() for k, v in trainer.raw_model.state_dict().items()},
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "ema_updates": trainer.ema.updates,
        "best_fitness": state.best_fitness,
        "best_epoch": state.best_epoch,
        "epochs_without_improvement": state.epochs_without_improvement,
        "history": state.history,
        "elapsed": trainer.elapsed,
        "cycles": state.cycles,
    }
    save_checkpoint(trainer.ema.ema, trainer.weights_dir / "last.pt", **meta, train_state=train_state)
    if best:
        save_checkpoint(trainer.ema.ema, trainer.weights_dir / "best.pt", **meta)


def restore_best(last: Path, checkpoint: dict[str, Any]) -> bool:
    """Write ``best.pt`` from ``last.pt`` when the epoch ``last.pt`` holds was the best and ``best.pt`` does not
    hold it (the run stopped between the two writes). Returns whether it did."""
    best_epoch = checkpoint["train_state"].get("best_epoch")
    best = last.parent / "best.pt"
    if best_epoch != checkpoint["epoch"]:
        return False
    if best.is_file():
        try:
            if torch.load(best, map_location="cpu", weights_only=True).get("epoch") == best_epoch:
                return False
        except Exception:  # an unreadable best.pt is replaced too
            pass
    write_atomic({k: v for k, v in checkpoint.items() if k != "train_state"}, best)
    LOGGER.info("%s: restored from %s (the run stopped before writing it)", best, last.name)
    return True
