"""The optional test split: declared in any layout, read only when asked for, and refused clearly when absent."""

from __future__ import annotations

import json

import numpy as np
import pytest
from voc_files import obj, voc_xml, write_tree, write_yaml

from yolorep.datasets.records import load_records
from yolorep.datasets.spec import ensure_split, load_data_spec
from yolorep.errors import DatasetError


def _add_yolo_test(yaml_path, rows: str) -> None:
    root = yaml_path.parent
    (root / "images" / "test").mkdir()
    (root / "labels" / "test").mkdir()
    (root / "images" / "test" / "t.png").write_bytes((root / "images" / "val" / "a.png").read_bytes())
    (root / "labels" / "test" / "t.txt").write_text(rows)
    data = json.loads(yaml_path.read_text())
    yaml_path.write_text(json.dumps({**data, "test": "images/test"}))


def test_a_yolo_test_split_is_read_only_when_asked_for(yolo_factory):
    image = np.full((40, 60, 3), 90, np.uint8)
    yaml_path = yolo_factory({"a.png": image}, {"a.txt": "0 0.5 0.5 0.2 0.2\n"}, ["cat", "dog"])
    assert load_data_spec(yaml_path).splits == ("train", "val")
    _add_yolo_test(yaml_path, "1 0.5 0.5 0.5 0.5\n1 0.2 0.2 0.1 0.1\n")
    spec = load_data_spec(yaml_path)
    assert spec.splits == ("train", "val", "test")
    assert spec.split_dir("test") == yaml_path.parent.resolve() / "images" / "test"
    ensure_split(spec, "test")
    records = load_records(spec, "test").records
    assert [r.classes.tolist() for r in records] == [[1, 1]]


def test_an_undeclared_test_split_is_one_clear_error(yolo_factory):
    yaml_path = yolo_factory({"a.png": np.zeros((8, 8, 3), np.uint8)}, {}, ["cat"])
    spec = load_data_spec(yaml_path)
    with pytest.raises(DatasetError, match=r"test: the data set declares no test split; add test: <images>"):
        spec.split_dir("test")
    with pytest.raises(DatasetError, match=r"unknown split; use one of train, val, test"):
        spec.split_dir("testing")


def test_a_declared_test_split_that_is_missing_does_not_stop_loading(yolo_factory):
    """Training reads train and val only: a test folder not there yet is reported when it is scored."""
    yaml_path = yolo_factory({"a.png": np.zeros((8, 8, 3), np.uint8)}, {}, ["cat"])
    yaml_path.write_text(json.dumps({**json.loads(yaml_path.read_text()), "test": "images/test"}))
    spec = load_data_spec(yaml_path)
    with pytest.raises(DatasetError, match=r"test: image folder .*images/test does not exist"):
        ensure_split(spec, "test")


def test_coco_test_split_needs_its_json(coco_factory):
    images = [{"id": 7, "file_name": "a.jpg", "width": 40, "height": 30}]
    annotations = [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [2, 2, 10, 10], "area": 100, "iscrowd": 0}]
    yaml_path = coco_factory(images, annotations, [{"id": 3, "name": "cat"}])
    base = yaml_path.read_text()
    yaml_path.write_text(base + "test: images/val\n")
    with pytest.raises(DatasetError, match=r"test_json: missing; a COCO test split needs both"):
        load_data_spec(yaml_path)
    yaml_path.write_text(base + "test: images/val\ntest_json: annotations/val.json\n")
    spec = load_data_spec(yaml_path)
    assert spec.layout.json_of("test") == yaml_path.parent.resolve() / "annotations" / "val.json"
    records = load_records(spec, "test").records
    assert [r.image_id for r in records] == [7] and records[0].boxes_xyxy.tolist() == [[2, 2, 12, 12]]


def test_test_json_outside_the_coco_layout_is_refused(yolo_factory):
    yaml_path = yolo_factory({"a.png": np.zeros((8, 8, 3), np.uint8)}, {}, ["cat"])
    yaml_path.write_text(json.dumps({**json.loads(yaml_path.read_text()), "test_json": "t.json"}))
    with pytest.raises(DatasetError, match=r"test_json: only the COCO layout"):
        load_data_spec(yaml_path)


def test_voc_names_come_from_train_and_val_never_from_test(tmp_path):
    files = {f"images/{n}.jpg": (30, 40) for n in ("a", "b", "c")}
    files.update({
        "annotations/a.xml": voc_xml(obj("cat", 2, 2, 20, 20)),
        "annotations/b.xml": voc_xml(obj("dog", 2, 2, 20, 20)),
        "annotations/c.xml": voc_xml(obj("cat", 2, 2, 9, 9), obj("dog", 3, 3, 30, 25)),
    })  # fmt: skip
    write_tree(tmp_path / "pets", files, {"train.txt": ["a"], "val.txt": ["b"], "test.txt": ["c"]})
    text = "path: pets\ntrain: train.txt\nval: val.txt\ntest: test.txt\n"
    spec = load_data_spec(write_yaml(tmp_path / "pets.yaml", text))
    assert spec.names == ("cat", "dog")
    ensure_split(spec, "test")
    assert load_records(spec, "test").records[0].classes.tolist() == [0, 1]
    # a test class the training splits never name is refused, not silently added
    (tmp_path / "pets" / "annotations" / "c.xml").write_text(voc_xml(obj("fox", 2, 2, 9, 9)))
    with pytest.raises(DatasetError, match="fox"):
        load_records(load_data_spec(tmp_path / "pets.yaml"), "test")
