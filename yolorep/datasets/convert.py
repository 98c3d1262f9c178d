"""``yolorep convert``: read a data set with one layout and write it with another (:mod:`yolorep.datasets.layouts`;
VOC, COCO and YOLO are read, COCO and YOLO written).

What is written: copies of the images of the train and val splits (and of a declared test split), their boxes and
classes as yolorep loads them (so the loader's rules apply: clipped, repaired, dropped and counted, with the counts
logged), the class names, and a data YAML (``DST/data.yaml``) that ``yolorep train --data`` takes as it is. Box
coordinates are kept as floats in COCO and normalised to 6 decimals in YOLO.

What the target layout cannot hold is stated in a log line (each layout's ``extras`` say what a source holds
beyond boxes and classes, each writer's ``keeps`` what it can hold):

* VOC -> COCO: ``difficult`` and ``truncated`` are kept as extra annotation keys; pycocotools and yolorep's COCO
  loader do not read them, so a converted set counts difficult objects in evaluation, where the VOC layout
  ignores them.
* -> YOLO: rows hold a class and a box only: difficult/truncated flags, COCO crowd regions, image ids and category
  ids (classes become ``0..nc-1``) are not kept.
* COCO ->: segmentations, keypoints, licences and info are not copied; an annotation's ``area`` becomes its box
  area (COCOeval's small/medium/large ranges use it).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import yaml

from yolorep.assets import find_builtin_data
from yolorep.atomic import partial_dir
from yolorep.datasets.layouts.base import ConvertItem, Extra, Layout, merge_extras
from yolorep.datasets.layouts.registry import LAYOUTS, WRITERS
from yolorep.datasets.records import load_records
from yolorep.datasets.spec import DataSpec, ensure_data, ensure_split, load_data_spec
from yolorep.errors import ArgumentError, DatasetError

__all__ = ["SOURCE_LAYOUTS", "TARGET_LAYOUTS", "convert"]

logger = logging.getLogger(__name__)

SOURCE_LAYOUTS = tuple(LAYOUTS)
TARGET_LAYOUTS = tuple(WRITERS)


def convert(from_format: str, to_format: str, src: str | Path, dst: str | Path) -> Path:
    """Convert the data set ``src`` (``from_format`` layout) into a new folder ``dst`` (``to_format`` layout).

    Args:
        from_format: a layout yolorep reads (``SOURCE_LAYOUTS``: ``"voc"``, ``"coco"``, ``"yolo"``).
        to_format: a layout yolorep writes (``TARGET_LAYOUTS``: ``"coco"``, ``"yolo"``).
        src: a data YAML (a built-in one such as ``shapes.yaml`` by name), or a folder: one holding ``data.yaml``,
            or one the layout reads without YAML (a VOC folder whose splits are ``ImageSets/Main/{train,val}.txt``,
            ``{train,val}.txt`` list files or ``images/{train,val}/`` folders).
        dst: a folder that does not exist yet (or is empty); written whole or not at all.

    Returns:
        ``dst``, holding ``data.yaml``, ``images/{train,val}/`` and ``annotations/instances_{train,val}.json``
        (COCO) or ``labels/{train,val}/*.txt`` (YOLO).

    Raises:
        ArgumentError: an unknown layout name.
        DatasetError: ``src`` is missing or not of ``from_format``, ``dst`` is not empty, or the data is unusable.
    """
    if from_format not in LAYOUTS:
        raise ArgumentError(f"--from: {from_format!r} is not a layout; use one of {', '.join(LAYOUTS)}")
    if to_format not in WRITERS:
        raise ArgumentError(f"--to: {to_format!r} is not a layout convert writes; use one of {', '.join(WRITERS)}")
    writer = WRITERS[to_format]
    spec = _source_spec(Path(src), LAYOUTS[from_format])
    dst = Path(dst).resolve()
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise DatasetError(f"{dst}: DST exists and is not an empty folder; give a new folder")
    if dst == spec.root or spec.root in dst.parents:
        raise DatasetError(f"{dst}: DST lies inside the source data set {spec.root}; give a folder outside it")
    work = partial_dir(dst)  # renamed to dst once complete; a killed convert's is removed by the next one
    held: list[Extra] = []
    written: list[ConvertItem] = []
    try:
        for split in spec.splits:  # a test split too, when the source declares one
            ensure_split(spec, split)
            items, split_held = _read_split(spec, split)
            written += writer.write_split(work, split, items, spec)
            held += split_held
        (work / "data.yaml").write_text(yaml.safe_dump(writer.data_yaml(spec.names, spec.splits), sort_keys=False))
        if dst.exists():
            dst.rmdir()
        work.rename(dst)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _log_summary(writer, merge_extras(held), dst, written)
    return dst


def _source_spec(src: Path, reader: type[Layout]) -> DataSpec:
    if not src.exists():
        src = find_builtin_data(src) or src
    if not src.exists():
        raise DatasetError(f"{src}: SRC not found; give a data YAML or a data set folder")
    if src.is_dir() and (src / "data.yaml").is_file():
        src = src / "data.yaml"
    if src.is_file():
        spec = load_data_spec(src)
    else:
        root = src.resolve()
        found = reader.from_folder(root)
        if found is None:
            raise DatasetError(
                f"{src}: no data.yaml in this folder; give the data YAML of the {reader.name} set (it names the "
                "splits and the class names)"
            )
        layout, paths = found
        spec = ensure_data(DataSpec(root, root, paths["train"], paths["val"], (), layout))
    if spec.layout.name != reader.name:
        raise DatasetError(f"{src}: a {spec.layout.name} data set, not {reader.name}; use --from {spec.layout.name}")
    return spec


def _read_split(spec: DataSpec, split: str) -> tuple[list[ConvertItem], list[Extra]]:
    """The split's records with their file names relative to the split's folder (or, for a split given as a list
    file, to the layout's image folder) and per-object flags, and what the split holds beyond them."""
    records = load_records(spec, split).records
    base = spec.split_dir(split)
    if not base.is_dir():
        base = spec.layout.image_folder(spec, split)
    flags, held = spec.layout.extras(spec, split, records)
    items = [ConvertItem(r, r.path.relative_to(base).as_posix(), f) for r, f in zip(records, flags)]
    return items, held


def _log_summary(writer: type[Layout], held: list[Extra], dst: Path, written: list[ConvertItem]) -> None:
    lost = [extra.text() for extra in held if extra.count != 0 and not (extra.carried and extra.what in writer.keeps)]
    if lost:
        logger.warning("convert: the %s layout does not keep: %s", writer.name, "; ".join(lost))
    for note in writer.notes({extra.what for extra in held if extra.carried and extra.what in writer.keeps}):
        logger.info("convert: %s", note)
    boxes = sum(len(item.record.classes) for item in written)
    logger.info(
        "convert: wrote %s (%s layout): %d images, %d boxes; train on it with yolorep train --data %s",
        dst, writer.name, len(written), boxes, dst / "data.yaml",
    )  # fmt: skip
