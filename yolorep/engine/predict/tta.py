"""Test-time augmentation (``predict --augment``, ``val --augment``): the model also sees each image flipped
left-right and scaled down, and NMS runs over the union of what every view found.

The views are ultralytics' (full size; 0.83 flipped; 0.67), so ``--augment`` means the same thing there and here.
Each view's boxes are mapped back to the input's pixels before the union, so the output has the layout of the
model's own: [B, N_1 + N_2 + N_3, 4 + nc].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from yolorep.engine.deploy.base import Backend

__all__ = ["TTA_VIEWS", "AugmentedBackend"]

# (scale, flipped left-right) of each view
TTA_VIEWS = ((1.0, False), (0.83, True), (0.67, False))
PAD_VALUE = 114 / 255  # the letterbox grey


class AugmentedBackend(Backend):
    """``backend`` run on every view of ``TTA_VIEWS``; boxes in the input's pixels, views concatenated.

    A scaled view is resized (bilinear) and padded at the right and bottom with the letterbox grey: to a stride
    multiple for a dynamic model, to the fixed input for a fixed-shape export, so every backend can run it.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.format = backend.format
        super().__init__(backend.source, backend.info, backend.device)

    def describe(self) -> str:
        return f"{self.backend.describe()} with test-time augmentation (flip, scales 1/0.83/0.67)"

    def __call__(self, images: Tensor) -> Tensor:
        """[B, 3, H, W] float in 0..1 -> [B, 3 * N', 4 + nc] float32, boxes in ``images``' pixels."""
        height, width = images.shape[2:]
        outputs = []
        for scale, flipped in TTA_VIEWS:
            view, (h, w) = images, (height, width)
            if scale != 1.0:
                h, w = max(1, round(height * scale)), max(1, round(width * scale))
                view = F.interpolate(images, size=(h, w), mode="bilinear", align_corners=False)
            if flipped:
                view = view.flip(-1)
            if (h, w) != (height, width):
                padded = (height, width) if not self.dynamic else tuple(self._stride_multiple(v) for v in (h, w))
                view = F.pad(view, (0, padded[1] - w, 0, padded[0] - h), value=PAD_VALUE)
            out = self.backend(view)  # [B, N, 4 + nc], boxes in the view's pixels
            boxes = out[..., :4]
            if flipped:  # mirror x back inside the view's own width (the padding is on the right)
                boxes = torch.stack((w - boxes[..., 2], boxes[..., 1], w - boxes[..., 0], boxes[..., 3]), -1)
            gain = boxes.new_tensor([width / w, height / h, width / w, height / h])
            outputs.append(torch.cat((boxes * gain, out[..., 4:]), -1))
        return torch.cat(outputs, 1)

    def _stride_multiple(self, size: int) -> int:
        return math.ceil(size / self.stride) * self.stride
