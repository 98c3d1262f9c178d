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
from pathlib import Path
from typing import NamedTuple

from yolorep.datasets.coco_layout import load_coco
from yolorep.datasets.label_cache import CACHE_VERSION, read_label_cache, write_label_cache
from yolorep.datasets.spec import DataSpec
from yolorep.datasets.targets import IMAGE_SUFFIXES, ImageRecord, Problems, scan
from yolorep.datasets.voc_layout import load_voc
from yolorep.datasets.yolo_layout import load_yolo
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

    The cache (in the user cache folder, named after the path it would have beside the data: ``<labels
    dir>.cache.npz`` for YOLO, ``<json stem>.cache.npz`` for COCO; see :mod:`yolorep.datasets.label_cache`) is keyed
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

    cached = read_label_cache(cache_path, fingerprint, image_dir) if use_cache else None
    if cached is not None:
        records, stats, cache_path = cached
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
