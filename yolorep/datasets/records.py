"""Image records: robust ground-truth loading for the COCO, YOLO and VOC layouts, with a label cache.

Loading never crashes on bad files: unreadable images and malformed label rows are skipped, counted in
``stats`` and the first few are logged with their file (and row). Boxes are kept as xyxy pixels of the
original image with contiguous class indices ``0..nc-1``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from yolorep.datasets import voc
from yolorep.datasets.spec import DataSpec, read_json
from yolorep.errors import DatasetError
from yolorep.ops.boxes import clip_boxes

__all__ = ["ImageRecord", "LoadedRecords", "load_records"]

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_PIL_FORMATS = {"JPEG", "MPO", "PNG", "BMP", "WEBP", "TIFF"}  # MPO: multi-picture JPEG from some cameras
_STAT_KEYS = ("images", "skipped_images", "bad_labels", "dropped_boxes", "crowd_boxes", "missing_labels",
              "background_images")  # fmt: skip
_MAX_WARNINGS = 5  # per kind of problem; the rest are only counted
_THREADS = 8  # image header checks are I/O bound


@dataclass
class ImageRecord:
    """One usable image and its ground truth.

    Attributes:
        path: image file.
        image_id: COCO image id (COCO layout) or the record's position at load time (YOLO layout).
        shape: original ``(h, w)``.
        boxes_xyxy: ``[n, 4]`` float32, pixels of the original image, clipped, every side >= 1 px.
        classes: ``[n]`` int64 contiguous class indices.
        difficult: ``[n]`` bool, VOC ``difficult`` objects: training targets that evaluation ignores (as crowd
            regions); ``None`` for the other layouts.
    """

    path: Path
    image_id: int
    shape: tuple[int, int]
    boxes_xyxy: np.ndarray
    classes: np.ndarray
    difficult: np.ndarray | None = None


class LoadedRecords(NamedTuple):
    records: list[ImageRecord]
    stats: dict[str, int]
    cache_path: Path
    from_cache: bool


class _Problems:
    """Counts problems by kind and logs the first few reports of each."""

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter({k: 0 for k in _STAT_KEYS})
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


def load_records(spec: DataSpec, split: str, use_cache: bool = True) -> LoadedRecords:
    """Read, check and cache the ground truth of ``split``.

    The cache (``<labels dir>.cache.npz`` for YOLO, ``<json stem>.cache.npz`` beside the JSON for COCO) is keyed
    by a hash of the file names, sizes and modification times; a stale or unreadable cache is rebuilt.

    Raises:
        DatasetError: the split has no usable image, or its COCO JSON is unreadable.
    """
    where = f"{spec.yaml_path}: {split}"
    if not spec.names:
        raise DatasetError(f"{where}: class names unknown; load the spec with load_data_spec(path) or ensure_data")
    image_dir = spec.voc_images if spec.is_voc else spec.split_dir(split)
    images = _scan(image_dir, IMAGE_SUFFIXES)
    if spec.is_coco:
        json_path = spec.split_json(split)
        st = json_path.stat()
        sources = [(str(json_path), st.st_size, st.st_mtime_ns)]
        cache_path = json_path.with_name(json_path.stem + ".cache.npz")
    elif spec.is_voc:  # the names decide class indices; the split's list file (or folder) decides the images
        split_path = spec.split_dir(split)
        sources = [spec.names, str(split_path), split_path.stat().st_mtime_ns, _scan(spec.voc_annotations, (".xml",))]
        cache_path = spec.voc_annotations / f"{split}.cache.npz"
    else:
        labels_dir = spec.labels_dir(split)
        sources = _scan(labels_dir, (".txt",))
        cache_path = labels_dir.with_name(labels_dir.name + ".cache.npz")
    key = [CACHE_VERSION, str(image_dir), spec.category_ids, images, sources]
    fingerprint = hashlib.sha256(json.dumps(key).encode()).hexdigest()

    cached = _read_cache(cache_path, fingerprint, image_dir) if use_cache else None
    if cached is not None:
        records, stats = cached
    else:
        problems = _Problems()
        if spec.is_coco:
            records = _load_coco(spec, split, problems)
        elif spec.is_voc:
            records = _load_voc(spec, split, problems)
        else:
            records = _load_yolo(spec, split, [image_dir / f for f, _, _ in images], problems)
        stats = problems.summary(where)
        stats["images"] = len(records)
        _write_cache(cache_path, fingerprint, image_dir, records, stats)
    logger.info("%s: %s%s", where, stats, " (from label cache)" if cached else "")
    if not records:
        raise DatasetError(f"{where}: no usable image in {image_dir} (stats {stats}); see the warnings above")
    return LoadedRecords(records, stats, cache_path, cached is not None)


def _scan(folder: Path, suffixes: tuple[str, ...]) -> list[tuple[str, int, int]]:
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


def _image_size(path: Path) -> tuple[int, int] | str:
    """``(h, w)`` from the file header, or why the file is not a usable image."""
    from PIL import Image  # a torchvision dependency; reads headers without decoding the pixels

    try:
        with Image.open(path) as image:
            image.verify()
            if image.format not in _PIL_FORMATS:
                return f"unsupported format {image.format}"
            w, h = image.size
    except Exception as e:  # PIL signals corrupt files with many exception types (OSError, SyntaxError, ...)
        return f"{type(e).__name__}: {e}"
    return (h, w) if h > 0 and w > 0 else "empty image"


def _image_sizes(paths: list[Path]) -> list[tuple[int, int] | str]:
    with ThreadPoolExecutor(min(_THREADS, max(len(paths), 1))) as pool:
        return list(pool.map(_image_size, paths))


def _clean_boxes(
    where: str, boxes_xyxy: np.ndarray, classes: np.ndarray, shape: tuple[int, int], problems: _Problems
) -> tuple[np.ndarray, np.ndarray]:
    """Clip ``[n, 4]`` boxes to the image and drop (and count) those under 1 px a side."""
    boxes_xyxy = clip_boxes(boxes_xyxy.reshape(-1, 4).astype(np.float32), shape)
    keep = (boxes_xyxy[:, 2] - boxes_xyxy[:, 0] >= 1) & (boxes_xyxy[:, 3] - boxes_xyxy[:, 1] >= 1)
    if not keep.all():
        dropped = int((~keep).sum())
        problems.report("dropped_boxes", f"{where}: {dropped} box(es) under 1 px after clipping; dropped", dropped)
    return boxes_xyxy[keep], classes.reshape(-1).astype(np.int64)[keep]


def _parse_yolo_labels(
    label_path: Path, shape: tuple[int, int], nc: int, problems: _Problems
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``cls cx cy w h`` (normalised) -> (boxes ``[n, 4]`` xyxy pixels, classes ``[n]``); bad rows skipped."""
    h, w = shape
    boxes, classes = [], []
    try:
        lines = label_path.read_text(errors="replace").splitlines()
    except OSError as e:
        problems.report("bad_labels", f"{label_path}: unreadable ({e}); image kept without boxes")
        lines = []
    for row, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"{label_path}:{row}"
        try:
            values = [float(p) for p in parts]
        except ValueError:
            problems.report("bad_labels", f"{where}: {line.strip()!r} is not numeric; row skipped")
            continue
        if len(values) != 5:
            problems.report("bad_labels", f"{where}: {len(values)} columns, expected 5 (cls cx cy w h); row skipped")
        elif not all(math.isfinite(v) for v in values):
            problems.report("bad_labels", f"{where}: non-finite value in {line.strip()!r}; row skipped")
        elif values[0] != int(values[0]) or not 0 <= values[0] < nc:
            problems.report("bad_labels", f"{where}: class {parts[0]} not an integer in 0..{nc - 1}; row skipped")
        else:
            cx, cy, bw, bh = values[1] * w, values[2] * h, values[3] * w, values[4] * h
            boxes.append((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2))
            classes.append(int(values[0]))
    return _clean_boxes(str(label_path), np.array(boxes), np.array(classes), shape, problems)


def _load_yolo(spec: DataSpec, split: str, paths: list[Path], problems: _Problems) -> list[ImageRecord]:
    image_dir, labels_dir = spec.split_dir(split), spec.labels_dir(split)
    records = []
    for path, size in zip(paths, _image_sizes(paths)):
        if isinstance(size, str):
            problems.report("skipped_images", f"{path}: unreadable image ({size}); skipped")
            continue
        label_path = (labels_dir / path.relative_to(image_dir)).with_suffix(".txt")
        if label_path.is_file():
            boxes, classes = _parse_yolo_labels(label_path, size, spec.nc, problems)
        else:
            problems.stats["missing_labels"] += 1  # common for background images, so counted but not logged
            boxes, classes = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        problems.stats["background_images"] += not len(boxes)
        records.append(ImageRecord(path, len(records), size, boxes, classes))
    return records


def _load_coco(spec: DataSpec, split: str, problems: _Problems) -> list[ImageRecord]:
    json_path, image_dir = spec.split_json(split), spec.split_dir(split)
    data = read_json(json_path)
    if not isinstance(data.get("images"), list) or not isinstance(data.get("annotations", []), list):
        raise DatasetError(f"{json_path}: images/annotations: missing or not lists; not a COCO instances file")
    category_index = {c: i for i, c in enumerate(spec.category_ids)}
    entries = {}
    for k, entry in enumerate(data["images"]):
        try:
            entries[int(entry["id"])] = (image_dir / str(entry["file_name"]), entry.get("height"), entry.get("width"))
        except (KeyError, TypeError, ValueError):
            problems.report("skipped_images", f"{json_path}: images[{k}]: needs id and file_name; skipped")
    targets: dict[int, tuple[list, list]] = {i: ([], []) for i in entries}
    for k, ann in enumerate(data.get("annotations", [])):
        where = f"{json_path}: annotations[{k}]"
        try:
            image_id, category, bbox = int(ann["image_id"]), int(ann["category_id"]), [float(v) for v in ann["bbox"]]
        except (KeyError, TypeError, ValueError):
            problems.report("bad_labels", f"{where}: needs image_id, category_id and bbox [x, y, w, h]; skipped")
            continue
        if ann.get("iscrowd", 0):
            problems.stats["crowd_boxes"] += 1  # crowd regions are not training targets; COCOeval handles them
        elif len(bbox) != 4 or not all(math.isfinite(v) for v in bbox):
            problems.report("bad_labels", f"{where}: bbox {ann['bbox']} is not 4 finite numbers; skipped")
        elif image_id not in targets or category not in category_index:
            problems.report("bad_labels", f"{where}: unknown image_id {image_id} or category_id {category}; skipped")
        else:
            targets[image_id][0].append((bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]))
            targets[image_id][1].append(category_index[category])

    ids = sorted(entries)
    sizes = _image_sizes([entries[i][0] for i in ids])
    records = []
    for image_id, size in zip(ids, sizes):
        path, h, w = entries[image_id]
        if isinstance(size, str):
            problems.report("skipped_images", f"{path}: unreadable image ({size}); skipped")
            continue
        if (h or size[0], w or size[1]) != size:  # width/height are optional in the JSON
            problems.report("skipped_images", f"{path}: file is {size[1]}x{size[0]}, JSON says {w}x{h}; skipped")
            continue
        boxes, classes = _clean_boxes(f"{json_path}: image {image_id}", np.array(targets[image_id][0]),
                                      np.array(targets[image_id][1]), size, problems)  # fmt: skip
        problems.stats["background_images"] += not len(boxes)
        records.append(ImageRecord(path, image_id, size, boxes, classes))
    return records


def _load_voc(spec: DataSpec, split: str, problems: _Problems) -> list[ImageRecord]:
    """VOC XML -> records by the rules of :mod:`yolorep.datasets.voc`; classes absent from names are an error."""
    problems.stats.update(dict.fromkeys(voc.STAT_KEYS, 0))
    pairs = voc.list_split(
        spec.voc_images, spec.voc_annotations, spec.split_dir(split), IMAGE_SUFFIXES, problems.report
    )
    unknown: dict[str, tuple[str, int]] = {}
    records = []
    for (path, xml_path), size in zip(pairs, _image_sizes([path for path, _ in pairs])):
        if isinstance(size, str):
            problems.report("skipped_images", f"{path}: unreadable image ({size}); skipped")
            continue
        targets = voc.read_targets(xml_path, size, spec.names, problems.report, unknown)
        if targets is not None:
            problems.stats.update(
                difficult_boxes=int(targets.difficult.sum()), truncated_boxes=int(targets.truncated.sum())
            )
            problems.stats["background_images"] += not len(targets.classes)
            records.append(ImageRecord(path, len(records), size, *targets[:3]))
    if unknown:
        raise voc.unknown_names_error(str(spec.yaml_path), spec.names, unknown)
    return records


def _read_cache(path: Path, fingerprint: str, image_dir: Path) -> tuple[list[ImageRecord], dict[str, int]] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION or str(z["fingerprint"]) != fingerprint:
                logger.info("%s: label cache is stale; rebuilding", path)
                return None
            splits = np.cumsum(z["counts"])[:-1]
            boxes, classes = np.split(z["boxes"], splits), np.split(z["classes"], splits)
            difficult = np.split(z["difficult"], splits) if "difficult" in z.files else [None] * len(boxes)
            records = [
                ImageRecord(image_dir / f, int(i), (int(s[0]), int(s[1])), b, c, d)
                for f, i, s, b, c, d in zip(z["files"].tolist(), z["image_ids"], z["shapes"], boxes, classes, difficult)
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
        "counts": np.array([len(r.classes) for r in records], dtype=np.int64),
        "boxes": np.concatenate([r.boxes_xyxy for r in records] + [np.zeros((0, 4), np.float32)]),
        "classes": np.concatenate([r.classes for r in records] + [np.zeros(0, np.int64)]),
        "stats": np.array(json.dumps(stats)),
    }
    if records and records[0].difficult is not None:  # VOC
        arrays["difficult"] = np.concatenate([r.difficult for r in records])
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        logger.warning("%s: cannot write label cache (%s); the next start re-reads the labels", path, e)
        tmp.unlink(missing_ok=True)
