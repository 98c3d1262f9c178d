"""yolorep convert: VOC -> COCO -> YOLO -> COCO keeps the boxes; what a layout cannot hold is said; bad input fails
in one line."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from voc_files import obj, voc_xml, write_tree, write_yaml

from yolorep.cli import main
from yolorep.datasets.convert import convert
from yolorep.datasets.records import load_records
from yolorep.datasets.spec import load_data_spec
from yolorep.errors import ArgumentError, DatasetError

# 1-based VOC corners of each image's objects -> the 0-based xyxy boxes every layout must agree on.
OBJECTS = {
    "a.jpg": [obj("cat", 2, 3, 30, 20, difficult=1), obj("dog", 11, 5, 40, 30, truncated=1)],
    "b.PNG": [obj("dog", 20, 15, 10, 5)],  # flipped: swapped by the loader
    "c.jpeg": [obj("cat", 31, 21, 70, 50)],  # partly outside: clipped to the 40x30 image
    "d.jpg": [],  # background
}
EXPECTED = {
    "a.jpg": [(1, 2, 30, 20, 0), (10, 4, 40, 30, 1)],
    "b.PNG": [(9, 4, 20, 15, 1)],
    "c.jpeg": [(30, 20, 40, 30, 0)],
    "d.jpg": [],
}


@pytest.fixture
def voc_src(tmp_path) -> Path:
    """A devkit VOC folder without YAML: train a, b, c; val c, d."""
    files: dict = {}
    for name, objects in OBJECTS.items():
        files[f"JPEGImages/{name}"] = np.random.default_rng(len(name)).integers(0, 255, (30, 40, 3), np.uint8)
        files[f"Annotations/{name.split('.')[0]}.xml"] = voc_xml(*objects, filename=name)
    lists = {"ImageSets/Main/train.txt": ["a", "b", "c"], "ImageSets/Main/val.txt": ["c.jpeg", "d"]}
    return write_tree(tmp_path / "VOC", files, lists)


def coco_boxes(root: Path, split: str) -> dict[str, list[tuple]]:
    """``{file name: sorted (x0, y0, x1, y1, category_id, difficult, truncated)}`` of a converted COCO split."""
    data = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
    names = {i["id"]: i["file_name"] for i in data["images"]}
    boxes: dict[str, list[tuple]] = {name: [] for name in names.values()}
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        flags = (a.get("difficult", -1), a.get("truncated", -1))
        boxes[names[a["image_id"]]].append((x, y, x + w, y + h, a["category_id"], *flags))
    return {name: sorted(rows) for name, rows in boxes.items()}


def test_voc_coco_yolo_coco_round_trip_keeps_the_boxes(voc_src, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    coco1 = convert("voc", "coco", voc_src, tmp_path / "coco1")
    assert "kept as the annotation keys 'difficult'/'truncated'" in caplog.text
    caplog.clear()
    yolo = convert("coco", "yolo", coco1, tmp_path / "yolo")
    assert "the yolo layout does not keep: 1 difficult flags; 1 truncated flags" in caplog.text
    coco2 = convert("yolo", "coco", yolo / "data.yaml", tmp_path / "coco2")

    for split, names in (("train", ["a.jpg", "b.PNG", "c.jpeg"]), ("val", ["c.jpeg", "d.jpg"])):
        first, last = coco_boxes(coco1, split), coco_boxes(coco2, split)
        assert sorted(first) == sorted(last) == sorted(names)
        for name in names:
            expected = [(*box, c + 1) for *box, c in EXPECTED[name]]
            assert [row[:5] for row in first[name]] == sorted(expected), name
            assert [row[5:] for row in first[name]] == [
                (int(name == "a.jpg" and c == 0), int(name == "a.jpg" and c == 1)) for *_, c in sorted(EXPECTED[name])
            ]
            assert len(last[name]) == len(first[name])
            for row1, row2 in zip(first[name], last[name]):
                np.testing.assert_allclose(row2[:4], row1[:4], atol=1e-3)  # 6-decimal normalised YOLO text
                assert row2[4:] == (row1[4], -1, -1)  # same category; the flags did not survive YOLO
            image = voc_src / "JPEGImages" / name
            assert (coco2 / "images" / split / name).read_bytes() == image.read_bytes()
    assert (yolo / "labels" / "val" / "d.txt").read_text() == ""  # a background image keeps an empty label file
    assert yaml.safe_load((yolo / "data.yaml").read_text())["names"] == ["cat", "dog"]
    spec = load_data_spec(coco2 / "data.yaml")  # what convert writes trains as it is
    assert spec.layout.name == "coco" and spec.names == ("cat", "dog") and len(load_records(spec, "train").records) == 3


def test_coco_crowds_are_kept_in_coco_and_reported_lost_in_yolo(coco_factory, tmp_path, caplog):
    images = [{"id": 7, "file_name": "a.jpg", "width": 40, "height": 30}]
    annotations = [
        {"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, 10, 8], "iscrowd": 0, "segmentation": [[1, 2, 3]]},
        {"id": 2, "image_id": 7, "category_id": 3, "bbox": [20, 5, 10, 10], "iscrowd": 1, "area": 50.0},
    ]
    src = coco_factory(images, annotations, [{"id": 3, "name": "three"}])
    caplog.set_level(logging.INFO)
    dst = convert("coco", "coco", src, tmp_path / "coco2")
    anns = json.loads((dst / "annotations" / "instances_val.json").read_text())["annotations"]
    assert [(a["image_id"], a["category_id"], a["bbox"], a["iscrowd"]) for a in anns] == [
        (7, 3, [1, 2, 10, 8], 0), (7, 3, [20, 5, 10, 10], 1)
    ]  # fmt: skip
    assert "segmentations, keypoints" in caplog.text
    convert("coco", "yolo", src, tmp_path / "yolo2")
    assert "2 crowd regions; image ids and category ids" in caplog.text  # one per split
    assert (tmp_path / "yolo2" / "labels" / "val" / "a.txt").read_text().count("\n") == 1


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("vok", "coco"), ArgumentError, "--from: 'vok' is not a layout; use one of voc, coco, yolo"),
        (("voc", "voc"), ArgumentError, "--to: 'voc' is not a layout convert writes; use one of coco, yolo"),
        (("coco", "yolo"), DatasetError, "a voc data set, not coco; use --from voc"),
        (("yolo", "coco"), DatasetError, "no data.yaml in this folder"),
    ],
)
def test_bad_layouts_are_refused(voc_src, tmp_path, args, error, match):
    src = voc_src if args[0] != "coco" else write_yaml(voc_src / "voc.yaml", "train: train.txt\nval: val.txt\n")
    if args[0] == "coco":
        write_tree(voc_src, {}, {"train.txt": ["a"], "val.txt": ["d"]})
    with pytest.raises(error, match=match):
        convert(*args, src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_dst_must_be_new_and_outside_src(voc_src, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    with pytest.raises(DatasetError, match="DST exists and is not an empty folder"):
        convert("voc", "yolo", voc_src, tmp_path / "full")
    with pytest.raises(DatasetError, match="DST lies inside the source"):
        convert("voc", "yolo", voc_src, voc_src / "yolo")
    assert (tmp_path / "full" / "x").read_text() == "keep" and not (voc_src / "yolo").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no half-written folder left


def test_a_flat_voc_folder_takes_its_splits_from_root_list_files(tmp_path):
    files = {"images/x.jpg": (30, 40), "images/y.png": (30, 40), "annotations/x.xml": voc_xml(obj("cat", 1, 1, 9, 9))}
    src = write_tree(tmp_path / "flat", files, {"train.txt": ["x"], "val.txt": ["y.png"]})
    dst = convert("voc", "yolo", src, tmp_path / "out")
    assert (dst / "labels" / "train" / "x.txt").read_text() == "0 0.112500 0.150000 0.225000 0.300000\n"
    assert (dst / "labels" / "val" / "y.txt").read_text() == ""  # no XML: a background image
    assert sorted(p.name for p in (dst / "images").rglob("*.*")) == ["x.jpg", "y.png"]


def test_a_built_in_data_yaml_converts_by_name(tiny_shapes_yaml, tmp_path, monkeypatch):
    shutil.copytree(load_data_spec(tiny_shapes_yaml).root, tmp_path / "datasets" / "shapes")  # no 800-image set
    monkeypatch.setenv("YOLOREP_DATASETS", str(tmp_path / "datasets"))
    monkeypatch.chdir(tmp_path)
    dst = convert("coco", "yolo", "shapes.yaml", tmp_path / "shapes_yolo")
    val_images = sorted(p.name for p in (tmp_path / "datasets" / "shapes" / "images" / "val").iterdir())
    assert sorted(p.name for p in (dst / "images" / "val").iterdir()) == val_images
    assert len(list((dst / "labels" / "val").glob("*.txt"))) == len(val_images)


def test_cli_convert(voc_src, tmp_path):
    assert main(["convert", "--from", "voc", "--to", "yolo", str(voc_src), str(tmp_path / "y")]) == 0
    assert (tmp_path / "y" / "labels" / "train" / "a.txt").read_text().count("\n") == 2


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ["--from", "vok", "--to", "coco", "SRC", "out"],
            "error: --from: 'vok' is not a layout; use one of voc, coco, yolo",
        ),
        (["--from", "voc", "--to", "coco", "missing", "out"], "error: {tmp}/missing: SRC not found; give a data YAML"),
    ],
)
def test_cli_convert_bad_input_exits_2_with_one_line(tmp_path, caplog, capsys, flags, line):
    flags = [str(tmp_path / f) if f in ("SRC", "missing", "out") else f for f in flags]
    caplog.set_level(logging.DEBUG)
    assert main(["convert", *flags]) == 2
    (message,) = [r.getMessage() for r in caplog.records]  # one line: no traceback, no usage text
    assert message.startswith(line.format(tmp=tmp_path)), message
    assert capsys.readouterr() == ("", "")


def test_a_declared_test_split_is_converted_too(coco_factory, tmp_path):
    images = [{"id": 7, "file_name": "a.jpg", "width": 40, "height": 30}]
    annotations = [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, 10, 8], "iscrowd": 0}]
    src = coco_factory(images, annotations, [{"id": 3, "name": "three"}])
    src.write_text(src.read_text() + "test: images/val\ntest_json: annotations/val.json\n")
    yolo = convert("coco", "yolo", src, tmp_path / "yolo")
    assert yaml.safe_load((yolo / "data.yaml").read_text())["test"] == "images/test"
    coco = convert("yolo", "coco", yolo, tmp_path / "back")
    spec = load_data_spec(coco / "data.yaml")
    assert spec.splits == ("train", "val", "test")
    assert [r.boxes_xyxy.tolist() for r in load_records(spec, "test").records] == [[[1, 2, 11, 10]]]
