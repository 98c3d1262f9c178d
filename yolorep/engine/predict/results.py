"""``Results``: the detections of one image or video frame, with a ``Boxes`` view in the formats users need,
drawing and saving. The names and return types follow ultralytics' ``Results`` and ``Boxes`` for detection, so a
script written against them runs on these (see README, "Python API")."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from yolorep.atomic import write_text_atomic
from yolorep.confined import confined
from yolorep.engine.predict.sources import VideoInfo
from yolorep.ops import xyxy_to_cxcywh, xyxy_to_ltwh

__all__ = ["Boxes", "ClassNames", "Result", "Results"]

LOGGER = logging.getLogger(__name__)
Array = Union[Tensor, np.ndarray]


class ClassNames(list):
    """Class names, index = class: a list (as yolorep has always returned) that also answers the ``dict`` methods
    of ultralytics' ``names`` (``{0: "person", ...}``): ``items()``, ``keys()``, ``values()``, ``get()``."""

    def items(self) -> list[tuple[int, str]]:
        return list(enumerate(self))

    def keys(self) -> list[int]:
        return list(range(len(self)))

    def values(self) -> list[str]:
        return list(self)

    def get(self, index: int, default: Any = None) -> Any:
        return self[index] if isinstance(index, int) and 0 <= index < len(self) else default


def _with_torch(data: Array, fn: Any) -> Array:
    """``fn`` applied to ``data`` as a tensor, returned in ``data``'s kind (tensor or numpy)."""
    if isinstance(data, np.ndarray):
        return fn(torch.from_numpy(data)).numpy()
    return fn(data)


class Boxes:
    """A view of N detections of one image, in original-image pixels.

    Args:
        data: [N, 6] float rows ``(x1, y1, x2, y2, conf, cls)`` (a tensor, or a numpy array after ``numpy()``), as
            NMS returns them mapped back to the image.
        orig_shape: ``(height, width)`` of the image, for the normalised forms.
        id: [N] track ids when a tracker assigned them, else None.
    """

    def __init__(self, data: Array, orig_shape: tuple[int, int], id: Array | None = None) -> None:
        if data.ndim != 2 or data.shape[1] != 6:
            raise ValueError(f"Boxes: expected [N, 6] rows (x1, y1, x2, y2, conf, cls), got {tuple(data.shape)}")
        if id is not None and len(id) != len(data):
            raise ValueError(f"Boxes: {len(id)} track ids for {len(data)} boxes; pass one per box")
        self.data, self.orig_shape, self.id = data, tuple(orig_shape), id

    @property
    def is_track(self) -> bool:
        """Whether the boxes carry track ids (``id``)."""
        return self.id is not None

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of ``data``: (N, 6)."""
        return tuple(self.data.shape)

    @property
    def xyxy(self) -> Array:
        """[N, 4] corners (x1, y1, x2, y2), pixels."""
        return self.data[:, :4]

    @property
    def xywh(self) -> Array:
        """[N, 4] centre and size (cx, cy, w, h), pixels (ultralytics' ``xywh``)."""
        return xyxy_to_cxcywh(self.xyxy)

    @property
    def xyxyn(self) -> Array:
        """[N, 4] corners divided by the image width and height."""
        return self.xyxy / self._scale

    @property
    def xywhn(self) -> Array:
        """[N, 4] centre and size divided by the image width and height (YOLO label format)."""
        return self.xywh / self._scale

    @property
    def conf(self) -> Array:
        """[N] confidences."""
        return self.data[:, 4]

    @property
    def cls(self) -> Array:
        """[N] int64 class indices (ultralytics returns them as floats; both index ``names``)."""
        return _with_torch(self.data[:, 5], lambda c: c.long())

    @property
    def _scale(self) -> Array:
        h, w = self.orig_shape
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        if isinstance(self.data, np.ndarray):
            return scale.numpy().astype(self.data.dtype)
        return scale.to(self.data.device, self.data.dtype)

    def _apply(self, fn: Any) -> Boxes:
        return Boxes(fn(self.data), self.orig_shape, None if self.id is None else fn(self.id))

    def cpu(self) -> Boxes:
        """A copy on the CPU (tensors)."""
        return self._apply(lambda t: torch.as_tensor(t).cpu())

    def numpy(self) -> Boxes:
        """A copy holding numpy arrays."""
        return self._apply(lambda t: t if isinstance(t, np.ndarray) else t.detach().cpu().numpy())

    def cuda(self) -> Boxes:
        return self._apply(lambda t: torch.as_tensor(t).cuda())

    def to(self, *args: Any, **kwargs: Any) -> Boxes:
        """A copy moved or cast as ``Tensor.to`` does."""
        return self._apply(lambda t: torch.as_tensor(t).to(*args, **kwargs))

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: Any) -> Boxes:
        ids = None if self.id is None else self.id[index].reshape(-1)
        return Boxes(self.data[index].reshape(-1, 6), self.orig_shape, ids)

    def __repr__(self) -> str:
        return f"Boxes({len(self)} detections, orig_shape={self.orig_shape})"


@dataclass
class Results:
    """Detections in one image or video frame, in original-image pixels."""

    boxes: Boxes  # .xyxy .xywh .xyxyn .xywhn .conf .cls .id .data
    names: list[str]  # class names of the model (a ``ClassNames`` from the predictor)
    orig_shape: tuple[int, int]  # (height, width) of the original image
    path: str  # source file ("webcam0" for a webcam, "image0" ... for in-memory images)
    frame: int | None = None  # frame number in its video, None for a still image
    orig_image: np.ndarray | None = field(default=None, repr=False)  # [H, W, 3] uint8 BGR (also ``orig_img``)
    video: VideoInfo | None = field(default=None, repr=False)  # the source video's fps and size
    speed: dict[str, float] = field(default_factory=dict)  # ms per image: preprocess, inference, postprocess
    save_dir: str | None = None  # the run folder ``predict(save=True)`` writes to, else None

    @property
    def orig_img(self) -> np.ndarray | None:
        """[H, W, 3] uint8 BGR original image (ultralytics' name for ``orig_image``)."""
        return self.orig_image

    @orig_img.setter
    def orig_img(self, image: np.ndarray | None) -> None:
        self.orig_image = image

    @property
    def scores(self) -> Array:
        """[N] confidences (``boxes.conf``)."""
        return self.boxes.conf

    @property
    def classes(self) -> Array:
        """[N] int64 class indices (``boxes.cls``)."""
        return self.boxes.cls

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: Any) -> Results:
        """The same image with only the detections ``index`` selects (an int, slice, or mask)."""
        return dataclasses.replace(self, boxes=self.boxes[index])

    def cpu(self) -> Results:
        return dataclasses.replace(self, boxes=self.boxes.cpu())

    def numpy(self) -> Results:
        """A copy whose boxes hold numpy arrays."""
        return dataclasses.replace(self, boxes=self.boxes.numpy())

    def cuda(self) -> Results:
        return dataclasses.replace(self, boxes=self.boxes.cuda())

    def to(self, *args: Any, **kwargs: Any) -> Results:
        return dataclasses.replace(self, boxes=self.boxes.to(*args, **kwargs))

    def _image(self) -> np.ndarray:
        if self.orig_image is None:
            raise ValueError(f"{self.path}: this result holds no image to draw on")
        return self.orig_image

    def plot(self, conf: bool = True, line_width: int | None = None, labels: bool = True) -> np.ndarray:
        """The original image with boxes, class names and (``conf``) scores drawn on a copy: [H, W, 3] uint8 BGR.
        Tracked boxes are coloured by identity and labelled ``id:7 name score``.

        Args:
            line_width: box line width in pixels (default: scaled to the image size).
            labels: draw the class name (and score) above each box.
        """
        from yolorep.plots import draw_boxes

        boxes = self.boxes.cpu()
        scores = boxes.conf if conf else None
        return draw_boxes(self._image(), boxes.xyxy, boxes.cls, self.names, scores, line_width, labels, ids=boxes.id)

    def show(self, **plot_kwargs: Any) -> None:
        """Display ``plot()`` in a window named after the source, where a display exists (else one warning)."""
        from yolorep.engine.predict.display import show_image

        show_image(self.path, self.plot(**plot_kwargs))

    def default_name(self) -> str:
        """A file name for this image's outputs: the source's name, ``_<frame>`` for a video frame, ``.jpg`` when
        the source has no image suffix."""
        source = Path(self.path)
        stem = source.stem + ("" if self.frame is None else f"_{self.frame}")
        suffix = source.suffix if self.frame is None and source.suffix else ".jpg"
        return stem + suffix

    def save(self, filename: str | Path | None = None, **plot_kwargs: Any) -> Path:
        """Write the annotated image (``plot(**plot_kwargs)``) to ``filename`` (format from its suffix); without
        one, to ``results_<name>`` in the working directory, as ultralytics does."""
        from yolorep.plots import write_image

        return write_image(filename or f"results_{self.default_name()}", self.plot(**plot_kwargs))

    def verbose(self) -> str:
        """Detections counted per class, as the predict log line shows them: ``"2 raccoons, 1 dog, "``, or
        ``"(no detections), "``."""
        if len(self) == 0:
            return "(no detections), "
        counts = torch.as_tensor(self.boxes.cls).cpu().bincount().tolist()
        return "".join(f"{n} {self.names[c]}{'s' * (n > 1)}, " for c, n in enumerate(counts) if n > 0)

    def to_txt_lines(self, save_conf: bool = True) -> list[str]:
        """YOLO label lines ``cls cx cy w h [score]``, coordinates normalised by the original width and height."""
        boxes = self.boxes.cpu()
        rows = zip(boxes.cls.tolist(), boxes.xywhn.tolist(), boxes.conf.tolist())
        score = " {:.6f}" if save_conf else ""
        return [f"{c} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}{score.format(s)}" for c, (cx, cy, bw, bh), s in rows]

    def save_txt(self, path: str | Path, save_conf: bool = True) -> Path:
        """Write ``to_txt_lines(save_conf)`` to ``path``, one detection per line (scores by default, unlike
        ultralytics; ``save_conf=False`` writes plain YOLO labels)."""
        return write_text_atomic(path, "".join(f"{line}\n" for line in self.to_txt_lines(save_conf)))

    def save_crop(self, save_dir: str | Path, file_name: str | Path = "im.jpg") -> list[Path]:
        """Write each detection's box, cut from the original image, to ``save_dir/<class name>/<file_name>.jpg``
        (``<stem>_2.jpg``, ``<stem>_3.jpg`` ... when taken); returns the files written."""
        from yolorep.plots import write_image

        image, boxes, written = self._image(), self.boxes.cpu(), []
        h, w = image.shape[:2]
        for (x1, y1, x2, y2), c in zip(boxes.xyxy.round().long().tolist(), boxes.cls.tolist()):
            x1, x2, y1, y2 = max(0, x1), min(w, x2), max(0, y1), min(h, y2)
            if x2 > x1 and y2 > y1:
                folder = confined(save_dir, str(self.names[c]))  # a class name is data: it stays in save_dir
                target = _free_name(folder / Path(file_name).with_suffix(".jpg").name)
                written.append(write_image(target, image[y1:y2, x1:x2]))
        return written

    def summary(self, normalize: bool = False, decimals: int = 5) -> list[dict[str, Any]]:
        """One dict per detection: ``name``, ``class``, ``confidence``, ``box`` ``{x1, y1, x2, y2}`` (pixels, or
        fractions of the image with ``normalize``), and ``track_id`` when tracked (ultralytics' ``summary``)."""
        boxes = self.boxes.cpu()
        h, w = self.orig_shape if normalize else (1, 1)
        ids = boxes.id.tolist() if boxes.id is not None else [None] * len(boxes)
        rows = []
        for (x1, y1, x2, y2), c, s, track in zip(boxes.xyxy.tolist(), boxes.cls.tolist(), boxes.conf.tolist(), ids):
            box = {"x1": x1 / w, "y1": y1 / h, "x2": x2 / w, "y2": y2 / h}
            row = {"name": self.names[c], "class": c, "confidence": round(s, decimals)}
            row["box"] = {k: round(v, decimals) for k, v in box.items()}
            if track is not None:
                row["track_id"] = int(track)
            rows.append(row)
        return rows

    def to_json(self, normalize: bool = False, decimals: int = 5) -> str:
        """``summary()`` as a JSON string (ultralytics' ``to_json``)."""
        return json.dumps(self.summary(normalize, decimals), indent=2)

    tojson = to_json  # ultralytics' earlier name

    def to_coco(self, image_id: int | str) -> list[dict[str, Any]]:
        """Rows of a COCO results file, written as ``val`` writes its own (``predictions_to_coco``): ``image_id``,
        ``category_id`` (class index + 1, as ``val`` numbers the classes of a data set without COCO ids), ``bbox``
        [x, y, w, h] (top-left corner, size; original pixels), ``score``; and ``file_name`` (plus ``frame`` for a
        video frame) to join them to the image."""
        from yolorep.evaluation.coco import predictions_to_coco

        boxes = self.boxes.cpu()
        category_ids = range(1, len(self.names) + 1)
        rows = predictions_to_coco(image_id, boxes.xyxy, boxes.conf, boxes.cls, category_ids)
        where = {"file_name": self.path} if self.frame is None else {"file_name": self.path, "frame": self.frame}
        return [row | where for row in rows]

    def records(self) -> list[dict[str, Any]]:
        """One record per detection: ``image`` (the file name), ``path`` (the source as given), ``frame``,
        ``category_id`` (the class index), ``name``, ``bbox`` [x, y, w, h] (top-left corner, size; original pixels),
        ``score``, and ``id`` when tracked. These were the rows of predictions.json before it became a COCO results
        file (``to_coco``); tracking's tracks.json holds them per frame."""
        boxes = self.boxes.cpu()
        ids = boxes.id.tolist() if boxes.id is not None else [None] * len(boxes)
        rows = zip(boxes.cls.tolist(), xyxy_to_ltwh(boxes.xyxy).tolist(), boxes.conf.tolist(), ids)
        image = Path(self.path).name
        records = []
        for c, box, s, track in rows:
            record = {"image": image, "path": self.path, "frame": self.frame, "category_id": c,
                      "name": self.names[c], "bbox": [round(v, 3) for v in box], "score": round(s, 5)}  # fmt: skip
            records.append(record if track is None else {**record, "id": int(track)})
        return records

    def to_json_str(self) -> str:
        """``records()`` as a JSON string."""
        return json.dumps(self.records())


def _free_name(path: Path) -> Path:
    """``path``, or ``<stem>_2<suffix>``, ``<stem>_3<suffix>`` ... the first that does not exist."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    return candidate


Result = Results  # the name before Boxes existed
