"""The YOLO layout: ``images/.../x.jpg`` beside ``labels/.../x.txt`` with rows ``cls cx cy w h`` (normalised)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from yolorep.datasets.images import check_images
from yolorep.datasets.spec import DataSpec
from yolorep.datasets.targets import ImageRecord, Problems, clean_boxes
from yolorep.errors import quoted

__all__ = ["load_yolo", "parse_yolo_labels"]


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


def load_yolo(spec: DataSpec, split: str, paths: list[Path], problems: Problems) -> list[ImageRecord]:
    image_dir, labels_dir = spec.split_dir(split), spec.labels_dir(split)
    records = []
    for path, check in zip(paths, check_images(paths)):
        if check.shape is None:
            problems.report("skipped_images", f"{path}: unreadable image ({check.problem}); skipped")
            continue
        problems.stats["exif_rotated"] += check.rotated
        label_path = (labels_dir / path.relative_to(image_dir)).with_suffix(".txt")
        if label_path.is_file():
            boxes, classes, areas = parse_yolo_labels(label_path, check.shape, spec.nc, problems)
        else:
            problems.stats["missing_labels"] += 1  # common for background images, so counted but not logged
            boxes, classes, areas = np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)
        problems.stats["background_images"] += not len(boxes)
        records.append(ImageRecord(path, len(records), check.shape, boxes, classes, areas))
    return records
