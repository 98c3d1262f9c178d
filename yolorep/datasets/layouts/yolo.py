"""The YOLO layout: ``images/.../x.jpg`` beside ``labels/.../x.txt`` with rows ``cls cx cy w h`` (normalised).

The YAML names the image folders (``train``, ``val``) and the class names; the label folder of ``images/train`` is
``labels/train`` (the last ``images`` component of the path becomes ``labels``). An image without label file is a
background image (counted in ``missing_labels``); a bad row is skipped and counted (``bad_labels``). Written by
``convert --to yolo``: rows hold a class and a box only.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolorep.confined import confined
from yolorep.datasets.images import check_images
from yolorep.datasets.layouts.base import (
    SPLITS,
    CacheKey,
    ConvertItem,
    Evidence,
    Layout,
    SpecView,
    YamlSource,
    copy_image,
    numbered,
    require_image_folder,
)
from yolorep.datasets.targets import ImageRecord, Problems, clean_boxes, scan
from yolorep.errors import DatasetError, quoted

__all__ = ["YoloLayout", "labels_dir", "parse_yolo_labels"]

logger = logging.getLogger(__name__)


def _labels_of(image_dir: Path) -> Path | None:
    """The image folder with its last ``images`` component -> ``labels``; None without one."""
    parts = list(image_dir.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            return Path(*parts[:i], "labels", *parts[i + 1 :])
    return None


def labels_dir(spec: SpecView, split: str) -> Path:
    """The label folder of ``split``: its image folder with the last ``images`` component -> ``labels``."""
    labels = _labels_of(spec.split_dir(split))
    if labels is not None:
        return labels
    raise DatasetError(
        f"{spec.yaml_path}: {split}: image folder {spec.split_dir(split)} has no 'images' component; "
        "the YOLO layout needs images/... beside labels/... (or give train_json/val_json for COCO)"
    )


@dataclass(frozen=True)
class YoloLayout(Layout):
    """Label text files beside the images; nothing in the YAML beyond the image folders and the names."""

    name = "yolo"
    title = "YOLO"
    needs_names = True
    writes = True

    @classmethod
    def detect(cls, source: YamlSource) -> Evidence:
        labels = _labels_of(source.split_path("train"))
        return Evidence.FOLDERS if labels is not None and labels.is_dir() else Evidence.DEFAULT

    @classmethod
    def from_yaml(cls, source: YamlSource) -> YoloLayout:
        return cls()

    def check_data(self, spec: SpecView) -> tuple[tuple[str, ...], tuple[int, ...]]:
        for split in SPLITS:
            self.check_split(spec, split)
        return spec.names, numbered(spec.names)

    def check_split(self, spec: SpecView, split: str) -> None:
        require_image_folder(spec, split)
        if not labels_dir(spec, split).is_dir():
            raise DatasetError(
                f"{spec.yaml_path}: {split}: label folder {labels_dir(spec, split)} does not exist; "
                "the YOLO layout needs labels/<split>/*.txt beside images/<split>/"
            )

    def cache_key(self, spec: SpecView, split: str) -> CacheKey:
        """Every label file's name, size and time; the cache is ``<labels dir>.cache.npz``."""
        labels = labels_dir(spec, split)
        return CacheKey(scan(labels, (".txt",)), labels.with_name(labels.name + ".cache.npz"))

    def read_split(self, spec: SpecView, split: str, images: list[Path], problems: Problems) -> list[ImageRecord]:
        image_dir, labels = spec.split_dir(split), labels_dir(spec, split)
        records = []
        for path, check in zip(images, check_images(images)):
            if check.shape is None:
                problems.report("skipped_images", f"{path}: unreadable image ({check.problem}); skipped")
                continue
            problems.stats["exif_rotated"] += check.rotated
            label_path = (labels / path.relative_to(image_dir)).with_suffix(".txt")
            if label_path.is_file():
                boxes, classes, areas = parse_yolo_labels(label_path, check.shape, len(spec.names), problems)
            else:
                problems.stats["missing_labels"] += 1  # common for background images, so counted but not logged
                boxes, classes, areas = np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)
            problems.stats["background_images"] += not len(boxes)
            records.append(ImageRecord(path, len(records), check.shape, boxes, classes, areas))
        return records

    @classmethod
    def write_split(cls, out: Path, split: str, items: list[ConvertItem], spec: SpecView) -> list[ConvertItem]:
        """``images/<split>/`` and ``labels/<split>/*.txt``; of two images with one label file name (``a.jpg``,
        ``a.png``) the second is skipped (logged)."""
        written, label_files = [], set()
        for item in items:
            label = Path(item.file_name).with_suffix(".txt").as_posix()
            if label in label_files:
                logger.warning(
                    "%s: same label file %s as another image; YOLO cannot hold both, skipped", item.file_name, label
                )
                continue
            label_files.add(label)
            _write_labels(confined(out / "labels" / split, label), item.record)
            copy_image(item.record, out / "images" / split, item.file_name)
            written.append(item)
        return written

    @classmethod
    def data_yaml(cls, names: tuple[str, ...], splits: tuple[str, ...] = SPLITS) -> dict[str, Any]:
        return {"path": ".", **{split: f"images/{split}" for split in splits}, "names": list(names)}


def parse_yolo_labels(
    label_path: Path, shape: tuple[int, int], nc: int, problems: Problems
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``cls cx cy w h`` (normalised) -> (boxes ``[n, 4]`` xyxy pixels, classes ``[n]``, areas ``[n]``); bad
    rows are skipped and counted."""
    h, w = shape
    boxes, classes = [], []
    try:
        lines = label_path.read_text(encoding="utf-8-sig", errors="replace").splitlines()  # sig: a BOM is no row
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
            problems.report("bad_labels", f"{where}: {quoted(line.strip())} is not numeric; row skipped")
            continue
        if len(values) != 5:
            problems.report("bad_labels", f"{where}: {len(values)} columns, expected 5 (cls cx cy w h); row skipped")
        elif not all(math.isfinite(v) for v in values):
            problems.report("bad_labels", f"{where}: non-finite value in {quoted(line.strip())}; row skipped")
        elif values[0] != int(values[0]) or not 0 <= values[0] < nc:
            problems.report("bad_labels", f"{where}: class {parts[0]} not an integer in 0..{nc - 1}; row skipped")
        else:
            cx, cy, bw, bh = values[1] * w, values[2] * h, values[3] * w, values[4] * h
            boxes.append((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2))
            classes.append(int(values[0]))
    return clean_boxes(str(label_path), np.array(boxes), np.array(classes), shape, problems)


def _write_labels(path: Path, record: ImageRecord) -> None:
    """Rows ``cls cx cy w h``, normalised by the image size, 6 decimals; an empty file for a background image."""
    h, w = record.shape
    b = record.boxes_xyxy.astype(np.float64)
    centre_size = np.stack([(b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h,
                            (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h], axis=1)  # fmt: skip
    rows = [f"{c} " + " ".join(f"{v:.6f}" for v in box) for c, box in zip(record.classes.tolist(), centre_size)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(row + "\n" for row in rows))
