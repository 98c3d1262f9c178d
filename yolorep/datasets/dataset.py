"""The torch detection Dataset: one split's image records, letterboxed for evaluation or augmented for training.

Records (boxes as xyxy pixels of the original image, contiguous class indices) come from
:func:`~yolorep.datasets.records.load_records`.
"""

from __future__ import annotations

import math
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from yolorep.checks import check_imgsz
from yolorep.datasets.image_cache import DiskImageCache, read_decoded
from yolorep.datasets.mixing import copy_paste, mixup
from yolorep.datasets.records import ImageRecord, load_records
from yolorep.datasets.spec import DataSpec
from yolorep.datasets.transforms import (
    augment_hsv,
    fliplr,
    flipud,
    letterbox,
    mosaic4,
    random_affine,
    resize_longest,
)
from yolorep.errors import DatasetError
from yolorep.options.hyp import load_hyp

__all__ = ["AUGMENT_KEYS", "DetectionDataset"]

_THREADS = 8  # image reads for cache_images are mostly I/O and GIL-free cv2 work
# The hyperparameters (cfg/default.yaml) that drive training augmentation.
AUGMENT_KEYS = ("mosaic", "degrees", "translate", "scale", "shear", "hsv_h", "hsv_s", "hsv_v", "fliplr", "flipud",
                "mixup", "copy_paste")  # fmt: skip


class DetectionDataset(Dataset):
    """Images and boxes of one split, letterboxed for evaluation or augmented (mosaic, copy-paste, affine, MixUp,
    HSV, flips).

    ``dataset[i]`` returns ``(image, labels, info)``:

    * ``image``: ``torch.uint8 [3, H, W]`` RGB, contiguous.
    * ``labels``: ``torch.float32 [n, 5]`` rows ``(cls, x1, y1, x2, y2)`` in pixels of ``image``.
    * ``info``: ``{"index", "image_id", "path", "orig_shape": (h0, w0), "ratio_pad": ((rw, rh), (pad_w, pad_h))}``;
      a returned box maps to the original image by ``x0 = (x - pad_w) / rw``, ``y0 = (y - pad_h) / rh``.
      ``ratio_pad`` is ``None`` for augmented samples, which are not a letterbox of one image.

    Without ``augment`` images are letterboxed to ``imgsz x imgsz``, or with ``rect`` to one shape per batch of
    ``batch_size`` consecutive indices (records are then sorted by aspect ratio; do not shuffle). With ``augment``
    the output is ``imgsz x imgsz`` (mosaic, affine, HSV, flip), or with ``rect`` the batch's shape (HSV and flip
    only: no mosaic or affine, which would need a square canvas). Set ``mosaic_enabled = False`` before an epoch's
    loader iterator starts (workers copy the dataset when they start) to train the last epochs without mosaic.

    Attributes:
        records: the :class:`~yolorep.datasets.records.ImageRecord` of each index (sorted by aspect ratio with
            ``rect``).
        names: class names; ``category_ids[cls]`` is the dataset category id of class ``cls``.
        stats: load counts (``images``, ``skipped_images``, ``bad_labels``, ``dropped_boxes``, ``crowd_boxes``,
            ``missing_labels``, ``background_images``; for VOC also ``missing_images``, ``flipped_boxes``,
            ``clipped_boxes``, ``difficult_boxes``, ``truncated_boxes``: see :mod:`yolorep.datasets.layouts.voc_xml`).
        batch_shapes: ``(H, W)`` of each rect batch (empty without ``rect``).
        mosaic_enabled: use mosaic (with probability ``hyp["mosaic"]``); ``True`` iff ``augment`` at start.

    Args:
        spec: the dataset, after :func:`~yolorep.datasets.spec.ensure_data`.
        split: ``"train"`` or ``"val"``.
        imgsz: network input size, a multiple of ``stride``.
        augment: apply training augmentation.
        hyp: augmentation settings (:data:`AUGMENT_KEYS` of a ``yolorep.options.load_hyp()`` dict; missing keys take
            cfg/default.yaml's values, other keys are ignored).
        rect: rectangular batches (sorted by aspect ratio; for training: HSV and flip only).
        batch_size: batch size the loader will use; only matters with ``rect``.
        stride: the model's largest stride; rect shapes are multiples of it.

    After construction, :meth:`as_one_class` merges the classes (``--single-cls``), :meth:`keep_share` keeps a part
    of the images (``--fraction``), and :meth:`cache_images` / :meth:`cache_to_disk` cache the decoded images.
    """

    def __init__(
        self,
        spec: DataSpec,
        split: str,
        imgsz: int,
        augment: bool = False,
        hyp: dict[str, Any] | None = None,
        rect: bool = False,
        batch_size: int = 16,
        stride: int = 32,
    ) -> None:
        check_imgsz(imgsz, stride)
        self.spec, self.split, self.imgsz, self.stride = spec, split, imgsz, stride
        self.augment, self.rect, self.batch_size = augment, rect, batch_size
        defaults = load_hyp()
        self.hyp = {k: float((hyp or {}).get(k, defaults[k])) for k in AUGMENT_KEYS}
        self.names, self.category_ids = spec.names, spec.category_ids
        loaded = load_records(spec, split)
        self.records, self.stats, self.cache_path = loaded.records, loaded.stats, loaded.cache_path
        self.mosaic_enabled = augment and not rect
        self.batch_shapes = self._sort_for_rect() if rect else []
        self._images: list[tuple[np.ndarray, tuple[float, float]] | None] = [None] * len(self.records)
        self._decoded_files: list[Path | None] = []  # per record, with cache_to_disk

    def as_one_class(self) -> DetectionDataset:
        """Every object and crowd region of one class, ``object`` (category id 1), as ``--single-cls`` trains and
        evaluates; returns the dataset itself."""
        self.records = [_one_class(r) for r in self.records]
        self.names, self.category_ids = ("object",), (1,)
        return self

    def cache_images(self) -> None:
        """Read every image once and keep it resized in RAM (:meth:`decoded_bytes`); samples stay the same."""
        with ThreadPoolExecutor(_THREADS) as pool:
            self._images = list(pool.map(self._read_resized, range(len(self.records))))

    def cache_to_disk(self) -> DiskImageCache:
        """Keep each image decoded in a ``.npy`` file (:mod:`yolorep.datasets.image_cache`), written now where
        missing or stale, and read those from now on; returns the cache (its counts)."""
        cache = DiskImageCache()
        with ThreadPoolExecutor(_THREADS) as pool:
            self._decoded_files = list(pool.map(cache.ensure, [r.path for r in self.records],
                                                [r.shape for r in self.records]))  # fmt: skip
        return cache

    def keep_share(self, fraction: float, seed: int) -> None:
        """Keep a random ``fraction`` of the images (at least one), drawn with ``seed`` from the images in path
        order, so the same ones whatever the record order (``rect`` sorts it)."""
        count = max(1, round(len(self.records) * fraction))
        by_path = sorted(range(len(self.records)), key=lambda i: str(self.records[i].path))
        chosen = {by_path[i] for i in np.random.default_rng(seed).choice(len(by_path), count, replace=False)}
        keep = [i for i in range(len(self.records)) if i in chosen]
        self.records, self._images = [self.records[i] for i in keep], [self._images[i] for i in keep]
        self._decoded_files = [self._decoded_files[i] for i in keep] if self._decoded_files else []
        self.stats = {**self.stats, "images": len(self.records)}
        self.batch_shapes = self._sort_for_rect() if self.rect else []

    def decoded_bytes(self) -> int:
        """The RAM :meth:`cache_images` takes: every image resized to longest side ``imgsz``, 3 bytes a pixel."""
        total = 0
        for h, w in (record.shape for record in self.records):
            r = self.imgsz / max(h, w)
            total += max(round(w * r), 1) * max(round(h * r), 1) * 3
        return total

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        record = self.records[index]
        ratio_pad = None
        if self.augment and not self.rect:
            image, labels = self._augmented(index)
        else:
            image, (rw, rh) = self._resized(index)
            shape = self.batch_shapes[index // self.batch_size] if self.rect else (self.imgsz, self.imgsz)
            image, (gw, gh), pad = letterbox(image, shape, scaleup=False)
            ratio_pad = ((rw * gw, rh * gh), (float(pad[0]), float(pad[1])))
            labels = self._labels(index, *ratio_pad)
            if self.augment:  # rect training: the batch shape forbids mosaic and affine
                image, labels = self._colour_and_flip(image, labels)
                ratio_pad = None
        image = np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))  # BGR HWC -> RGB CHW
        info = {
            "index": index,
            "image_id": record.image_id,
            "path": str(record.path),
            "orig_shape": record.shape,
            "ratio_pad": ratio_pad,
        }
        return torch.from_numpy(image), torch.from_numpy(labels), info

    def _sort_for_rect(self) -> list[tuple[int, int]]:
        """Order records by aspect ratio; return one ``(H, W)`` per batch, multiples of ``stride``."""
        aspect = np.array([h / w for h, w in (r.shape for r in self.records)])
        order = np.argsort(aspect, kind="stable")
        self.records, aspect = [self.records[i] for i in order], aspect[order]
        shapes = []
        for start in range(0, len(aspect), self.batch_size):
            lo, hi = aspect[start : start + self.batch_size][[0, -1]]
            rel_h, rel_w = (hi, 1.0) if hi < 1 else (1.0, 1 / lo) if lo > 1 else (1.0, 1.0)
            shapes.append(tuple(math.ceil(v * self.imgsz / self.stride) * self.stride for v in (rel_h, rel_w)))
        return shapes

    def _read_resized(self, index: int) -> tuple[np.ndarray, tuple[float, float]]:
        record = self.records[index]
        decoded = self._decoded_files[index] if self._decoded_files else None
        image = read_decoded(decoded) if decoded is not None else None
        if image is None:
            image = cv2.imread(str(record.path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None or image.shape[:2] != record.shape:
            raise DatasetError(
                f"{record.path}: cannot be read or changed since loading; restore it or delete {self.cache_path}"
            )
        return resize_longest(image, self.imgsz, augment=self.augment)

    def _resized(self, index: int) -> tuple[np.ndarray, tuple[float, float]]:
        """BGR image with longest side ``imgsz`` and its ``(rw, rh)`` ratios to the original."""
        return self._images[index] or self._read_resized(index)

    def _labels(self, index: int, ratio: tuple[float, float], pad: tuple[float, float]) -> np.ndarray:
        """``[n, 5]`` float32 ``(cls, x1, y1, x2, y2)`` mapped by ``x * ratio + pad``."""
        record = self.records[index]
        scale = np.array([ratio[0], ratio[1], ratio[0], ratio[1]], dtype=np.float32)
        offset = np.array([pad[0], pad[1], pad[0], pad[1]], dtype=np.float32)
        boxes = record.boxes_xyxy * scale + offset
        return np.concatenate([record.classes[:, None].astype(np.float32), boxes], 1).reshape(-1, 5)

    def _augmented(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, labels = self._placed(index)
        if self.hyp["mixup"] and random.random() < self.hyp["mixup"]:  # no draw when off: the same samples as before
            image, labels = mixup(image, labels, *self._placed(random.randrange(len(self))))
        return self._colour_and_flip(image, labels)

    def _placed(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Mosaic or letterbox, copy-paste, random affine: ``imgsz x imgsz``."""
        hyp, size = self.hyp, self.imgsz
        if self.mosaic_enabled and random.random() < hyp["mosaic"]:
            # Distinct tiles where the set allows: a repeated image adds nothing and duplicates its objects.
            others = [j for j in random.sample(range(len(self)), min(len(self), 4)) if j != index][:3]
            indices = [index, *others, *random.choices(range(len(self)), k=3 - len(others))]
            resized = [self._resized(i) for i in indices]
            labels = [self._labels(i, ratio, (0.0, 0.0)) for i, (_, ratio) in zip(indices, resized)]
            image, labels = mosaic4([im for im, _ in resized], labels, size)
        else:
            image, (rw, rh) = self._resized(index)
            image, (gw, gh), pad = letterbox(image, (size, size), scaleup=False)
            labels = self._labels(index, (rw * gw, rh * gh), pad)
        if hyp["copy_paste"]:
            donor = random.randrange(len(self))
            donor_image, ratio = self._resized(donor)
            image, labels = copy_paste(image, labels, donor_image, self._labels(donor, ratio, (0.0, 0.0)),
                                       hyp["copy_paste"])  # fmt: skip
        return random_affine(image, labels, (size, size), hyp["degrees"], hyp["translate"], hyp["scale"], hyp["shear"])

    def _colour_and_flip(self, image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hyp = self.hyp
        image = augment_hsv(image, hyp["hsv_h"], hyp["hsv_s"], hyp["hsv_v"])
        if hyp["flipud"] and random.random() < hyp["flipud"]:
            image, labels = flipud(image, labels)
        if random.random() < hyp["fliplr"]:
            image, labels = fliplr(image, labels)
        return image, labels


def _one_class(record: ImageRecord) -> ImageRecord:
    """``record`` with every object and crowd region of class 0."""
    return replace(record, classes=np.zeros_like(record.classes), crowd_classes=np.zeros_like(record.crowd_classes))
