"""``yolorep convert``: rewrite a data set from the VOC, COCO or YOLO layout into the COCO or YOLO layout.

What is written: copies of the images of the train and val splits (and of a declared test split), their boxes and
classes as yolorep loads them (so the loader's rules apply: clipped, repaired, dropped and counted, with the counts
logged), the class names, and a data YAML (``DST/data.yaml``) that ``yolorep train --data`` takes as it is. Box
coordinates are kept as floats in COCO and normalised to 6 decimals in YOLO.

What each layout cannot hold is stated in a log line:

* VOC -> COCO: ``difficult`` and ``truncated`` are kept as extra annotation keys; pycocotools and yolorep's COCO
  loader do not read them, so a converted set counts difficult objects in evaluation, where the VOC layout
  ignores them.
* -> YOLO: rows hold a class and a box only: difficult/truncated flags, COCO crowd regions, image ids and category
  ids (classes become ``0..nc-1``) are not kept.
* COCO ->: segmentations, keypoints, licences and info are not copied; an annotation's ``area`` becomes its box
  area (COCOeval's small/medium/large ranges use it).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from yolorep.assets import find_builtin_data
from yolorep.atomic import partial_dir
from yolorep.confined import confined
from yolorep.datasets import voc
from yolorep.datasets.records import IMAGE_SUFFIXES, ImageRecord, load_records
from yolorep.datasets.spec import SPLITS, DataSpec, ensure_data, ensure_split, load_data_spec, read_json
from yolorep.errors import ArgumentError, DatasetError

__all__ = ["SOURCE_LAYOUTS", "TARGET_LAYOUTS", "convert"]

logger = logging.getLogger(__name__)

SOURCE_LAYOUTS = ("voc", "coco", "yolo")
TARGET_LAYOUTS = ("coco", "yolo")


def convert(from_format: str, to_format: str, src: str | Path, dst: str | Path) -> Path:
    """Convert the data set ``src`` (``from_format`` layout) into a new folder ``dst`` (``to_format`` layout).

    Args:
        from_format: ``"voc"``, ``"coco"`` or ``"yolo"``.
        to_format: ``"coco"`` or ``"yolo"``.
        src: a data YAML (a built-in one such as ``shapes.yaml`` by name), or a folder: one holding ``data.yaml``,
            or a VOC folder whose splits are ``ImageSets/Main/{train,val}.txt``, ``{train,val}.txt`` list files or
            ``images/{train,val}/`` folders.
        dst: a folder that does not exist yet (or is empty); written whole or not at all.

    Returns:
        ``dst``, holding ``data.yaml``, ``images/{train,val}/`` and ``annotations/instances_{train,val}.json``
        (COCO) or ``labels/{train,val}/*.txt`` (YOLO).

    Raises:
        ArgumentError: an unknown layout name.
        DatasetError: ``src`` is missing or not of ``from_format``, ``dst`` is not empty, or the data is unusable.
    """
    if from_format not in SOURCE_LAYOUTS:
        raise ArgumentError(f"--from: {from_format!r} is not a layout; use one of {', '.join(SOURCE_LAYOUTS)}")
    if to_format not in TARGET_LAYOUTS:
        raise ArgumentError(
            f"--to: {to_format!r} is not a layout convert writes; use one of {', '.join(TARGET_LAYOUTS)}"
        )
    spec = _source_spec(Path(src), from_format)
    dst = Path(dst).resolve()
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise DatasetError(f"{dst}: DST exists and is not an empty folder; give a new folder")
    if dst == spec.root or spec.root in dst.parents:
        raise DatasetError(f"{dst}: DST lies inside the source data set {spec.root}; give a folder outside it")
    work = partial_dir(dst)  # renamed to dst once complete; a killed convert's is removed by the next one
    totals: dict[str, int] = {"images": 0, "boxes": 0, "difficult": 0, "truncated": 0, "crowd": 0}
    try:
        for split in spec.splits:  # a test split too, when the source declares one
            ensure_split(spec, split)
            items = _read_split(spec, split)
            _write_split(spec, split, items, work, to_format, totals)
        (work / "data.yaml").write_text(yaml.safe_dump(_data_yaml(spec, to_format), sort_keys=False))
        if dst.exists():
            dst.rmdir()
        work.rename(dst)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _log_summary(spec, to_format, dst, totals)
    return dst


def _source_spec(src: Path, layout: str) -> DataSpec:
    if not src.exists():
        src = find_builtin_data(src) or src
    if not src.exists():
        raise DatasetError(f"{src}: SRC not found; give a data YAML or a data set folder")
    if src.is_dir() and (src / "data.yaml").is_file():
        src = src / "data.yaml"
    if src.is_file():
        spec = load_data_spec(src)
    elif layout == "voc":
        spec = _voc_folder_spec(src.resolve())
    else:
        raise DatasetError(
            f"{src}: no data.yaml in this folder; give the data YAML of the {layout} set (it names the splits "
            "and the class names)"
        )
    if spec.layout != layout:
        raise DatasetError(f"{src}: a {spec.layout} data set, not {layout}; use --from {spec.layout}")
    return spec


def _voc_folder_spec(root: Path) -> DataSpec:
    """A spec for a VOC folder without YAML: splits from ``ImageSets/Main``, root list files or image folders."""
    images, annotations = voc.find_folders(str(root), root, None, None)
    paths = {}
    for split in SPLITS:
        candidates = (root / "ImageSets" / "Main" / f"{split}.txt", root / f"{split}.txt", images / split)
        paths[split] = next((c for c in candidates if c.exists()), None)
        if paths[split] is None:
            raise DatasetError(
                f"{root}: {split}: no split found (looked for {', '.join(str(c) for c in candidates)}); "
                "write list files of image names, or give a data YAML with train and val"
            )
    spec = DataSpec(root, root, paths["train"], paths["val"], (), voc_images=images, voc_annotations=annotations)
    return ensure_data(spec)


def _read_split(spec: DataSpec, split: str) -> list[tuple[ImageRecord, str, np.ndarray | None]]:
    """``(record, file name relative to the split's image folder, VOC truncated flags)`` of each image."""
    records = load_records(spec, split).records
    base = spec.split_dir(split)
    if spec.is_voc and not base.is_dir():
        base = spec.voc_images
    truncated: dict[Path, np.ndarray] = {}
    if spec.is_voc:  # the records keep what training needs; read the truncated flags again, by the same rules
        pairs = voc.list_split(spec.voc_images, spec.voc_annotations, spec.split_dir(split), IMAGE_SUFFIXES, _quiet)
        xml_of = dict(pairs)
        for r in records:
            targets = voc.read_targets(xml_of.get(r.path), r.shape, spec.names, _quiet, {})
            if targets is not None and len(targets.truncated) == len(r.classes):
                truncated[r.path] = targets.truncated
    return [(r, r.path.relative_to(base).as_posix(), truncated.get(r.path)) for r in records]


def _quiet(*_: Any) -> None:
    """A problem counter that does nothing: problems were reported when the records were loaded."""


def _write_split(
    spec: DataSpec,
    split: str,
    items: list[tuple[ImageRecord, str, np.ndarray | None]],
    work: Path,
    to_format: str,
    totals: dict[str, int],
) -> None:
    crowds = _coco_crowds(spec, split, {r.image_id for r, _, _ in items}, totals) if spec.is_coco else {}
    images, annotations, label_files = [], [], set()
    for record, file_name, truncated in items:
        difficult = record.difficult if record.difficult is not None else np.zeros(len(record.classes), bool)
        truncated = truncated if truncated is not None else np.zeros(len(record.classes), bool)
        totals["difficult"] += int(difficult.sum())
        totals["truncated"] += int(truncated.sum())
        totals["crowd"] += len(crowds.get(record.image_id, []))
        if to_format == "yolo":
            label = Path(file_name).with_suffix(".txt").as_posix()
            if label in label_files:
                logger.warning(
                    "%s: same label file %s as another image; YOLO cannot hold both, skipped", file_name, label
                )
                continue
            label_files.add(label)
            _write_yolo_labels(confined(work / "labels" / split, label), record)
        else:
            h, w = record.shape
            images.append({"id": record.image_id, "file_name": file_name, "width": w, "height": h})
            annotations += _coco_annotations(spec, record, difficult, truncated, len(annotations))
            for crowd in crowds.get(record.image_id, []):
                annotations.append({"id": len(annotations) + 1, **crowd})
        target = confined(work / "images" / split, file_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():  # two COCO entries may name one file
            shutil.copy2(record.path, target)  # a copy, not a link: editing the new set must not edit the source
        totals["images"] += 1
        totals["boxes"] += len(record.classes)
    if to_format == "coco":
        categories = [{"id": c, "name": n, "supercategory": ""} for c, n in zip(spec.category_ids, spec.names)]
        coco = {"info": {"description": f"converted by yolorep from {spec.layout}: {spec.yaml_path}"},
                "images": images, "annotations": annotations, "categories": categories}  # fmt: skip
        path = work / "annotations" / f"instances_{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(coco))


def _write_yolo_labels(path: Path, record: ImageRecord) -> None:
    """Rows ``cls cx cy w h``, normalised by the image size, 6 decimals; an empty file for a background image."""
    h, w = record.shape
    b = record.boxes_xyxy.astype(np.float64)
    centre_size = np.stack([(b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h,
                            (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h], axis=1)  # fmt: skip
    rows = [f"{c} " + " ".join(f"{v:.6f}" for v in box) for c, box in zip(record.classes.tolist(), centre_size)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(row + "\n" for row in rows))


def _coco_annotations(
    spec: DataSpec, record: ImageRecord, difficult: np.ndarray, truncated: np.ndarray, start: int
) -> list[dict[str, Any]]:
    anns = []
    for k, ((x0, y0, x1, y1), c) in enumerate(zip(record.boxes_xyxy.tolist(), record.classes.tolist())):
        w, h = x1 - x0, y1 - y0
        ann = {"id": start + k + 1, "image_id": record.image_id, "category_id": spec.category_ids[c],
               "bbox": [round(v, 4) for v in (x0, y0, w, h)], "area": round(w * h, 4), "iscrowd": 0}  # fmt: skip
        if spec.is_voc:
            ann.update(difficult=int(difficult[k]), truncated=int(truncated[k]))
        anns.append(ann)
    return anns


def _coco_crowds(
    spec: DataSpec, split: str, image_ids: set[int], totals: dict[str, int]
) -> dict[int, list[dict[str, Any]]]:
    """The crowd regions of a COCO source (the records hold no crowd), by image id, box and area only. Counts the
    ``difficult``/``truncated`` keys (of a converted VOC set) in ``totals``: they are not copied."""
    crowds: dict[int, list[dict[str, Any]]] = {}
    for ann in read_json(spec.split_json(split)).get("annotations", []):
        try:
            image_id, bbox = int(ann["image_id"]), [float(v) for v in ann["bbox"]]
            keep = ann.get("iscrowd") and image_id in image_ids and ann["category_id"] in spec.category_ids
            if not ann.get("iscrowd") and image_id in image_ids:
                totals["difficult"] += bool(ann.get("difficult"))
                totals["truncated"] += bool(ann.get("truncated"))
        except (KeyError, TypeError, ValueError):
            continue  # counted as a bad label when the records were loaded
        if keep and len(bbox) == 4 and all(np.isfinite(bbox)):
            area = float(ann.get("area", bbox[2] * bbox[3]))
            entry = {"image_id": image_id, "category_id": ann["category_id"], "bbox": bbox, "area": area}
            crowds.setdefault(image_id, []).append({**entry, "iscrowd": 1})
    return crowds


def _data_yaml(spec: DataSpec, to_format: str) -> dict[str, Any]:
    data: dict[str, Any] = {"path": ".", **{split: f"images/{split}" for split in spec.splits}}
    if to_format == "coco":
        data.update({f"{split}_json": f"annotations/instances_{split}.json" for split in spec.splits})
    else:
        data["names"] = list(spec.names)
    return data


def _log_summary(spec: DataSpec, to_format: str, dst: Path, totals: dict[str, int]) -> None:
    lost = []
    if to_format == "yolo" or spec.is_coco:  # only VOC -> COCO keeps the flags (as extra keys)
        lost += [f"{totals[k]} {k} flags" for k in ("difficult", "truncated") if totals[k]]
    if to_format == "yolo":
        lost += [f"{totals['crowd']} crowd regions"] if totals["crowd"] else []
        if spec.is_coco:
            lost.append("image ids and category ids (classes become 0..nc-1)")
    if spec.is_coco:
        lost.append("segmentations, keypoints, licences and info (areas become box areas)")
    if lost:
        logger.warning("convert: the %s layout does not keep: %s", to_format, "; ".join(lost))
    if spec.is_voc and to_format == "coco":
        logger.info(
            "convert: VOC difficult/truncated flags kept as the annotation keys 'difficult'/'truncated'; pycocotools "
            "and yolorep's COCO loader do not read them (difficult objects count as ordinary ones there)"
        )
    logger.info(
        "convert: wrote %s (%s layout): %d images, %d boxes; train on it with yolorep train --data %s",
        dst, to_format, totals["images"], totals["boxes"], dst / "data.yaml",
    )  # fmt: skip
