"""Image records: robust ground-truth loading for every data layout (:mod:`yolorep.datasets.layouts`), with a
label cache.

Loading never crashes on bad files: unreadable or truncated images and malformed label rows are skipped, counted
in ``stats`` and the first few are logged with their file (and row). Boxes are kept as xyxy pixels of the
original image with contiguous class indices ``0..nc-1``. What is kept is also what evaluation scores: the
validator builds pycocotools' ground truth from these records, never from the raw files.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import NamedTuple

from yolorep.datasets.label_cache import CACHE_VERSION, read_label_cache, write_label_cache
from yolorep.datasets.spec import DataSpec
from yolorep.datasets.targets import IMAGE_SUFFIXES, ImageRecord, Problems, scan
from yolorep.errors import DatasetError

__all__ = ["IMAGE_SUFFIXES", "ImageRecord", "LoadedRecords", "load_records"]

logger = logging.getLogger(__name__)


class LoadedRecords(NamedTuple):
    records: list[ImageRecord]
    stats: dict[str, int]
    cache_path: Path
    from_cache: bool


def load_records(spec: DataSpec, split: str, use_cache: bool = True) -> LoadedRecords:
    """Read, check and cache the ground truth of ``split``.

    The cache (where the layout's ``cache_key`` puts it: ``<labels dir>.cache.npz`` for YOLO, ``<json
    stem>.cache.npz`` beside the JSON for COCO; in the user cache folder when that folder is read-only: see
    :mod:`yolorep.datasets.label_cache`) is keyed by a hash of the names, sizes and modification times of the image
    files and of what the layout reads their ground truth from; a stale or unreadable cache is rebuilt.

    Raises:
        DatasetError: the split has no usable image, or its annotations cannot be used at all.
    """
    where = f"{spec.yaml_path}: {split}"
    if not spec.names:
        raise DatasetError(f"{where}: class names unknown; load the spec with load_data_spec(path) or ensure_data")
    layout = spec.layout
    image_dir = layout.image_folder(spec, split)
    images = scan(image_dir, IMAGE_SUFFIXES)
    sources, cache_path = layout.cache_key(spec, split)
    key = [CACHE_VERSION, str(image_dir), spec.category_ids, images, sources]
    fingerprint = hashlib.sha256(json.dumps(key).encode()).hexdigest()

    cached = read_label_cache(cache_path, fingerprint, image_dir) if use_cache else None
    if cached is not None:
        records, stats, cache_path = cached
    else:
        problems = Problems()
        records = layout.read_split(spec, split, [image_dir / f for f, _, _ in images], problems)
        stats = problems.summary(where)
        stats["images"] = len(records)
        cache_path = write_label_cache(cache_path, fingerprint, image_dir, records, stats) or cache_path
    logger.debug("%s: %s%s", where, stats, " (from label cache)" if cached else "")
    if stats.get("exif_rotated"):
        logger.warning(
            "%s: %d image(s) carry an EXIF rotation; yolorep uses the pixels as stored, so their labels must refer "
            "to the unrotated image", where, stats["exif_rotated"],
        )  # fmt: skip
    if not records:
        raise DatasetError(f"{where}: no usable image in {image_dir} (stats {stats}); see the warnings above")
    return LoadedRecords(records, stats, cache_path, cached is not None)
