"""One image's ground truth (``ImageRecord``), and what the layout loaders share: problem counting, box
cleaning, file scanning."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolorep.datasets.walk import walk_files
from yolorep.ops.boxes import clip_boxes

__all__ = ["IMAGE_SUFFIXES", "STAT_KEYS", "ImageRecord", "Problems", "clean_boxes", "scan"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
STAT_KEYS = ("images", "skipped_images", "bad_labels", "dropped_boxes", "crowd_boxes", "missing_labels",
             "background_images", "exif_rotated", "clipped_boxes")  # fmt: skip
_MAX_WARNINGS = 5  # per kind of problem; the rest are only counted


def _empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), np.float32)


@dataclass
class ImageRecord:
    """One usable image and its ground truth.

    Attributes:
        path: image file.
        image_id: COCO image id (COCO layout) or the record's position at load time (other layouts).
        shape: original ``(h, w)``.
        boxes_xyxy: ``[n, 4]`` float32, pixels of the original image, clipped, every side >= 1 px.
        classes: ``[n]`` int64 contiguous class indices.
        areas: ``[n]`` float32 object areas (COCO's ``area``, which sorts objects into small/medium/large; the box
            area when the data set gives none).
        crowd_xyxy, crowd_classes, crowd_areas: COCO crowd regions (``iscrowd: 1``): never training targets, but
            scored as COCOeval does (a detection inside one is ignored, not counted as a false positive).
        difficult: ``[n]`` bool, VOC ``difficult`` objects: training targets that evaluation ignores (as crowd
            regions); all False in the other layouts.
    """

    path: Path
    image_id: int
    shape: tuple[int, int]
    boxes_xyxy: np.ndarray
    classes: np.ndarray
    areas: np.ndarray | None = None
    crowd_xyxy: np.ndarray = field(default_factory=_empty_boxes)
    crowd_classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    crowd_areas: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    difficult: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.areas is None:
            sides = self.boxes_xyxy[:, 2:] - self.boxes_xyxy[:, :2]
            self.areas = (sides[:, 0] * sides[:, 1]).astype(np.float32)
        if self.difficult is None:
            self.difficult = np.zeros(len(self.classes), bool)

    @property
    def evaluated(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The ground truth evaluation sees: ``(boxes [m, 4], classes [m], areas [m], ignored [m] bool)``, the
        objects first, then the crowd regions; ignored marks crowd regions and difficult objects, which
        COCOeval (``iscrowd``) and the internal metrics neither reward nor penalise."""
        ignored = np.concatenate([self.difficult.astype(bool), np.ones(len(self.crowd_classes), bool)])
        return (
            np.concatenate([self.boxes_xyxy, self.crowd_xyxy]),
            np.concatenate([self.classes, self.crowd_classes]),
            np.concatenate([self.areas, self.crowd_areas]),
            ignored,
        )


class Problems:
    """Counts problems by kind (the ``STAT_KEYS``) and logs the first few reports of each."""

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter({k: 0 for k in STAT_KEYS})
        self.reports: Counter[str] = Counter()

    def report(self, kind: str, message: str, count: int = 1) -> None:
        self.reports[kind] += 1
        if self.reports[kind] <= _MAX_WARNINGS:
            logger.warning(message)
        self.stats[kind] += count

    def summary(self, where: str) -> dict[str, int]:
        hidden = {k: n - _MAX_WARNINGS for k, n in self.reports.items() if n > _MAX_WARNINGS}
        if hidden:
            logger.warning("%s: more warnings not shown: %s (totals in dataset.stats)", where, hidden)
        return dict(self.stats)


def clean_boxes(
    where: str,
    boxes_xyxy: np.ndarray,
    classes: np.ndarray,
    shape: tuple[int, int],
    problems: Problems,
    areas: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip ``[n, 4]`` boxes to the image and drop (and count) those under 1 px a side; kept boxes that reached
    more than 1 px outside the image are counted as ``clipped_boxes`` (the VOC loader's rule).

    Returns:
        ``(boxes [m, 4] float32, classes [m] int64, areas [m] float32)``; ``areas`` defaults to the clipped boxes'.
    """
    given = boxes_xyxy.reshape(-1, 4).astype(np.float32)
    boxes_xyxy = clip_boxes(given, shape)
    sides = boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]
    keep = (sides[:, 0] >= 1) & (sides[:, 1] >= 1)
    problems.stats["clipped_boxes"] += int((np.abs(given - boxes_xyxy).max(axis=1, initial=0) > 1)[keep].sum())
    if not keep.all():
        dropped = int((~keep).sum())
        problems.report("dropped_boxes", f"{where}: {dropped} box(es) under 1 px after clipping; dropped", dropped)
    areas = sides[:, 0] * sides[:, 1] if areas is None else np.asarray(areas, dtype=np.float32).reshape(-1)
    return boxes_xyxy[keep], classes.reshape(-1).astype(np.int64)[keep], areas.astype(np.float32)[keep]


def scan(folder: Path, suffixes: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """``(path relative to folder, size, mtime_ns)`` of the files with ``suffixes`` below ``folder`` (links to
    folders followed), sorted."""
    found = []
    for dirpath, filenames in walk_files(folder):
        for name in filenames:
            if name.lower().endswith(suffixes):
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:  # a dangling link: keep it listed so that loading reports it
                    found.append((os.path.relpath(path, folder), -1, -1))
                    continue
                found.append((os.path.relpath(path, folder), st.st_size, st.st_mtime_ns))
    return sorted(found)
