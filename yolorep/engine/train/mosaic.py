"""Mosaic closing as a training policy: the last epochs of the plan train on single images."""

from __future__ import annotations

import logging
from typing import Any

from yolorep.engine.train.hooks import Hook

__all__ = ["MosaicClosing"]

LOGGER = logging.getLogger(__name__)


class MosaicClosing(Hook):
    """Turn mosaic off for the plan's last ``Schedule.close_mosaic`` epochs (and on again when a time budget's plan
    grows past them). Loader workers start anew each epoch, so they pick the change up."""

    def on_train_epoch_start(self, trainer: Any) -> None:
        dataset = trainer.train_loader.dataset
        mosaic = dataset.augment and not dataset.rect and not trainer.schedule.mosaic_closed(trainer.epoch)
        if mosaic == dataset.mosaic_enabled:
            return
        if mosaic:
            LOGGER.info("mosaic on again: the plan grew to %d epochs", trainer.epochs)
        else:
            LOGGER.info("closing mosaic for the last %d epochs", trainer.epochs - trainer.epoch)
        dataset.mosaic_enabled = mosaic
