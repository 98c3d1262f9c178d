"""Image records: robust ground-truth loading for the COCO, YOLO and VOC layouts, with a label cache.

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
from pathlib import Path
from typing import NamedTuple

import numpy as np

from yolorep.datasets.coco_layout import load_coco
from yolorep.datasets.spec import DataSpec
from yolorep.datasets.targets import IMAGE_SUFFIXES, ImageRecord, Problems, scan
from yolorep.datasets.voc_layout import load_voc
from yolorep.datasets.yolo_layout import load_yolo
from yolorep.errors import DatasetError

__all__ = ["IMAGE_SUFFIXES", "ImageRecord", "LoadedRecords", "load_records"]

logger = logging.getLogger(__name__)

CACHE_VERSION = 3


class LoadedRecords(NamedTuple):
    records: list[ImageRecord]
    stats: dict[str, int]
    cache_path: Path
    from_cache: bool


def load_records(spec: DataSpec, split: str, use_cache: bool = True) -> LoadedRecords:
    """Read, check and cache the ground truth of ``split``.

    The cache (``<labels dir>.cache.npz`` for YOLO, ``<json stem>.cache.npz`` beside the JSON for COCO) is keyed
    by a hash of the file names, sizes and modification times; a stale or unreadable cache is rebuilt.

    Raises:
        DatasetError: the split has no usable image, or its annotations cannot be used at all.
    """
    where = f"{spec.yaml_path}: {split}"
    if not spec.names:
        raise DatasetError(f"{where}: class names unknown; load the spec with load_data_spec(path) or ensure_data")
    image_dir = spec.voc_images if spec.is_voc else spec.split_dir(split)
    images = scan(image_dir, IMAGE_SUFFIXES)
    if spec.is_coco:
        json_path = spec.split_json(split)
        st = json_path.stat()
        sources = [(str(json_path), st.st_size, st.st_mtime_ns)]
        cache_path = json_path.with_name(json_path.stem + ".cache.npz")
    elif spec.is_voc:  # the names decide class indices; the split's list file (or folder) decides the images
        split_path = spec.split_dir(split)
        sources = [spec.names, str(split_path), split_path.stat().st_mtime_ns, scan(spec.voc_annotations, (".xml",))]
        cache_path = spec.voc_annotations / f"{split}.cache.npz"
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
        elif spec.is_voc:
            records = load_voc(spec, split, problems)
        else:
            records = load_yolo(spec, split, [image_dir / f for f, _, _ in images], problems)
        stats = problems.summary(where)
        stats["images"] = len(records)
        _write_cache(cache_path, fingerprint, image_dir, records, stats)
    logger.debug("%s: %s%s", where, stats, " (from label cache)" if cached else "")
    if stats.get("exif_rotated"):
        logger.warning(
            "%s: %d image(s) carry an EXIF rotation; yolorep uses the pixels as stored, so their labels must refer "
            "to the unrotated image", where, stats["exif_rotated"],
        )  # fmt: skip
    if not records:
        raise DatasetError(f"{where}: no usable image in {image_dir} (stats {stats}); see the warnings above")
    return LoadedRecords(records, stats, cache_path, cached is not None)


# per-image arrays of a record, and the empty array of each (its shape and dtype)
_CACHED_FIELDS = {
    "boxes_xyxy": np.zeros((0, 4), np.float32),
    "classes": np.zeros(0, np.int64),
    "areas": np.zeros(0, np.float32),
    "crowd_xyxy": np.zeros((0, 4), np.float32),
    "crowd_classes": np.zeros(0, np.int64),
    "crowd_areas": np.zeros(0, np.float32),
    "difficult": np.zeros(0, bool),
}


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
    for name, empty in _CACHED_FIELDS.items():
        values = [getattr(r, name) for r in records]
        arrays[f"{name}_counts"] = np.array([len(v) for v in values], dtype=np.int64)
        arrays[name] = np.concatenate(values + [empty]).astype(empty.dtype)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        logger.warning("%s: cannot write label cache (%s); the next start re-reads the labels", path, e)
        tmp.unlink(missing_ok=True)
