"""Image records: robust ground-truth loading for every data-set layout, with a label cache.

Loading never crashes on bad files: unreadable or truncated images and malformed label rows are skipped, counted
in ``stats`` and the first few are logged with their file (and row). Boxes are kept as xyxy pixels of the
original image with contiguous class indices ``0..nc-1``. What is kept is also what evaluation scores: the
validator builds pycocotools' ground truth from these records, never from the raw files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from yolorep.datasets.spec import DataSpec
from yolorep.errors import DatasetError
from yolorep.ops.boxes import clip_boxes

__all__ = ["IMAGE_SUFFIXES", "ImageRecord", "LoadedRecords", "Problems", "clean_boxes", "load_records"]

logger = logging.getLogger(__name__)

CACHE_VERSION = 2
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
STAT_KEYS = ("images", "skipped_images", "bad_labels", "dropped_boxes", "crowd_boxes", "missing_labels",
             "background_images", "exif_rotated")  # fmt: skip
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

    def __post_init__(self) -> None:
        if self.areas is None:
            sides = self.boxes_xyxy[:, 2:] - self.boxes_xyxy[:, :2]
            self.areas = (sides[:, 0] * sides[:, 1]).astype(np.float32)


class LoadedRecords(NamedTuple):
    records: list[ImageRecord]
    stats: dict[str, int]
    cache_path: Path
    from_cache: bool


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
    """Clip ``[n, 4]`` boxes to the image and drop (and count) those under 1 px a side.

    Returns:
        ``(boxes [m, 4] float32, classes [m] int64, areas [m] float32)``; ``areas`` defaults to the clipped boxes'.
    """
    boxes_xyxy = clip_boxes(boxes_xyxy.reshape(-1, 4).astype(np.float32), shape)
    sides = boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]
    keep = (sides[:, 0] >= 1) & (sides[:, 1] >= 1)
    if not keep.all():
        dropped = int((~keep).sum())
        problems.report("dropped_boxes", f"{where}: {dropped} box(es) under 1 px after clipping; dropped", dropped)
    areas = sides[:, 0] * sides[:, 1] if areas is None else np.asarray(areas, dtype=np.float32).reshape(-1)
    return boxes_xyxy[keep], classes.reshape(-1).astype(np.int64)[keep], areas.astype(np.float32)[keep]


def load_records(spec: DataSpec, split: str, use_cache: bool = True) -> LoadedRecords:
    """Read, check and cache the ground truth of ``split``.

    The cache (``<labels dir>.cache.npz`` for YOLO, ``<json stem>.cache.npz`` beside the JSON for COCO) is keyed
    by a hash of the file names, sizes and modification times; a stale or unreadable cache is rebuilt.

    Raises:
        DatasetError: the split has no usable image, or its annotations cannot be used at all.
    """
    from yolorep.datasets.coco_layout import load_coco
    from yolorep.datasets.yolo_layout import load_yolo

    where = f"{spec.yaml_path}: {split}"
    if not spec.names:
        raise DatasetError(f"{where}: class names unknown; load the spec with load_data_spec(path) or ensure_data")
    image_dir = spec.split_dir(split)
    images = scan(image_dir, IMAGE_SUFFIXES)
    if spec.is_coco:
        json_path = spec.split_json(split)
        st = json_path.stat()
        sources = [(str(json_path), st.st_size, st.st_mtime_ns)]
        cache_path = json_path.with_name(json_path.stem + ".cache.npz")
    else:
        labels_dir = spec.labels_dir(split)
        sources = scan(labels_dir, (".txt",))
        cache_path = labels_dir.with_name(labels_dir.name + ".cache.npz")
    key = [CACHE_VERSION, str(image_dir), spec.category_ids, images, sources]
    fingerprint = hashlib.sha256(json.dumps(key).encode()).hexdigest()

    cached = _read_cache(cache_path, fingerprint, image_dir) if use_cache else None
    if cached is not None:
        records, stats = cached
    else:
        problems = Problems()
        if spec.is_coco:
            records = load_coco(spec, split, problems)
        else:
            records = load_yolo(spec, split, [image_dir / f for f, _, _ in images], problems)
        stats = problems.summary(where)
        stats["images"] = len(records)
        _write_cache(cache_path, fingerprint, image_dir, records, stats)
    logger.info("%s: %s%s", where, stats, " (from label cache)" if cached else "")
    if stats.get("exif_rotated"):
        logger.warning(
            "%s: %d image(s) carry an EXIF rotation; yolorep uses the pixels as stored, so their labels must refer "
            "to the unrotated image", where, stats["exif_rotated"],
        )  # fmt: skip
    if not records:
        raise DatasetError(f"{where}: no usable image in {image_dir} (stats {stats}); see the warnings above")
    return LoadedRecords(records, stats, cache_path, cached is not None)


def scan(folder: Path, suffixes: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """``(path relative to folder, size, mtime_ns)`` of the files with ``suffixes`` below ``folder``, sorted."""
    found = []
    for dirpath, _, filenames in os.walk(folder):
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


_CACHED_FIELDS = ("boxes_xyxy", "classes", "areas", "crowd_xyxy", "crowd_classes", "crowd_areas")


def _read_cache(path: Path, fingerprint: str, image_dir: Path) -> tuple[list[ImageRecord], dict[str, int]] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION or str(z["fingerprint"]) != fingerprint:
                logger.info("%s: label cache is stale; rebuilding", path)
                return None
            columns = [np.split(z[name], np.cumsum(z[f"{name}_counts"])[:-1]) for name in _CACHED_FIELDS]
            records = [
                ImageRecord(image_dir / f, int(i), (int(s[0]), int(s[1])), *values)
                for f, i, s, *values in zip(z["files"].tolist(), z["image_ids"], z["shapes"], *columns)
            ]
            return records, json.loads(str(z["stats"]))
    except Exception as e:  # any unreadable cache (truncated, foreign, older numpy) is just rebuilt
        logger.warning("%s: unreadable label cache (%s); rebuilding", path, e)
        return None


def _write_cache(
    path: Path, fingerprint: str, image_dir: Path, records: list[ImageRecord], stats: dict[str, int]
) -> None:
    """Write atomically (temp file + rename) so that a concurrent or interrupted run never sees half a cache."""
    arrays = {
        "version": np.array(CACHE_VERSION),
        "fingerprint": np.array(fingerprint),
        "files": np.array([r.path.relative_to(image_dir).as_posix() for r in records], dtype=str),
        "image_ids": np.array([r.image_id for r in records], dtype=np.int64),
        "shapes": np.array([r.shape for r in records], dtype=np.int64).reshape(-1, 2),
        "stats": np.array(json.dumps(stats)),
    }
    for name in _CACHED_FIELDS:
        values = [getattr(r, name) for r in records]
        arrays[f"{name}_counts"] = np.array([len(v) for v in values], dtype=np.int64)
        empty = np.zeros((0, 4) if name.endswith("xyxy") else 0, np.int64 if "classes" in name else np.float32)
        arrays[name] = np.concatenate(values + [empty])
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        logger.warning("%s: cannot write label cache (%s); the next start re-reads the labels", path, e)
        tmp.unlink(missing_ok=True)
