"""Multi-scale training as a policy: each batch resized to a random size around ``imgsz`` (``--multi-scale``)."""

from __future__ import annotations

import math
import random
from typing import Any

import torch
from torch.nn import functional as F

from yolorep.engine.train import distributed
from yolorep.engine.train.hooks import Hook

__all__ = ["MultiScale", "largest_size"]


def largest_size(imgsz: int, spread: float, stride: int) -> int:
    """The largest size ``MultiScale`` draws (AutoBatch measures memory at it)."""
    return math.ceil(imgsz * (1 + spread) / stride) * stride


class MultiScale(Hook):
    """Resize every training batch so that its longer side is a size drawn from ``imgsz * (1 - spread)`` to
    ``imgsz * (1 + spread)``, rounded down to a multiple of ``stride`` (at least ``stride``), as ultralytics'
    ``multi_scale`` does; the other side keeps the aspect ratio, rounded up to a multiple of ``stride``. Boxes
    scale with the images. Validation keeps ``imgsz``.

    The draws come from a generator seeded by the run's seed, the epoch and the rank, so a resumed run draws the
    same sizes, and augmentation draws are the same with or without multi-scale.

    Args:
        imgsz: the training image size.
        spread: ``multi_scale``, in (0, 1).
        stride: the model's largest stride.
    """

    def __init__(self, imgsz: int, spread: float, stride: int) -> None:
        self.low = max(stride, int(imgsz * (1 - spread))) // stride * stride
        self.high = max(self.low, int(imgsz * (1 + spread)) // stride * stride)
        self.stride = stride
        self.sizes = random.Random()

    def on_train_epoch_start(self, trainer: Any) -> None:
        self.sizes.seed(f"{trainer.settings.seed}/{trainer.epoch}/{distributed.rank()}")

    def on_train_batch_start(self, trainer: Any) -> None:
        batch = trainer.batch
        size = self.sizes.randrange(self.low, self.high + 1, self.stride)
        height, width = batch.images.shape[2:]
        scale = size / max(height, width)
        shape = [math.ceil(side * scale / self.stride) * self.stride for side in (height, width)]
        if shape == [height, width]:
            return
        with trainer.timer("to_device"):  # resized where the model is: a GPU does it in no time
            images = batch.images.to(trainer.device, non_blocking=True).float()
            images = F.interpolate(images, size=shape, mode="bilinear", align_corners=False)
            images = images.round_().clamp_(0, 255).to(torch.uint8)  # still the loader's uint8 images
        targets = batch.targets.clone()  # [n, 6] (image, class, x1, y1, x2, y2) in pixels
        targets[:, [2, 4]] *= shape[1] / width
        targets[:, [3, 5]] *= shape[0] / height
        trainer.batch = batch._replace(images=images, targets=targets)
