"""``Results``: the detections of one image or video frame, with a ``Boxes`` view in the formats users need,
drawing and saving."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from yolorep.atomic import write_text_atomic
from yolorep.engine.sources import VideoInfo
from yolorep.ops import xyxy_to_cxcywh, xyxy_to_ltwh

__all__ = ["Boxes", "Result", "Results"]


class Boxes:
    """A view of N detections of one image, in original-image pixels.

    Args:
        data: [N, 6] float32 rows ``(x1, y1, x2, y2, conf, cls)``, as NMS returns them mapped back to the image.
        orig_shape: ``(height, width)`` of the image, for the normalised forms.
        ids: [N] int64 track identities when tracking (``YOLO.track``, ``yolorep track``), else None.
    """

    def __init__(self, data: Tensor, orig_shape: tuple[int, int], ids: Tensor | None = None) -> None:
        if data.ndim != 2 or data.shape[1] != 6:
            raise ValueError(f"Boxes: expected [N, 6] rows (x1, y1, x2, y2, conf, cls), got {tuple(data.shape)}")
        if ids is not None and tuple(ids.shape) != (data.shape[0],):
            raise ValueError(f"Boxes: expected one id per box, [{data.shape[0]}], got {tuple(ids.shape)}")
        self.data, self.orig_shape, self._ids = data, tuple(orig_shape), ids

    @property
    def id(self) -> Tensor | None:
        """[N] int64 track identities, or None when the boxes come from ``predict`` (no tracking)."""
        return self._ids

    @property
    def is_track(self) -> bool:
        return self._ids is not None

    @property
    def xyxy(self) -> Tensor:
        """[N, 4] corners (x1, y1, x2, y2), pixels."""
        return self.data[:, :4]

    @property
    def xywh(self) -> Tensor:
        """[N, 4] centre and size (cx, cy, w, h), pixels (ultralytics' ``xywh``)."""
        return xyxy_to_cxcywh(self.xyxy)

    @property
    def xyxyn(self) -> Tensor:
        """[N, 4] corners divided by the image width and height."""
        return self.xyxy / self._scale

    @property
    def xywhn(self) -> Tensor:
        """[N, 4] centre and size divided by the image width and height (YOLO label format)."""
        return self.xywh / self._scale

    @property
    def conf(self) -> Tensor:
        """[N] confidences."""
        return self.data[:, 4]

    @property
    def cls(self) -> Tensor:
        """[N] int64 class indices."""
        return self.data[:, 5].long()

    @property
    def _scale(self) -> Tensor:
        h, w = self.orig_shape
        return torch.tensor([w, h, w, h], dtype=self.data.dtype, device=self.data.device)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: Any) -> Boxes:
        data = self.data[index]
        ids = None if self._ids is None else self._ids[index].reshape(-1)
        return Boxes(data.reshape(-1, 6), self.orig_shape, ids)

    def __repr__(self) -> str:
        tracked = ", tracked" if self.is_track else ""
        return f"Boxes({len(self)} detections{tracked}, orig_shape={self.orig_shape})"


@dataclass
class Results:
    """Detections in one image or video frame, in original-image pixels."""

    boxes: Boxes  # .xyxy .xywh .xyxyn .xywhn .conf .cls .data
    names: list[str]  # class names of the model
    orig_shape: tuple[int, int]  # (height, width) of the original image
    path: str  # source file ("webcam0" for a webcam, "image0" ... for in-memory images)
    frame: int | None = None  # frame number in its video, None for a still image
    orig_image: np.ndarray | None = field(default=None, repr=False)  # [H, W, 3] uint8 BGR
    video: VideoInfo | None = field(default=None, repr=False)  # the source video's fps and size

    @property
    def scores(self) -> Tensor:
        """[N] confidences (``boxes.conf``)."""
        return self.boxes.conf

    @property
    def classes(self) -> Tensor:
        """[N] int64 class indices (``boxes.cls``)."""
        return self.boxes.cls

    def __len__(self) -> int:
        return len(self.boxes)

    def plot(self) -> np.ndarray:
        """The original image with boxes, class names and scores drawn on a copy: [H, W, 3] uint8 BGR. Tracked
        boxes are coloured by identity and labelled ``id:7 name score``."""
        from yolorep.plots import draw_boxes

        if self.orig_image is None:
            raise ValueError(f"{self.path}: this result holds no image to draw on")
        ids = self.boxes.id
        return draw_boxes(self.orig_image, self.boxes.xyxy, self.boxes.cls, self.names, self.boxes.conf, ids=ids)

    def save(self, path: str | Path) -> Path:
        """Write the annotated image to ``path`` (format from its suffix, e.g. ``.jpg``, ``.png``)."""
        from yolorep.plots import write_image

        return write_image(path, self.plot())

    def to_txt_lines(self) -> list[str]:
        """YOLO label lines ``cls cx cy w h score``, coordinates normalised by the original width and height."""
        rows = zip(self.boxes.cls.tolist(), self.boxes.xywhn.tolist(), self.boxes.conf.tolist())
        return [f"{c} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f} {s:.6f}" for c, (cx, cy, bw, bh), s in rows]

    def save_txt(self, path: str | Path) -> Path:
        """Write ``to_txt_lines()`` to ``path``, one detection per line."""
        return write_text_atomic(path, "".join(f"{line}\n" for line in self.to_txt_lines()))

    def to_json(self) -> list[dict[str, Any]]:
        """COCO-style detections: ``bbox`` [x, y, w, h] (top-left corner, size) in original pixels; ``category_id``
        is the model's class index; ``id`` the track identity when tracking; ``image`` is the source's file name and
        ``path`` the source as given. ``json.dumps`` it, or use ``to_json_str``."""
        image = Path(self.path).name
        rows = zip(self.boxes.cls.tolist(), xyxy_to_ltwh(self.boxes.xyxy).tolist(), self.boxes.conf.tolist())
        records = [
            {
                "image": image,
                "path": self.path,
                "frame": self.frame,
                "category_id": c,
                "name": self.names[c] if 0 <= c < len(self.names) else str(c),
                "bbox": [round(v, 3) for v in box],
                "score": round(s, 5),
            }
            for c, box, s in rows
        ]
        if self.boxes.id is not None:  # tracking: each record also names its identity
            for record, track_id in zip(records, self.boxes.id.tolist()):
                record["id"] = track_id
        return records

    def to_json_str(self) -> str:
        return json.dumps(self.to_json())


Result = Results  # the name before Boxes existed
