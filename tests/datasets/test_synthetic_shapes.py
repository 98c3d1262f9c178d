from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from yolorep.datasets import synthetic
from yolorep.datasets.records import load_records
from yolorep.datasets.spec import load_data_spec
from yolorep.datasets.synthetic import SHAPE_CATEGORIES, generate_shapes


def read(root, split="train"):
    return json.loads((root / "annotations" / f"instances_{split}.json").read_text())


def test_same_seed_same_set_other_seed_other_set(tmp_path):
    a = generate_shapes(tmp_path / "a", n_train=6, n_val=2, imgsz=96, seed=1)
    b = generate_shapes(tmp_path / "b", n_train=6, n_val=2, imgsz=96, seed=1)
    c = generate_shapes(tmp_path / "c", n_train=6, n_val=2, imgsz=96, seed=2)
    for split in ("train", "val"):
        assert read(a, split) == read(b, split)
    assert (a / "images/train/000003.jpg").read_bytes() == (b / "images/train/000003.jpg").read_bytes()
    assert read(a) != read(c)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no partial folders left behind


def test_annotations_are_valid_coco(tmp_path):
    root = generate_shapes(tmp_path / "s", n_train=10, n_val=2, imgsz=128, seed=0)
    coco = read(root)
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3, 5, 7, 8]
    images = {im["id"]: im for im in coco["images"]}
    for im in coco["images"]:
        h, w = cv2.imread(str(root / "images" / "train" / im["file_name"])).shape[:2]
        assert (h, w) == (im["height"], im["width"]) and 96 <= min(h, w) and max(h, w) <= 128
    assert len(coco["annotations"]) >= 10
    for ann in coco["annotations"]:
        x, y, bw, bh = ann["bbox"]
        im = images[ann["image_id"]]
        assert x >= 0 and y >= 0 and x + bw <= im["width"] and y + bh <= im["height"]
        assert bw >= 1 and bh >= 1 and 0 < ann["area"] <= bw * bh and ann["iscrowd"] == 0


def test_box_is_tight_on_the_visible_shape(monkeypatch):
    """With a plain background and one known colour per shape, box and area equal those of the colour's pixels."""
    colours = [(10 * k, 255 - 10 * k, 7 * k) for k in range(1, 20)]  # distinct, none is the grey 128
    unused = iter(colours)
    monkeypatch.setattr(synthetic, "textured_background", lambda h, w, rng: np.full((h, w, 3), 128, np.uint8))
    monkeypatch.setattr(synthetic, "contrasting_colour", lambda background, rng: np.array(next(unused), np.uint8))
    image, objects = synthetic._draw_image(120, 110, 8, np.random.default_rng(5))
    assert len(objects) >= 3
    for k, (_, bbox, area) in enumerate(objects):
        visible = (image == np.array(colours[k], np.uint8)).all(-1)  # shapes take colours in order
        assert list(cv2.boundingRect(visible.astype(np.uint8))) == bbox
        assert np.count_nonzero(visible) == area >= 40


def test_non_contiguous_categories_map_to_contiguous_classes(shapes_yaml):
    spec = load_data_spec(shapes_yaml)  # generates the set
    assert spec.category_ids == tuple(c for c, _ in SHAPE_CATEGORIES)
    assert spec.names == tuple(n for _, n in SHAPE_CATEGORIES)
    for cls, category_id in enumerate(spec.category_ids):
        assert spec.category_to_class(category_id) == cls and spec.class_to_category(cls) == category_id

    coco = json.loads(spec.layout.train_json.read_text())
    records = load_records(spec, "train").records
    for record in records:
        expected = sorted(
            (a["category_id"], *np.round(a["bbox"], 3)) for a in coco["annotations"] if a["image_id"] == record.image_id
        )
        xywh = np.concatenate([record.boxes_xyxy[:, :2], record.boxes_xyxy[:, 2:] - record.boxes_xyxy[:, :2]], 1)
        got = sorted((spec.class_to_category(int(c)), *np.round(b, 3)) for c, b in zip(record.classes, xywh))
        assert got == expected
        assert record.classes.dtype == np.int64 and record.boxes_xyxy.dtype == np.float32


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "_write_split", fail)
    with pytest.raises(KeyboardInterrupt):
        generate_shapes(tmp_path / "s", n_train=2, n_val=1, imgsz=64)
    assert list(tmp_path.iterdir()) == []
