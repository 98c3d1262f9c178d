"""The COCO layout: an instances JSON per split (``images``, ``annotations``, ``categories``) beside the images.

The YAML names the files with ``train_json`` and ``val_json`` (relative to ``path``; ``test_json`` too for a
declared ``test`` split); the classes are the val file's
categories unless ``names`` is given. Category ids map to contiguous classes by ascending id. Image ids must be
unique integers (duplicates would attach one file's boxes to another's). Crowd regions are kept apart, as COCOeval
uses them. Written by ``convert --to coco`` with the ids and crowd regions; segmentations, keypoints, licences,
info and extra annotation keys are not read, so never copied.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolorep.confined import relative_inside
from yolorep.datasets.images import check_images
from yolorep.datasets.layouts.base import (
    CROWDS,
    DIFFICULT,
    IDS,
    SPLITS,
    TRUNCATED,
    CacheKey,
    ConvertItem,
    Evidence,
    Extra,
    Extras,
    Layout,
    SpecView,
    YamlSource,
    copy_image,
    require_image_folder,
)
from yolorep.datasets.targets import ImageRecord, Problems, clean_boxes
from yolorep.errors import DatasetError, quoted

__all__ = ["CocoLayout", "read_coco_categories", "read_json"]

_LOST_ON_READ = "segmentations, keypoints, licences and info (areas become box areas)"


@dataclass(frozen=True)
class CocoLayout(Layout):
    """Attributes: the instances files of the two splits, and of the test split when the YAML declares one."""

    train_json: Path
    val_json: Path
    test_json: Path | None = None

    name = "coco"
    title = "COCO"
    own_keys = ("train_json", "val_json")
    test_keys = {"test_json": "<instances file>"}
    writes = True
    keeps = frozenset({DIFFICULT, TRUNCATED, CROWDS, IDS})

    @classmethod
    def detect(cls, source: YamlSource) -> Evidence:
        return Evidence.KEYS if any(source.raw.get(k) is not None for k in cls.own_keys) else Evidence.NONE

    @classmethod
    def from_yaml(cls, source: YamlSource) -> CocoLayout:
        files = {}
        for key in cls.own_keys:
            value = source.raw.get(key)
            if value is not None and not isinstance(value, str):
                raise DatasetError(
                    f"{source.yaml_path}: {key}: expected a file path relative to path, got {quoted(value)}"
                )
            files[key] = None if value is None else (source.root / value).resolve()
        if None not in files.values():
            return cls(**files, test_json=_test_json(source))
        if any(files.values()):
            raise DatasetError(f"{source.yaml_path}: train_json/val_json: give both; the COCO layout reads an "
                               "instances file per split")  # fmt: skip
        raise DatasetError(
            f"{source.yaml_path}: layout: coco, but train_json/val_json are missing; the COCO layout, and only it, "
            "names JSON files"
        )

    def json_of(self, split: str) -> Path:
        """The instances file of ``split`` (a test split's only when declared: ``DataSpec.split_dir`` checks)."""
        return {"train": self.train_json, "val": self.val_json, "test": self.test_json}[split]

    def default_category_ids(self, names: tuple[str, ...]) -> tuple[int, ...]:
        return ()  # read from the JSON categories by check_data

    def check_data(self, spec: SpecView) -> tuple[tuple[str, ...], tuple[int, ...]]:
        for split in SPLITS:
            self.check_split(spec, split)
        categories = read_coco_categories(self.val_json)
        ids = tuple(sorted(categories))
        names = spec.names or tuple(categories[i] for i in ids)
        if len(names) != len(ids):
            raise DatasetError(
                f"{spec.yaml_path}: names: {len(names)} names but {self.val_json} has {len(ids)} categories; "
                "drop names to take them from the JSON, or make the counts agree"
            )
        return names, ids

    def check_split(self, spec: SpecView, split: str) -> None:
        require_image_folder(spec, split)
        if not self.json_of(split).is_file():
            raise DatasetError(f"{spec.yaml_path}: {split}_json: {self.json_of(split)} does not exist; check the path")

    def cache_key(self, spec: SpecView, split: str) -> CacheKey:
        """The instances file's name, size and time; the cache is ``<json stem>.cache.npz`` beside it."""
        json_path = self.json_of(split)
        st = json_path.stat()
        return CacheKey(
            [(str(json_path), st.st_size, st.st_mtime_ns)], json_path.with_name(json_path.stem + ".cache.npz")
        )

    def read_split(self, spec: SpecView, split: str, images: list[Path], problems: Problems) -> list[ImageRecord]:
        json_path, image_dir = self.json_of(split), spec.split_dir(split)
        data = read_json(json_path)
        if not isinstance(data.get("images"), list) or not isinstance(data.get("annotations", []), list):
            raise DatasetError(f"{json_path}: images/annotations: missing or not lists; not a COCO instances file")
        if split != "val":  # classes come from the val file: the train file must list the same categories
            _check_same_categories(json_path, read_coco_categories(json_path, data), self.val_json)
        entries = _image_entries(json_path, image_dir, data["images"], problems)
        targets = _targets(json_path, data.get("annotations", []), entries, spec.category_ids, problems)
        return _records(json_path, entries, targets, problems)

    def extras(self, spec: SpecView, split: str, records: list[ImageRecord]) -> Extras:
        """Crowd regions and ids (kept by a COCO writer); the ``difficult``/``truncated`` keys of a converted VOC
        set, segmentations and the rest, which the records do not hold."""
        kept = {r.image_id for r in records}
        difficult = truncated = 0
        for ann in read_json(self.json_of(split)).get("annotations", []):
            if not isinstance(ann, dict) or ann.get("iscrowd") or not _is_int(ann.get("image_id")):
                continue  # a crowd region, or a bad label counted when the records were read
            if ann["image_id"] in kept:
                difficult += bool(ann.get("difficult"))
                truncated += bool(ann.get("truncated"))
        crowds = sum(len(r.crowd_classes) for r in records)
        held = [Extra(DIFFICULT, difficult, False), Extra(TRUNCATED, truncated, False), Extra(CROWDS, crowds, True),
                Extra(IDS, None, True), Extra(_LOST_ON_READ, None, False)]  # fmt: skip
        return Extras([{} for _ in records], held)

    @classmethod
    def write_split(cls, out: Path, split: str, items: list[ConvertItem], spec: SpecView) -> list[ConvertItem]:
        """``images/<split>/`` and ``annotations/instances_<split>.json``; per-object flags become extra
        annotation keys; crowd regions follow an image's objects."""
        images, annotations = [], []
        for item in items:
            record = item.record
            h, w = record.shape
            images.append({"id": record.image_id, "file_name": item.file_name, "width": w, "height": h})
            annotations += _annotations(record, item.flags, spec.category_ids, len(annotations))
            copy_image(record, out / "images" / split, item.file_name)
        categories = [{"id": c, "name": n, "supercategory": ""} for c, n in zip(spec.category_ids, spec.names)]
        coco = {"info": {"description": f"converted by yolorep from {spec.layout.name}: {spec.yaml_path}"},
                "images": images, "annotations": annotations, "categories": categories}  # fmt: skip
        path = out / "annotations" / f"instances_{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(coco))
        return items

    @classmethod
    def data_yaml(cls, names: tuple[str, ...], splits: tuple[str, ...] = SPLITS) -> dict[str, Any]:
        files = {f"{split}_json": f"annotations/instances_{split}.json" for split in splits}
        return {"path": ".", **{split: f"images/{split}" for split in splits}, **files}

    @classmethod
    def notes(cls, kept: set[str]) -> list[str]:
        if not kept & {DIFFICULT, TRUNCATED}:
            return []
        return ["VOC difficult/truncated flags kept as the annotation keys 'difficult'/'truncated'; pycocotools and "
                "yolorep's COCO loader do not read them (difficult objects count as ordinary ones there)"]  # fmt: skip


def _test_json(source: YamlSource) -> Path | None:
    """The test split's instances file; a COCO test split names both its images (``test``) and ``test_json``."""
    value, has_test = source.raw.get("test_json"), source.raw.get("test") is not None
    if value is not None and not isinstance(value, str):
        raise DatasetError(f"{source.yaml_path}: test_json: expected a file path relative to path, got {quoted(value)}")
    if has_test != (value is not None):
        missing = "test_json" if has_test else "test"
        raise DatasetError(
            f"{source.yaml_path}: {missing}: missing; a COCO test split needs both test (images) and test_json"
        )
    return None if value is None else (source.root / value).resolve()


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


Targets = dict[int, tuple[list, list, list, list, list, list]]


def _targets(
    json_path: Path,
    annotations: list[Any],
    entries: dict[int, tuple],
    category_ids: tuple[int, ...],
    problems: Problems,
) -> Targets:
    """Per image id: (boxes, classes, areas) of its objects, then of its crowd regions; bad annotations are
    reported and skipped."""
    category_index = {c: i for i, c in enumerate(category_ids)}
    targets: Targets = {i: ([], [], [], [], [], []) for i in entries}
    for k, ann in enumerate(annotations):
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
    return targets


def _records(json_path: Path, entries: dict[int, tuple], targets: Targets, problems: Problems) -> list[ImageRecord]:
    """The records of the readable images whose size agrees with the JSON, by ascending image id."""
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


def _annotations(
    record: ImageRecord, flags: dict[str, np.ndarray], category_ids: tuple[int, ...], start: int
) -> list[dict[str, Any]]:
    """The record's objects, then its crowd regions, as COCO annotations numbered from ``start + 1``."""
    anns = []
    for k, ((x0, y0, x1, y1), c) in enumerate(zip(record.boxes_xyxy.tolist(), record.classes.tolist())):
        w, h = x1 - x0, y1 - y0
        ann = {"id": start + k + 1, "image_id": record.image_id, "category_id": category_ids[c],
               "bbox": [round(v, 4) for v in (x0, y0, w, h)], "area": round(w * h, 4), "iscrowd": 0}  # fmt: skip
        anns.append({**ann, **{key: int(values[k]) for key, values in flags.items()}})
    crowds = zip(record.crowd_xyxy.tolist(), record.crowd_classes.tolist(), record.crowd_areas.tolist())
    for (x0, y0, x1, y1), c, area in crowds:
        bbox = [round(v, 4) for v in (x0, y0, x1 - x0, y1 - y0)]
        anns.append({"id": start + len(anns) + 1, "image_id": record.image_id, "category_id": category_ids[c],
                     "bbox": bbox, "area": round(area, 4), "iscrowd": 1})  # fmt: skip
    return anns


def read_coco_categories(json_path: Path, data: dict[str, Any] | None = None) -> dict[int, str]:
    """``{category id: name}`` from a COCO instances file (or its already parsed ``data``), in file order.

    Raises:
        DatasetError: categories missing, malformed, empty or sharing an id (one would silently rename the other).
    """
    data = read_json(json_path) if data is None else data
    categories: dict[int, str] = {}
    try:
        for k, category in enumerate(data["categories"]):
            category_id, name = category["id"], category["name"]
            if isinstance(category_id, bool) or not isinstance(category_id, int) or not isinstance(name, str):
                raise TypeError("id must be an integer and name a string")
            if category_id in categories:
                raise DatasetError(
                    f"{json_path}: categories[{k}] ({quoted(name)}) has id {category_id}, as an earlier category "
                    f"({quoted(categories[category_id])}); category ids must be unique"
                )
            categories[category_id] = name
    except (KeyError, TypeError) as e:
        raise DatasetError(
            f"{json_path}: categories: missing or malformed ({type(e).__name__}: {e}); expected a list of {{id, name}} "
            "with integer ids and string names"
        ) from None
    if not categories:
        raise DatasetError(f"{json_path}: categories: empty; a COCO instances file lists at least one category")
    return categories


def read_json(json_path: Path) -> dict[str, Any]:
    """Load a JSON object, turning a missing or corrupt file into a DatasetError."""
    try:
        with open(json_path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{json_path}: cannot read JSON ({e}); regenerate or re-download the file") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{json_path}: expected a JSON object with images, annotations, categories")
    return data
