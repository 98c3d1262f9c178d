"""The COCO layout: an instances JSON per split (``images``, ``annotations``, ``categories``) beside the images.

Category ids map to contiguous classes by ascending id. Image ids must be unique integers (duplicates would attach
one file's boxes to another's). Crowd regions are kept apart, as COCOeval uses them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from yolorep.confined import relative_inside
from yolorep.datasets.images import check_images
from yolorep.datasets.spec import DataSpec, read_coco_categories, read_json
from yolorep.datasets.targets import ImageRecord, Problems, clean_boxes
from yolorep.errors import DatasetError, quoted

__all__ = ["load_coco"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _image_entries(json_path: Path, image_dir: Path, images: list[Any], problems: Problems) -> dict[int, tuple]:
    """``{image id: (path, height, width)}``, path None for an image skipped because its ``file_name`` leaves the
    image folder; refuses ids that are not unique integers."""
    entries: dict[int, tuple] = {}
    first_index: dict[int, int] = {}
    for k, entry in enumerate(images):
        if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
            problems.report("skipped_images", f"{json_path}: images[{k}]: needs id and file_name; skipped")
            continue
        image_id = entry["id"]
        if not _is_int(image_id):
            raise DatasetError(
                f"{json_path}: images[{k}] ({quoted(entry['file_name'])}): id {quoted(image_id)} is not an integer; "
                "COCO image ids must be integers (convert them, and the annotations' image_id, to numbers)"
            )
        if image_id in entries:
            first = first_index[image_id]
            raise DatasetError(
                f"{json_path}: images[{first}] and images[{k}] ({quoted(entry['file_name'])}) share id {image_id}; "
                "COCO image ids must be unique (renumber one of them and its annotations)"
            )
        name = relative_inside(entry["file_name"]) if isinstance(entry["file_name"], str) else None
        if name is None:
            problems.report(
                "skipped_images", f"{json_path}: images[{k}]: file_name {quoted(entry['file_name'])} is not a path "
                f"inside the image folder {image_dir}; skipped (file names are relative to it)",
            )  # fmt: skip
        first_index[image_id] = k
        entries[image_id] = (name and image_dir / name, entry.get("height"), entry.get("width"))
    return entries


def _box(ann: Any) -> list[float] | None:
    """The annotation's bbox [x, y, w, h] as four finite numbers, or None."""
    bbox = ann.get("bbox")
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return None
    try:
        values = [float(v) for v in bbox]
    except (TypeError, ValueError):
        return None
    return values if all(math.isfinite(v) for v in values) else None


def _area(ann: dict[str, Any], bbox: list[float]) -> float:
    area = ann.get("area")
    return float(area) if isinstance(area, (int, float)) and math.isfinite(area) and area > 0 else bbox[2] * bbox[3]


def _check_same_categories(json_path: Path, categories: dict[int, str], val_json: Path) -> None:
    expected = read_coco_categories(val_json)
    if categories == expected:
        return
    differ = next(i for i in sorted(set(categories) | set(expected)) if categories.get(i) != expected.get(i))
    here, there = (quoted(c[differ]) if differ in c else "absent" for c in (categories, expected))
    raise DatasetError(
        f"{json_path}: categories differ from those of {val_json} (id {differ} is {here} here and {there} there); "
        "the train and val files must list the same categories"
    )


def load_coco(spec: DataSpec, split: str, problems: Problems) -> list[ImageRecord]:
    json_path, image_dir = spec.split_json(split), spec.split_dir(split)
    data = read_json(json_path)
    if not isinstance(data.get("images"), list) or not isinstance(data.get("annotations", []), list):
        raise DatasetError(f"{json_path}: images/annotations: missing or not lists; not a COCO instances file")
    if split != "val":  # classes come from the val file: the train file must list the same categories
        _check_same_categories(json_path, read_coco_categories(json_path, data), spec.val_json)
    category_index = {c: i for i, c in enumerate(spec.category_ids)}
    entries = _image_entries(json_path, image_dir, data["images"], problems)
    # per image: (boxes, classes, areas) of objects, then of crowd regions
    targets: dict[int, tuple[list, list, list, list, list, list]] = {i: ([], [], [], [], [], []) for i in entries}
    for k, ann in enumerate(data.get("annotations", [])):
        where = f"{json_path}: annotations[{k}]"
        bbox = _box(ann) if isinstance(ann, dict) else None
        if bbox is None or not _is_int(ann.get("image_id")) or not _is_int(ann.get("category_id")):
            shown = ann.get("bbox") if isinstance(ann, dict) else ann
            problems.report(
                "bad_labels", f"{where}: needs integer image_id and category_id and bbox [x, y, w, h] of 4 finite "
                f"numbers, got bbox {quoted(shown)}; skipped",
            )  # fmt: skip
            continue
        image_id, category = ann["image_id"], ann["category_id"]
        if image_id not in targets or category not in category_index:
            problems.report("bad_labels", f"{where}: unknown image_id {image_id} or category_id {category}; skipped")
            continue
        crowd = 3 if ann.get("iscrowd", 0) else 0
        problems.stats["crowd_boxes"] += bool(crowd)
        target = targets[image_id]
        target[crowd].append((bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]))
        target[crowd + 1].append(category_index[category])
        target[crowd + 2].append(_area(ann, bbox))

    ids = sorted(i for i, entry in entries.items() if entry[0] is not None)
    records = []
    for image_id, check in zip(ids, check_images([entries[i][0] for i in ids])):
        path, h, w = entries[image_id]
        if check.shape is None:
            problems.report("skipped_images", f"{path}: unreadable image ({check.problem}); skipped")
            continue
        if (h or check.shape[0], w or check.shape[1]) != check.shape:  # width/height are optional in the JSON
            size = f"{check.shape[1]}x{check.shape[0]}"
            problems.report("skipped_images", f"{path}: file is {size}, JSON says {quoted(w)}x{quoted(h)}; skipped")
            continue
        problems.stats["exif_rotated"] += check.rotated
        boxes, classes, areas, crowd, crowd_classes, crowd_areas = (np.array(v) for v in targets[image_id])
        where = f"{json_path}: image {image_id}"
        kept = clean_boxes(where, boxes, classes, check.shape, problems, areas)
        crowd_kept = clean_boxes(where, crowd, crowd_classes, check.shape, Problems(), crowd_areas)
        problems.stats["background_images"] += not len(kept[0])
        records.append(ImageRecord(path, image_id, check.shape, *kept, *crowd_kept))
    return records
