"""Property-based tests of ``yolorep convert`` on generated YOLO label files, COCO JSON and VOC XML (issue 23).

The contract, for every input: either the correct result (checked against an independent reading of the rules
below) with exit code 0, or exactly one error line with exit code 2; nothing written outside the destination
(the source is byte for byte unchanged, and no file is added beside it: label caches live in the user cache
folder), and nothing lost (every usable image and box arrives, and a refused conversion leaves no destination or
partial folder).

Examples are derandomized, so CI sees the same ones every run.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from yolorep.cli import main

H, W = 40, 50  # every generated image
FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))  # fmt: skip
pytestmark = pytest.mark.usefixtures("one_thread")


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def _workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def _files(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder``."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(len(path.name)).integers(0, 255, (H, W, 3), np.uint8)
    cv2.imwrite(str(path), pixels)


def _convert(work: Path, layout: str, to: str, src: Path) -> dict | None:
    """Run ``yolorep convert`` and check the contract's common half; returns ``{split: data}`` of the result
    (the COCO JSON, or ``{file name: label text}``), or None when it was refused."""
    before = _files(work / "src")
    dst = work / "out" / "dst"
    errors = _Errors()
    logger = logging.getLogger("yolorep")
    logger.addHandler(errors)
    try:
        code = main(["-q", "convert", "--from", layout, "--to", to, str(src), str(dst)])
    finally:
        logger.removeHandler(errors)
    assert _files(work / "src") == before, "the source changed"
    assert {p.name for p in work.iterdir()} <= {"out", "src"}, "something was written beside the source"
    assert code in (0, 2) and len(errors.lines) == (code == 2), (code, errors.lines)
    if code == 2:
        assert "\n" not in errors.lines[0], errors.lines
        assert not (work / "out").exists() or not any((work / "out").iterdir()), "a refused convert left files"
        return None
    assert sorted(p.name for p in (work / "out").iterdir()) == ["dst"], "a partial folder was left"
    if to == "coco":
        return {s: json.loads((dst / "annotations" / f"instances_{s}.json").read_text()) for s in ("train", "val")}
    return {s: {p.name: p.read_text() for p in (dst / "labels" / s).iterdir()} for s in ("train", "val")}


def _clipped(x0: float, y0: float, x1: float, y1: float) -> tuple[float, ...] | None:
    """The loader's rule: clip to the image, drop under 1 px a side."""
    box = (min(max(x0, 0), W), min(max(y0, 0), H), min(max(x1, 0), W), min(max(y1, 0), H))
    return box if box[2] - box[0] >= 1 and box[3] - box[1] >= 1 else None


def _coco_objects(data: dict) -> dict[str, list[tuple]]:
    """``{file name: sorted (category id, x0, y0, x1, y1)}`` of a converted COCO file's objects (crowds apart)."""
    names = {image["id"]: image["file_name"] for image in data["images"]}
    found: dict[str, list[tuple]] = {name: [] for name in names.values()}
    for ann in data["annotations"]:
        if not ann.get("iscrowd"):
            x, y, w, h = ann["bbox"]
            found[names[ann["image_id"]]].append((ann["category_id"], x, y, x + w, y + h))
    return {name: sorted(rows) for name, rows in found.items()}


def _same(found: dict[str, list[tuple]], expected: dict[str, list[tuple]], tolerance: float = 1e-3) -> None:
    assert sorted(found) == sorted(expected), (found, expected)
    for name, rows in expected.items():
        assert len(found[name]) == len(rows), (name, found[name], rows)
        for a, b in zip(found[name], sorted(rows)):
            assert a[0] == b[0] and np.allclose(a[1:], b[1:], atol=tolerance), (name, found[name], rows)


# ---- YOLO label files ----------------------------------------------------------------------------------------
# top-left corners mostly inside the image, sometimes out of it; sides from 1 px (dropped when clipped under 1 px)
_valid_row = st.tuples(st.integers(0, 2), st.integers(-10, W + 5), st.integers(-10, H + 5), st.integers(1, 40),
                       st.integers(1, 40))  # fmt: skip
_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12)
_junk = st.one_of(
    _text.map(lambda t: "#" + t),  # not numeric
    st.sampled_from(
        [
            "0 0.5 0.5 0.1",
            "0 0.5 0.5 0.1 0.1 0.9",
            "3 0.5 0.5 0.2 0.2",
            "-1 0.5 0.5 0.2 0.2",
            "1.5 0.5 0.5 0.2 0.2",
            "0 nan 0.5 0.2 0.2",
            "0 0.5 inf 0.2 0.2",
            "   ",
        ]
    ),  # fmt: skip
)
_label_file = st.tuples(
    st.lists(st.one_of(_valid_row, _junk), max_size=6), st.booleans(), st.sampled_from(["\n", "\r\n"])
)


def _row_text(row: tuple) -> str:
    cls, x0, y0, w, h = row
    return f"{cls} {(x0 + w / 2) / W!r} {(y0 + h / 2) / H!r} {w / W!r} {h / H!r}"


@FUZZ
@given(st.lists(st.one_of(st.none(), _label_file), min_size=1, max_size=3))
@example([([(0, 5, 5, 10, 10), "#x", (2, 40, 30, 20, 20)], True, "\r\n"), None])  # a BOM lost the first row
def test_yolo_label_files(label_files):
    with _workspace() as work:
        src = work / "src"
        (src / "data.yaml").parent.mkdir()
        (src / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [a, b, c]\n")
        expected: dict[str, list[tuple]] = {}
        for k, label in enumerate(label_files):
            expected[f"img{k}.png"] = []
            for split in ("train", "val"):
                _image(src / "images" / split / f"img{k}.png")
                (src / "labels" / split).mkdir(parents=True, exist_ok=True)
            if label is None:  # no label file: a background image
                continue
            rows, bom, newline = label
            text = ("\ufeff" if bom else "") + newline.join(r if isinstance(r, str) else _row_text(r) for r in rows)
            for split in ("train", "val"):
                (src / "labels" / split / f"img{k}.txt").write_bytes(text.encode())
            for cls, x0, y0, w, h in (r for r in rows if not isinstance(r, str)):
                box = _clipped(x0, y0, x0 + w, y0 + h)
                expected[f"img{k}.png"] += [(cls + 1, *box)] if box else []
        result = _convert(work, "yolo", "coco", src / "data.yaml")
        assert result is not None  # label files alone never make a data set unusable
        for split in ("train", "val"):
            _same(_coco_objects(result[split]), expected)


# ---- COCO JSON ----------------------------------------------------------------------------------------------
_FILES = ("img0.jpg", "img1.jpg", "img2.jpg")
COCO_YAML = (
    "path: .\ntrain: images/train\nval: images/val\ntrain_json: annotations/train.json\nval_json: annotations/val.json"
)
_file_name = st.one_of(
    st.sampled_from(
        [
            *_FILES,
            "./img1.jpg",
            "sub/../img2.jpg",
            "../img0.jpg",
            "../../src/images/val/img0.jpg",
            "/etc/passwd",
            "",
            "missing.jpg",
            "img0.jpg/..",
        ]
    ),  # fmt: skip
    st.integers(0, 3),
)
_image_entry = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(1, 5), st.just("x")), "file_name": _file_name},
    optional={"width": st.sampled_from([W, 0, 7]), "height": st.sampled_from([H, 0, 7])},
)
_category = st.one_of(
    st.fixed_dictionaries({"id": st.integers(1, 4), "name": st.sampled_from(["a", "b", "c"])}),
    st.sampled_from([{"id": "1", "name": "a"}, {"id": 2}, {"id": True, "name": "t"}]),
)
_annotation = st.fixed_dictionaries(
    {
        "image_id": st.integers(1, 6),
        "category_id": st.integers(1, 5),
        "bbox": st.one_of(
            st.tuples(st.integers(-10, 55), st.integers(-10, 45), st.integers(-2, 40), st.integers(-2, 40)).map(list),
            st.sampled_from([["a", 1, 2, 3], [1, 2, 3], None]),
        ),
    },  # fmt: skip
    optional={"iscrowd": st.sampled_from([0, 1])},
)


def _coco_expectation(
    images: list[dict], annotations: list[dict], categories: list[dict], to: str
) -> dict[str, list[tuple]] | None:
    """What the rules make of one split: ``{file name: [(category id, x0, y0, x1, y1)]}`` of every image kept, or
    None when the set must be refused. A file named by two entries holds the objects of both in COCO, and in YOLO
    (one label file per image file) those of the entry with the smaller id."""
    ids = [c.get("id") for c in categories]
    if not all(isinstance(i, int) and not isinstance(i, bool) and isinstance(c.get("name"), str)
               for i, c in zip(ids, categories)) or len(set(ids)) != len(ids):  # fmt: skip
        return None
    kept: dict[int, str] = {}
    seen: set = set()
    for entry in images:
        if not isinstance(entry["id"], int) or entry["id"] in seen:
            return None
        seen.add(entry["id"])
        name = entry["file_name"]
        name = name[2:] if isinstance(name, str) and name.startswith("./") else name
        name = "img2.jpg" if name == "sub/../img2.jpg" else name
        sizes_ok = all(entry.get(k) in (None, 0, v) for k, v in (("width", W), ("height", H)))
        if name in _FILES and sizes_ok:
            kept[entry["id"]] = name
    if not kept:
        return None
    found: dict[int, list[tuple]] = {image_id: [] for image_id in kept}
    for ann in annotations:
        bbox = ann["bbox"]
        if ann.get("iscrowd") or ann["image_id"] not in kept or ann["category_id"] not in ids:
            continue
        if isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int) for v in bbox):
            x, y, w, h = bbox
            box = _clipped(x, y, x + w, y + h)
            found[ann["image_id"]] += [(ann["category_id"], *box)] if box else []
    by_name: dict[str, list[tuple]] = {}
    for image_id in sorted(kept):
        if to == "coco" or kept[image_id] not in by_name:
            by_name.setdefault(kept[image_id], []).extend(found[image_id])
    return by_name


@FUZZ
@given(st.lists(_image_entry, min_size=1, max_size=4), st.lists(_annotation, max_size=6),
       st.lists(_category, min_size=1, max_size=3), st.sampled_from(["coco", "yolo"]))  # fmt: skip
@example(
    [{"id": 1, "file_name": "../../src/images/val/img0.jpg"}, {"id": 2, "file_name": "img1.jpg"}],
    [{"image_id": 2, "category_id": 1, "bbox": [1, 2, 10, 10]}],
    [{"id": 1, "name": "a"}],
    "yolo",
)  # escapes
@example([{"id": 1, "file_name": "img0.jpg"}], [], [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], "coco")
def test_coco_json(images, annotations, categories, to):
    with _workspace() as work:
        src = work / "src"
        for split in ("train", "val"):
            for name in _FILES:
                _image(src / "images" / split / name)
            coco = {"images": images, "annotations": annotations, "categories": categories}
            (src / "annotations").mkdir(parents=True, exist_ok=True)
            (src / "annotations" / f"{split}.json").write_text(json.dumps(coco))
        (src / "data.yaml").write_text(COCO_YAML)
        expected = _coco_expectation(images, annotations, categories, to)
        result = _convert(work, "coco", to, src / "data.yaml")
        assert (result is None) == (expected is None), (result, expected)
        if result is None:
            return
        for split in ("train", "val"):
            if to == "coco":
                _same(_coco_objects(result[split]), expected)
                continue
            index = {c: i for i, c in enumerate(sorted(c["id"] for c in categories))}
            wanted = {Path(n).with_suffix(".txt").name: [(index[r[0]], *r[1:]) for r in rows]
                      for n, rows in expected.items()}  # fmt: skip
            _same({name: sorted(_yolo_rows(text)) for name, text in result[split].items()}, wanted, 1e-3 * W)


def _yolo_rows(text: str) -> list[tuple]:
    rows = []
    for line in text.splitlines():
        c, cx, cy, w, h = (float(v) for v in line.split())
        rows.append((int(c), (cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H))
    return rows


# ---- VOC XML ------------------------------------------------------------------------------------------------
_voc_object = st.tuples(st.sampled_from(["cat", "dog"]), st.integers(1, W), st.integers(1, H), st.integers(1, W),
                        st.integers(1, H), st.booleans())  # fmt: skip
_variant = st.sampled_from(["utf-8", "utf-16", "entity-utf-8", "entity-utf-16", "doctype", "truncated", "html",
                            "no-xml", "wrong-size", "no-size"])  # fmt: skip


def _voc_document(objects: list[tuple], variant: str) -> bytes | None:
    rows = "".join(
        f"<object><name>{'&c;' if variant.startswith('entity') else name}</name><difficult>{int(hard)}</difficult>"
        f"<bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
        for name, a, b, c, d, hard in objects
    )
    size = {"wrong-size": f"<size><width>{W + 1}</width><height>{H}</height></size>", "no-size": ""}.get(
        variant, f"<size><width>{W}</width><height>{H}</height></size>"
    )
    body = f"<annotation><filename>x.jpg</filename>{size}{rows}</annotation>"
    encoding = "utf-16" if variant.endswith("utf-16") else "utf-8"
    head = f'<?xml version="1.0" encoding="{encoding.upper()}"?>'
    documents = {
        "entity-utf-8": head + '<!DOCTYPE annotation [<!ENTITY c "cat">]>' + body,
        "entity-utf-16": head + '<!DOCTYPE annotation [<!ENTITY c "cat">]>' + body,
        "doctype": head + "<!DOCTYPE annotation>" + body,
        "truncated": head + body[: len(body) // 2],
        "html": head + "<html></html>",
        "no-xml": None,
    }
    text = documents.get(variant, head + body)
    return None if text is None else text.encode(encoding)


@FUZZ
@given(st.lists(st.tuples(st.lists(_voc_object, max_size=4), _variant), min_size=1, max_size=3))
@example([([("cat", 1, 1, 10, 10, False)], "entity-utf-16"), ([("dog", 20, 20, 2, 2, True)], "utf-16")])
def test_voc_xml(documents):
    with _workspace() as work:
        src = work / "src"
        expected: dict[str, list[tuple]] = {}
        for k, (objects, variant) in enumerate(documents):
            _image(src / "JPEGImages" / f"img{k}.jpg")
            xml = _voc_document(objects, variant)
            (src / "Annotations").mkdir(parents=True, exist_ok=True)
            if xml is not None:
                (src / "Annotations" / f"img{k}.xml").write_bytes(xml)
            if variant in ("entity-utf-8", "entity-utf-16", "doctype", "truncated", "html", "wrong-size"):
                continue  # refused or unusable: the image is skipped
            expected[f"img{k}.jpg"] = []
            for name, a, b, c, d, _ in objects if xml is not None else []:
                (x0, x1), (y0, y1) = sorted((a, c)), sorted((b, d))
                if x0 != x1 and y0 != y1:  # 1-based inclusive corners; zero-size boxes are dropped
                    expected[f"img{k}.jpg"].append((1 + (name == "dog"), x0 - 1, y0 - 1, x1, y1))
        lists = "".join(f"img{k}\n" for k in range(len(documents)))
        for split in ("train", "val"):
            (src / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
            (src / "ImageSets" / "Main" / f"{split}.txt").write_text(lists)
        (src / "voc.yaml").write_text("path: .\ntrain: ImageSets/Main/train.txt\nval: ImageSets/Main/val.txt\n"
                                      "names: [cat, dog]\n")  # fmt: skip
        result = _convert(work, "voc", "coco", src / "voc.yaml")
        assert (result is None) == (not expected), (result, expected)
        for split in ("train", "val") if result else ():
            assert all(math.isfinite(a["bbox"][0]) for a in result[split]["annotations"])
            _same(_coco_objects(result[split]), expected)
