"""``Result``: the detections of one image or video frame, with the conversions and drawing users need."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from yolorep.engine.sources import VideoInfo
from yolorep.ops import xyxy_to_cxcywh, xyxy_to_ltwh

__all__ = ["Result"]


@dataclass
class Result:
    """Detections in one image or video frame, in original-image pixels."""

    boxes: Tensor  # [N, 4] float32 xyxy, pixels of the original image, clipped to it
    scores: Tensor  # [N] float32
    classes: Tensor  # [N] int64 class indices
    names: list[str]  # class names of the model
    orig_shape: tuple[int, int]  # (height, width) of the original image
    path: str  # source file ("webcam0" for a webcam, "image0" ... for numpy input)
    frame: int | None = None  # frame number in its video, None for a still image
    orig_image: np.ndarray | None = field(default=None, repr=False)  # [H, W, 3] uint8 BGR
    video: VideoInfo | None = field(default=None, repr=False)  # the source video's fps and size

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def plot(self) -> np.ndarray:
        """The original image with boxes, class names and scores drawn on a copy: [H, W, 3] uint8 BGR."""
        from yolorep.plots import draw_boxes

        if self.orig_image is None:
            raise ValueError(f"{self.path}: this result holds no image to draw on")
        return draw_boxes(self.orig_image, self.boxes, self.classes, self.names, self.scores)

    def to_txt_lines(self) -> list[str]:
        """YOLO label lines ``cls cx cy w h score``, coordinates normalised by the original width and height."""
        h, w = self.orig_shape
        boxes_cxcywh = xyxy_to_cxcywh(self.boxes) / torch.tensor([w, h, w, h], dtype=self.boxes.dtype)
        return [
            f"{c} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f} {s:.6f}"
            for c, (cx, cy, bw, bh), s in zip(self.classes.tolist(), boxes_cxcywh.tolist(), self.scores.tolist())
        ]

    def to_json(self) -> list[dict[str, Any]]:
        """COCO-style detections: ``bbox`` [x, y, w, h] (top-left corner, size) in original pixels; ``category_id``
        is the model's class index."""
        image = Path(self.path).name
        return [
            {
                "image": image,
                "frame": self.frame,
                "category_id": c,
                "name": self.names[c] if 0 <= c < len(self.names) else str(c),
                "bbox": [round(v, 3) for v in box],
                "score": round(s, 5),
            }
            for c, box, s in zip(self.classes.tolist(), xyxy_to_ltwh(self.boxes).tolist(), self.scores.tolist())
        ]
