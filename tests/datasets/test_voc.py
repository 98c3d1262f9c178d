"""Pascal VOC reading: every oddity of real files is clipped, repaired, skipped or refused, and counted."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from voc_files import obj, voc_xml, write_tree, write_yaml

from yolorep.datasets.dataset import DetectionDataset
from yolorep.datasets.records import load_records
from yolorep.datasets.spec import load_data_spec
from yolorep.engine.val.validator import coco_ground_truth
from yolorep.errors import DatasetError
from yolorep.evaluation import COCOEvaluator, Detections, MetricsEvaluator

# Every row adds image "a" (40x30 unless a row says otherwise) beside "ok", which always loads with one box.
BASE = {"JPEGImages/ok.jpg": (30, 40), "Annotations/ok.xml": voc_xml(obj("cat", 1, 1, 10, 10))}
LISTS = {"ImageSets/Main/train.txt": ["ok", "a"], "ImageSets/Main/val.txt": ["ok"]}
YAML = "path: .\ntrain: ImageSets/Main/train.txt\nval: ImageSets/Main/val.txt\nnames: [cat, dog]\n"
STATS = {"images": 2, "skipped_images": 0, "bad_labels": 0, "dropped_boxes": 0, "crowd_boxes": 0, "missing_labels": 0,
         "background_images": 0, "exif_rotated": 0, "missing_images": 0, "flipped_boxes": 0, "clipped_boxes": 0,
         "difficult_boxes": 0, "truncated_boxes": 0}  # fmt: skip
ENTITY = '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx">]><annotation><folder>&x;</folder></annotation>'
A = {"JPEGImages/a.jpg": (30, 40)}


def utf16_entity(text: str) -> bytes:
    """An entity declaration in UTF-16 (a byte search for "<!ENTITY" missed it, and ``text`` became a class name)."""
    head = f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY c "{text}">]>'
    return (head + voc_xml(obj("&c;", 1, 1, 5, 5))).encode("utf-16")


UTF16_ENTITY = utf16_entity("cat")
UTF16 = ('<?xml version="1.0" encoding="UTF-16"?>' + voc_xml(obj("dog", 1, 1, 5, 5))).encode("utf-16")


def a_xml(*objects: str, **kwargs) -> dict[str, str]:
    return {"Annotations/a.xml": voc_xml(*objects, **kwargs)}


# (files, counts that differ from STATS, name of a's image, a's rows (x0, y0, x1, y1, class, difficult) or None
# when the image is skipped). VOC coordinates are 1-based: <xmin>2 is x0 = 1.
ODDITIES = [
    pytest.param({**A, **a_xml(obj("cat", 31, 21, 60, 40))}, {"clipped_boxes": 1}, "a.jpg",
                 [(30, 20, 40, 30, 0, 0)], id="partly-outside-clipped"),
    pytest.param({**A, **a_xml(obj("cat", 50, 5, 60, 10))}, {"dropped_boxes": 1, "background_images": 1},
                 "a.jpg", [], id="wholly-outside-dropped"),
    pytest.param({**A, **a_xml(obj("cat", 20, 15, 10, 5))}, {"flipped_boxes": 1}, "a.jpg",
                 [(9, 4, 20, 15, 0, 0)], id="xmin-above-xmax-swapped"),
    pytest.param({**A, **a_xml(obj("cat", 10, 5, 10, 15))}, {"dropped_boxes": 1, "background_images": 1},
                 "a.jpg", [], id="zero-size-dropped"),
    pytest.param({**A, **a_xml(obj("cat", 2, 3, 12, 13, difficult=1), obj("dog", 5, 5, 9, 9))},
                 {"difficult_boxes": 1}, "a.jpg", [(1, 2, 12, 13, 0, 1), (4, 4, 9, 9, 1, 0)], id="difficult-kept"),
    pytest.param({**A, **a_xml(obj("dog", 2, 3, 12, 13, truncated=1))}, {"truncated_boxes": 1}, "a.jpg",
                 [(1, 2, 12, 13, 1, 0)], id="truncated-kept"),
    pytest.param({**A, **a_xml(obj("cat", 0, 0, 40, 30))}, {}, "a.jpg", [(0, 0, 40, 30, 0, 0)],
                 id="zero-based-overhang-of-1px-not-counted"),
    pytest.param({**A, **a_xml(obj("cat", 1, 1, 5, 5), "<object><name>cat</name></object>")}, {"bad_labels": 1},
                 "a.jpg", [(0, 0, 5, 5, 0, 0)], id="no-bndbox-object-skipped"),
    pytest.param({**A, **a_xml(obj("cat", "abc", 1, 5, 5), obj("dog", 1, 1, "inf", 5), obj("", 1, 1, 5, 5))},
                 {"bad_labels": 3, "background_images": 1}, "a.jpg", [], id="bad-coordinates-and-no-name-skipped"),
    pytest.param({**A, "Annotations/a.xml": "<annotation><object>"}, {"bad_labels": 1, "images": 1}, "a.jpg",
                 None, id="malformed-xml-image-skipped"),
    pytest.param({**A, "Annotations/a.xml": "<html></html>"}, {"bad_labels": 1, "images": 1}, "a.jpg", None,
                 id="not-an-annotation-image-skipped"),
    pytest.param({**A, "Annotations/a.xml": ENTITY}, {"bad_labels": 1, "images": 1}, "a.jpg", None,
                 id="entity-declaration-refused"),
    pytest.param({**A, "Annotations/a.xml": UTF16_ENTITY}, {"bad_labels": 1, "images": 1}, "a.jpg", None,
                 id="utf16-entity-declaration-refused"),
    pytest.param({**A, "Annotations/a.xml": UTF16}, {}, "a.jpg", [(0, 0, 5, 5, 1, 0)], id="utf16-read"),
    pytest.param({**A, **a_xml(obj("cat", 1, 1, 5, 5), size=(50, 50))}, {"skipped_images": 1, "images": 1},
                 "a.jpg", None, id="size-mismatch-image-skipped"),
    pytest.param({**A, "Annotations/a.xml": voc_xml(obj("cat", 1, 1, 5, 5), size=None)}, {}, "a.jpg",
                 [(0, 0, 5, 5, 0, 0)], id="no-size-element-trusts-the-image"),
    pytest.param({"JPEGImages/a.jpg": b"not a jpeg", **a_xml(obj("cat", 1, 1, 5, 5))},
                 {"skipped_images": 1, "images": 1}, "a.jpg", None, id="unreadable-image-skipped"),
    pytest.param(A, {"missing_labels": 1, "background_images": 1}, "a.jpg", [], id="image-without-xml-background"),
    pytest.param(a_xml(obj("cat", 1, 1, 5, 5)), {"missing_images": 1, "images": 1}, "a.jpg", None,
                 id="xml-without-image-skipped"),
    pytest.param({"JPEGImages/a.JPG": (30, 40), **a_xml(obj("cat", 1, 1, 5, 5))}, {}, "a.JPG",
                 [(0, 0, 5, 5, 0, 0)], id="upper-case-JPG"),
    pytest.param({"JPEGImages/a.jpeg": (30, 40), **a_xml(obj("cat", 1, 1, 5, 5))}, {}, "a.jpeg",
                 [(0, 0, 5, 5, 0, 0)], id="jpeg-extension"),
    pytest.param({"JPEGImages/a.png": (30, 40), **a_xml(obj("cat", 1, 1, 5, 5))}, {}, "a.png",
                 [(0, 0, 5, 5, 0, 0)], id="png"),
    pytest.param({**A, "JPEGImages/a.png": (30, 40), **a_xml(obj("cat", 1, 1, 5, 5))}, {"skipped_images": 1},
                 "a.jpg", [(0, 0, 5, 5, 0, 0)], id="two-images-one-name-second-skipped"),
]  # fmt: skip


@pytest.mark.parametrize(("files", "counts", "name", "rows"), ODDITIES)
def test_each_oddity_is_counted_with_its_outcome(tmp_path, caplog, files, counts, name, rows):
    root = write_tree(tmp_path / "voc", {**BASE, **files}, LISTS)
    spec = load_data_spec(write_yaml(root / "voc.yaml", YAML))
    assert spec.layout.name == "voc" and spec.layout.images == root / "JPEGImages"
    with caplog.at_level(logging.WARNING):
        loaded = load_records(spec, "train")
    assert loaded.stats == {**STATS, **counts}
    ok, *rest = loaded.records
    assert ok.path.name == "ok.jpg" and ok.boxes_xyxy.tolist() == [[0, 0, 10, 10]]
    if rows is None:
        assert rest == []
    else:
        (a,) = rest
        assert a.path.name == name and a.boxes_xyxy.dtype == np.float32
        got = np.column_stack([a.boxes_xyxy, a.classes, a.difficult]).reshape(-1, 6)
        np.testing.assert_allclose(got, np.reshape(rows, (-1, 6)))
    problems = {k for k, v in counts.items() if v} - {"images", "background_images", "difficult_boxes"}
    problems -= {"truncated_boxes"}  # flags are counted, not warned about
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warned) == bool(problems), warned
    assert all("a." in m or "'a'" in m for m in warned), warned  # each warning names the file (or list entry)


def test_unknown_class_names_are_an_error_that_lists_them(tmp_path):
    files = {**BASE, **A, **a_xml(obj("Cat", 1, 1, 5, 5), obj("bird", 1, 1, 5, 5), obj("bird", 2, 2, 6, 6))}
    root = write_tree(tmp_path / "voc", files, LISTS)
    spec = load_data_spec(write_yaml(root / "voc.yaml", YAML))
    with pytest.raises(DatasetError, match=r"voc.yaml: names: 2 class\(es\).*'Cat' \(1x.*'bird' \(2x") as info:
        load_records(spec, "train")
    assert "a.xml: object 1" in str(info.value) and "remove names" in str(info.value)


def test_names_are_collected_sorted_when_omitted(tmp_path):
    files = {**BASE, **A, **a_xml(obj("zebra", 1, 1, 5, 5), obj("ant", 1, 1, 5, 5))}
    root = write_tree(tmp_path / "voc", files, LISTS)
    spec = load_data_spec(write_yaml(root / "voc.yaml", YAML.replace("names: [cat, dog]\n", "")))
    assert spec.names == ("ant", "cat", "zebra") and spec.category_ids == (1, 2, 3)
    assert load_records(spec, "train").records[1].classes.tolist() == [2, 0]


def test_an_entity_in_any_encoding_never_becomes_a_class_name(tmp_path, caplog):
    files = {**BASE, **A, "Annotations/a.xml": utf16_entity("intruder")}
    root = write_tree(tmp_path / "voc", files, LISTS)
    spec = load_data_spec(write_yaml(root / "voc.yaml", YAML.replace("names: [cat, dog]\n", "")))
    assert spec.names == ("cat",)  # collected from ok.xml only
    with caplog.at_level(logging.WARNING):
        load_records(spec, "train")
    assert "a.xml: declares a DTD or XML entities, which annotation files never need (refused as unsafe)" in caplog.text


def test_flat_layout_with_split_folders_is_detected(tmp_path):
    files = {
        "images/train/x.jpg": (30, 40), "images/train/y.PNG": (30, 40), "images/val/z.jpeg": (30, 40),
        "annotations/train/x.xml": voc_xml(obj("cat", 1, 1, 5, 5)), "annotations/train/y.xml": voc_xml(),
        "annotations/train/orphan.xml": voc_xml(obj("dog", 1, 1, 5, 5)),
        "annotations/val/z.xml": voc_xml(obj("dog", 2, 2, 6, 6)),
    }  # fmt: skip
    root = write_tree(tmp_path / "flat", files)
    spec = load_data_spec(write_yaml(root / "d.yaml", "train: images/train\nval: images/val\n"))
    assert spec.layout.name == "voc" and spec.names == ("cat", "dog")  # orphan.xml names dog too
    train = load_records(spec, "train")
    assert [r.path.name for r in train.records] == ["x.jpg", "y.PNG"]
    assert train.stats["missing_images"] == 1 and train.stats["background_images"] == 1
    assert load_records(spec, "val").records[0].boxes_xyxy.tolist() == [[1, 1, 6, 6]]


def test_flat_layout_with_list_files_like_the_raccoon_set(tmp_path):
    files = {f"images/r-{i}.jpg": (30, 40) for i in (1, 2, 10)}
    files.update({f"annotations/r-{i}.xml": voc_xml(obj("raccoon", i, i, 20, 20)) for i in (1, 2, 10)})
    root = write_tree(
        tmp_path / "raccoon", files, {"lists/train.txt": ["r-1.jpg", "r-10.jpg"], "lists/val.txt": ["r-2"]}
    )
    spec = load_data_spec(
        write_yaml(tmp_path / "raccoon.yaml", "path: raccoon\ntrain: lists/train.txt\nval: lists/val.txt\n")
    )
    assert spec.layout.name == "voc" and spec.layout.images == root / "images" and spec.names == ("raccoon",)
    train = load_records(spec, "train")
    assert [r.path.name for r in train.records] == ["r-1.jpg", "r-10.jpg"]  # list order
    assert [r.boxes_xyxy.tolist() for r in train.records] == [[[0, 0, 20, 20]], [[9, 9, 20, 20]]]


def test_layout_key_and_xml_beside_the_images(tmp_path):
    root = write_tree(tmp_path / "pics", {"a.jpg": (30, 40), "a.xml": voc_xml(obj("cat", 1, 1, 5, 5))})
    text = "layout: voc\npath: .\nimages: .\nannotations: .\ntrain: .\nval: .\n"
    spec = load_data_spec(write_yaml(root / "d.yaml", text))
    assert spec.layout.name == "voc" and spec.names == ("cat",)
    assert load_records(spec, "val").records[0].boxes_xyxy.tolist() == [[0, 0, 5, 5]]


def test_yolo_labels_win_detection_and_bad_voc_yamls_name_the_key(tmp_path):
    root = write_tree(tmp_path / "y", {"images/train/a.jpg": (30, 40), "labels/train/a.txt": "0 .5 .5 .2 .2\n",
                                       "annotations/a.xml": voc_xml()})  # fmt: skip
    assert (
        load_data_spec(write_yaml(root / "d.yaml", "train: images/train\nval: images/train\nnames: [a]\n")).layout.name
        == "yolo"
    )
    root = write_tree(tmp_path / "voc", {**BASE, **A}, LISTS)
    for text, key in [
        (YAML + "layout: vock\n", "layout"),
        (YAML.replace("ImageSets/Main/val.txt", "nope.txt"), "val"),
        (YAML + "annotations: Labels\n", "annotations"),
        (YAML + "layout: coco\n", "layout"),
    ]:
        with pytest.raises(DatasetError, match=f"d.yaml: {key}: "):
            load_data_spec(write_yaml(root / "d.yaml", text))


def test_cache_keeps_the_difficult_flags_and_follows_renamed_classes(tmp_path):
    files = {**BASE, **A, **a_xml(obj("cat", 2, 3, 12, 13, difficult=1), obj("dog", 5, 5, 9, 9))}
    root = write_tree(tmp_path / "voc", files, LISTS)
    spec = load_data_spec(write_yaml(root / "voc.yaml", YAML))
    first, second = load_records(spec, "train"), load_records(spec, "train")
    assert not first.from_cache and second.from_cache and second.stats == first.stats
    assert first.cache_path.name.endswith("-train.cache.npz") and not list(root.rglob("*.cache.npz"))
    assert second.records[1].difficult.tolist() == [True, False] and second.records[0].difficult.tolist() == [False]
    swapped = load_data_spec(write_yaml(root / "voc.yaml", YAML.replace("[cat, dog]", "[dog, cat]")))
    third = load_records(swapped, "train")
    assert not third.from_cache and third.records[1].classes.tolist() == [1, 0]


def test_difficult_objects_are_ignored_by_both_evaluations(tmp_path):
    """Image a: a regular box found, a difficult one missed. Image b: a difficult box detected first, then the
    regular one. Ignoring difficult objects gives AP 1; counting them misses recall, dropping them adds a FP."""
    files = {
        "JPEGImages/a.jpg": (30, 40), "JPEGImages/b.jpg": (30, 40),
        "Annotations/a.xml": voc_xml(obj("cat", 2, 2, 12, 12), obj("cat", 21, 11, 36, 26, difficult=1)),
        "Annotations/b.xml": voc_xml(obj("cat", 21, 11, 36, 26, difficult=1), obj("cat", 2, 2, 12, 12)),
    }  # fmt: skip
    root = write_tree(tmp_path / "voc", files, {"train.txt": ["a", "b"], "val.txt": ["a", "b"]})
    spec = load_data_spec(write_yaml(root / "d.yaml", "train: train.txt\nval: val.txt\n"))
    dataset = DetectionDataset(spec, "val", imgsz=64)
    gt = coco_ground_truth(dataset)
    assert [a["iscrowd"] for a in gt["annotations"]] == [0, 1, 1, 0]
    metrics, coco = MetricsEvaluator(list(spec.names)), COCOEvaluator(gt, list(spec.category_ids))
    a, b = dataset.records
    found = {
        "a.jpg": Detections(torch.tensor([[1.0, 1, 12, 12]]), torch.tensor([0.9]), torch.tensor([0])),
        "b.jpg": Detections(torch.tensor([[20.0, 10, 36, 26], [1, 1, 12, 12]]), torch.tensor([0.95, 0.9]),
                            torch.tensor([0, 0])),
    }  # fmt: skip
    for record in (a, b):
        metrics.process(record, found[record.path.name])
        coco.process(record, found[record.path.name])
    assert metrics.evaluate()["map50_95_internal"] == pytest.approx(1.0)
    assert coco.evaluate()["map50_95"] == pytest.approx(1.0)
