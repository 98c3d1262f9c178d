"""Pascal VOC annotations (the files of :mod:`yolorep.datasets.layouts.voc`): finding the files of a split and
reading their XML, with every oddity of real files clipped, repaired, skipped or refused, and counted.

Two layouts (the folders are found under the dataset root, or named by the YAML keys ``images``/``annotations``):

* devkit: ``JPEGImages/``, ``Annotations/*.xml``, ``ImageSets/Main/{train,val}.txt`` (one image id per line);
* flat: ``images/``, ``annotations/*.xml``; a split is a list file or a folder inside ``images/`` (its XML files
  then sit at the same relative path under ``annotations/``).

A list file names one image per line, relative to the image folder, with or without its extension; the image
may be ``.jpg``, ``.JPG``, ``.jpeg``, ``.png``, ... The XML of ``images/a/b.jpg`` is ``annotations/a/b.xml``.

Rules, applied per object (counts go to the loader's stats under the kind named here):

* coordinates are VOC's 1-based inclusive pixel indices: ``xmin..xmax`` covers ``[xmin - 1, xmax]`` in 0-based
  continuous pixels (the devkit's and detectron2's reading). Writers that use 0-based indices overhang by at most
  1 px, which is clipped without being counted;
* ``xmin > xmax`` or ``ymin > ymax``: a box drawn from the far corner; the corners are swapped (``flipped_boxes``);
* ``xmin == xmax`` or ``ymin == ymax``: zero-size, dropped (``dropped_boxes``);
* partly outside the image: clipped (``clipped_boxes``); wholly outside, or under 1 px after clipping: dropped
  (``dropped_boxes``);
* ``difficult``: kept as a training target and ignored in evaluation, as the VOC devkit does (the evaluators treat
  it as a crowd region: pycocotools ``iscrowd=1``), counted in ``difficult_boxes``;
* ``truncated``: an ordinary object, counted in ``truncated_boxes``;
* no ``<name>``, no ``<bndbox>``, or a coordinate that is not a finite number: the object is skipped
  (``bad_labels``); a class absent from ``names`` is refused: loading fails with a list of every such name;
* a file that is not valid XML, declares a DTD or entities (never needed; refused as unsafe, in any encoding) or is
  not an ``<annotation>``: the image is skipped (``bad_labels``), as is an image whose size differs from the XML's
  ``<size>`` (``skipped_images``);
* an image without XML file: kept as a background image (``missing_labels``); an XML file or list entry without
  image: skipped (``missing_images``); a second image of the same name (``a.jpg`` and ``a.png``): skipped
  (``skipped_images``).
"""

from __future__ import annotations

import logging
import math
import os
import xml.etree.ElementTree as ET  # the element type; parsing is defusedxml's
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Callable, NamedTuple

import defusedxml.ElementTree as defused
import numpy as np
from defusedxml import DefusedXmlException

from yolorep.datasets.walk import walk_files
from yolorep.errors import DatasetError, quoted

__all__ = [
    "STAT_KEYS",
    "VocTargets",
    "annotation_files",
    "check_folders",
    "check_split_names",
    "collect_names",
    "find_folders",
    "has_voc_annotations",
    "list_split",
    "parse_xml",
    "read_targets",
    "unknown_names_error",
]

logger = logging.getLogger(__name__)

# Counts the VOC loader adds to the common ones (images, skipped_images, bad_labels, dropped_boxes, ...).
STAT_KEYS = ("missing_images", "flipped_boxes", "clipped_boxes", "difficult_boxes", "truncated_boxes")
_MAX_XML_BYTES = 8 << 20  # a VOC file with hundreds of objects is ~100 KB
_LIST_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # stripped from list entries
_FOLDERS = {"images": ("JPEGImages", "images"), "annotations": ("Annotations", "annotations")}

# report(kind, message, count=1): the loader's problem counter (``targets.Problems.report``).
Report = Callable[..., None]


class VocTargets(NamedTuple):
    """The objects of one image that survive the rules above."""

    boxes_xyxy: np.ndarray  # [n, 4] float32, 0-based pixels of the image, clipped, every side >= 1 px
    classes: np.ndarray  # [n] int64 indices into names
    difficult: np.ndarray  # [n] bool: training targets that evaluation ignores
    truncated: np.ndarray  # [n] bool


def has_voc_annotations(root: Path) -> bool:
    """True when ``root`` holds ``Annotations/`` or an ``annotations/`` folder with an XML file in it."""
    if (root / "Annotations").is_dir():
        return True
    folder = root / "annotations"
    return folder.is_dir() and any(name.lower().endswith(".xml") for _, files in walk_files(folder) for name in files)


def find_folders(where: str, root: Path, images: str | None, annotations: str | None) -> tuple[Path, Path]:
    """The image and annotation folders: the YAML's ``images``/``annotations`` (relative to ``root``), else the
    first of ``JPEGImages``/``images`` and ``Annotations``/``annotations`` that exists under ``root`` (the first
    name when none does; :func:`check_folders` reports it)."""
    found = []
    for key, given in (("images", images), ("annotations", annotations)):
        if given is not None and not isinstance(given, str):
            raise DatasetError(f"{where}: {key}: expected a folder relative to path, got {quoted(given)}")
        candidates = (given,) if given else _FOLDERS[key]
        found.append(next((root / c for c in candidates if (root / c).is_dir()), root / candidates[0]).resolve())
    return found[0], found[1]


def check_folders(where: str, images_root: Path, annotations_root: Path, split_paths: dict[str, Path]) -> None:
    """The two folders exist, and each split is an existing list file or a folder inside ``images_root``."""
    for key, folder in (("images", images_root), ("annotations", annotations_root)):
        if not folder.is_dir():
            raise DatasetError(
                f"{where}: {key}: no folder {folder}; the VOC layout needs {'/ or '.join(_FOLDERS[key])}/ under "
                f"path (or set {key}: <folder relative to path>)"
            )
    for split, path in split_paths.items():
        if not path.exists():
            raise DatasetError(
                f"{where}: {split}: {path} does not exist; give a list file of image names (such as "
                f"ImageSets/Main/{split}.txt) or an image folder inside {images_root}"
            )
        if path.is_dir() and not (path == images_root or images_root in path.parents):
            raise DatasetError(
                f"{where}: {split}: folder {path} is not inside the image folder {images_root}; "
                "move it there or set images: to a folder that contains it"
            )


def check_split_names(
    where: str, images_root: Path, annotations_root: Path, split_paths: dict[str, Path], names: Sequence[str]
) -> tuple[str, ...]:
    """Check the split paths (:func:`check_folders`) and return ``names``, or when it is empty every class named
    in the XML files of the splits, sorted."""
    check_folders(where, images_root, annotations_root, split_paths)
    if names:
        return tuple(names)
    files = [f for path in split_paths.values() for f in annotation_files(images_root, annotations_root, path)]
    collected = collect_names(files)
    if not collected:
        raise DatasetError(f"{where}: names: no object <name> in the {len(files)} XML files of the splits; "
                           "check the annotations folder, or give names")  # fmt: skip
    classes = f"{len(collected)} class" + ("es" if len(collected) != 1 else "")
    logger.info("%s: names: %s collected from %d XML files: %s", where, classes, len(files), collected)
    return collected


def _stem_key(relative: str, suffixes: Sequence[str]) -> str:
    """``a/b.JPG`` -> ``a/b``: the name an image and its XML share."""
    relative = relative.replace(os.sep, "/").strip()
    stem, dot, suffix = relative.rpartition(".")
    return stem if dot and f".{suffix.lower()}" in suffixes else relative


def _index(folder: Path, base: Path, suffixes: Sequence[str]) -> dict[str, list[str]]:
    """``{key: [paths relative to base, sorted]}`` of the files below ``folder`` with ``suffixes`` (any case)."""
    index: dict[str, list[str]] = {}
    for dirpath, names in walk_files(folder):
        for name in names:
            if name.lower().endswith(tuple(suffixes)):
                relative = os.path.relpath(os.path.join(dirpath, name), base).replace(os.sep, "/")
                index.setdefault(_stem_key(relative, suffixes), []).append(relative)
    return {key: sorted(files) for key, files in index.items()}


def _read_list(path: Path) -> list[tuple[int, str]]:
    """``(row, entry)`` of a list file, blank lines and repeated entries left out."""
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the list file ({e}); check its permissions") from e
    entries, seen = [], set()
    for row, line in enumerate(lines, start=1):
        entry = line.strip().replace("\\", "/")
        if entry and entry not in seen:
            seen.add(entry)
            entries.append((row, entry))
    return entries


def annotation_files(images_root: Path, annotations_root: Path, split_path: Path) -> list[Path]:
    """The XML files of a split: those of the listed images, or every XML file below the split folder's mirror."""
    xml_index = _index(annotations_root, annotations_root, (".xml",))
    if split_path.is_dir():
        prefix = _prefix(split_path, images_root)
        keys: Iterable[str] = (k for k in xml_index if _is_below(k, prefix))
    else:
        keys = (_stem_key(entry, _LIST_SUFFIXES) for _, entry in _read_list(split_path))
    return [annotations_root / xml_index[k][0] for k in keys if k in xml_index]


def _prefix(split_dir: Path, images_root: Path) -> str:
    """The split folder relative to the image folder, ``""`` when it is the image folder itself."""
    relative = split_dir.relative_to(images_root).as_posix()
    return "" if relative == "." else relative


def _is_below(key: str, prefix: str) -> bool:
    return not prefix or key.startswith(prefix + "/")


def list_split(
    images_root: Path, annotations_root: Path, split_path: Path, suffixes: Sequence[str], report: Report
) -> list[tuple[Path, Path | None]]:
    """``(image, its XML or None)`` of each image of a split, in list or sorted order.

    Args:
        images_root: the image folder; list entries are relative to it.
        annotations_root: the annotation folder, mirroring ``images_root``.
        split_path: a list file, or a folder inside ``images_root``.
        suffixes: lower-case image extensions (``.jpg``, ...).
        report: the loader's problem counter; missing images and labels and same-name images are reported.
    """
    xml_index = _index(annotations_root, annotations_root, (".xml",))
    wanted: list[tuple[str, str | None]] = []  # (key, exact file name asked for)
    if split_path.is_dir():
        image_index = _index(split_path, images_root, suffixes)
        wanted = [(key, None) for key in sorted(image_index)]
        prefix = _prefix(split_path, images_root)
        for key in sorted(k for k in xml_index if _is_below(k, prefix) and k not in image_index):
            report("missing_images", f"{annotations_root / xml_index[key][0]}: no image of this name; skipped")
    else:
        image_index = _index(images_root, images_root, suffixes)
        for row, entry in _read_list(split_path):
            key = _stem_key(entry, suffixes)
            if key not in image_index:
                report("missing_images", f"{split_path}:{row}: no image {quoted(entry)} in {images_root}; skipped")
            else:
                wanted.append((key, entry if entry in image_index[key] else None))
    pairs = []
    for key, exact in wanted:
        files = image_index[key]
        chosen = exact or files[0]
        others = [] if exact else files[1:]  # a list entry with its extension names one image; no ambiguity
        if others:
            report("skipped_images", f"{images_root / others[0]}: same name as {chosen}; one image per XML file, "
                   f"{len(others)} skipped", len(others))  # fmt: skip
        xml = annotations_root / xml_index[key][0] if key in xml_index else None
        if xml is None:
            report("missing_labels", f"{images_root / chosen}: no {key}.xml in {annotations_root}; kept as background")
        pairs.append((images_root / chosen, xml))
    return pairs


def parse_xml(path: Path) -> ET.Element | str:
    """The ``<annotation>`` element of a VOC file, or why the file cannot be used. Parsed with defusedxml, which
    refuses a DTD (and so every entity declaration and external reference) in any encoding the file declares:
    annotation files never need one."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_XML_BYTES + 1)
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if len(data) > _MAX_XML_BYTES:
        return f"over {_MAX_XML_BYTES >> 20} MiB, not an annotation file"
    try:
        root = defused.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        return "declares a DTD or XML entities, which annotation files never need (refused as unsafe)"
    except (ET.ParseError, ValueError) as e:
        return f"not valid XML ({e})"
    if root.tag != "annotation":
        return f"root element is <{quoted(root.tag)}>, expected <annotation>"
    return root


def collect_names(xml_paths: Iterable[Path]) -> tuple[str, ...]:
    """Every object class named in ``xml_paths``, sorted (unreadable files are reported when loading)."""
    names: set[str] = set()
    for path in xml_paths:
        root = parse_xml(path)
        if not isinstance(root, str):
            names.update(n for n in ((o.findtext("name") or "").strip() for o in root.findall("object")) if n)
    return tuple(sorted(names))


def unknown_names_error(where: str, names: Sequence[str], unknown: dict[str, tuple[str, int]]) -> DatasetError:
    """The error for object classes absent from ``names``; ``unknown``: ``{name: (first place, count)}``."""
    listed = ", ".join(
        f"{quoted(n)} ({count}x, first in {first})" for n, (first, count) in sorted(unknown.items())[:20]
    )
    more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
    return DatasetError(
        f"{where}: names: {len(unknown)} class(es) in the XML files are not in names {list(names)}: {listed}{more}; "
        "add them to names, or remove names to collect every class from the XML files"
    )


def _float(obj: ET.Element, tag: str) -> float | str:
    text = obj.findtext(f"bndbox/{tag}")
    if text is None:
        return f"no <{tag}> in <bndbox>"
    try:
        value = float(text)
    except ValueError:
        return f"<{tag}> {quoted(text.strip())} is not a number"
    return value if math.isfinite(value) else f"<{tag}> {quoted(text.strip())} is not finite"


def _flag(obj: ET.Element, tag: str) -> bool:
    return (obj.findtext(tag) or "0").strip().lower() in ("1", "true", "yes")


def _size(root: ET.Element) -> tuple[int, int] | None:
    """``(h, w)`` from ``<size>``, or None when absent or not positive integers (many writers leave zeros)."""
    try:
        h, w = int(root.findtext("size/height") or 0), int(root.findtext("size/width") or 0)
    except ValueError:
        return None
    return (h, w) if h > 0 and w > 0 else None


def _box(where: str, corners: list[float], shape: tuple[int, int], report: Report) -> list[float] | None:
    """VOC ``[xmin, ymin, xmax, ymax]`` -> 0-based clipped xyxy, or None when dropped."""
    h, w = shape
    x0, y0, x1, y1 = corners
    if x0 > x1 or y0 > y1:
        report("flipped_boxes", f"{where}: xmin > xmax or ymin > ymax in {corners}; corners swapped")
        x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
    if x0 == x1 or y0 == y1:
        report("dropped_boxes", f"{where}: zero-size box {corners}; dropped")
        return None
    x0, y0 = x0 - 1, y0 - 1  # 1-based inclusive indices -> 0-based continuous pixels
    clipped = [min(max(x0, 0.0), w), min(max(y0, 0.0), h), min(max(x1, 0.0), w), min(max(y1, 0.0), h)]
    if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
        report("dropped_boxes", f"{where}: box {corners} lies outside the {w}x{h} image; dropped")
        return None
    if max(clipped[0] - x0, clipped[1] - y0, x1 - clipped[2], y1 - clipped[3]) > 1:
        report("clipped_boxes", f"{where}: box {corners} extends outside the {w}x{h} image; clipped")
    return clipped


def read_targets(
    xml_path: Path | None,
    shape: tuple[int, int],
    names: Sequence[str],
    report: Report,
    unknown: dict[str, tuple[str, int]],
) -> VocTargets | None:
    """The objects of one image by the rules in the module docstring.

    Args:
        xml_path: its VOC file; None gives no objects (a background image).
        shape: ``(h, w)`` of the image file.
        names: class names; an object's index is the position of its ``<name>``.
        report: the loader's problem counter.
        unknown: ``{class name: (first place, count)}``, updated with classes absent from ``names``.

    Returns:
        The objects, or None when the image must be skipped (reported).
    """
    rows: list[tuple[list[float], int, bool, bool]] = []
    root = parse_xml(xml_path) if xml_path is not None else None
    if isinstance(root, str):
        report("bad_labels", f"{xml_path}: {root}; image skipped")
        return None
    size = _size(root) if root is not None else None
    if size is not None and size != shape:
        hint = " (rotated by EXIF orientation?)" if size == shape[::-1] else ""
        report("skipped_images", f"{xml_path}: <size> is {size[1]}x{size[0]} but the image is "
               f"{shape[1]}x{shape[0]}{hint}; image skipped")  # fmt: skip
        return None
    index = {n: i for i, n in enumerate(names)}
    for k, obj in enumerate(root.findall("object") if root is not None else []):
        where = f"{xml_path}: object {k + 1}"
        name = (obj.findtext("name") or "").strip()
        corners = [_float(obj, tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
        problem = "no <name>" if not name else "no <bndbox>" if obj.find("bndbox") is None else None
        problem = problem or next((c for c in corners if isinstance(c, str)), None)
        if problem:
            report("bad_labels", f"{where}: {problem}; object skipped")
        elif name not in index:
            first, count = unknown.get(name, (where, 0))
            unknown[name] = (first, count + 1)
        elif (box := _box(where, corners, shape, report)) is not None:
            rows.append((box, index[name], _flag(obj, "difficult"), _flag(obj, "truncated")))
    return VocTargets(
        np.array([r[0] for r in rows], dtype=np.float32).reshape(-1, 4),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=bool),
        np.array([r[3] for r in rows], dtype=bool),
    )
