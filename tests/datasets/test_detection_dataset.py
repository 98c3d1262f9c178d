from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch

from yolorep.datasets.dataset import DetectionDataset
from yolorep.datasets.layouts.yolo import labels_dir
from yolorep.datasets.records import load_records
from yolorep.datasets.spec import load_data_spec
from yolorep.errors import ArgumentError, DatasetError

GOOD_ROWS = "0 0.5 0.5 0.5 0.25\n1 0.9 0.9 0.4 0.4\n"  # the second box is cut by the border and clipped
BAD_ROWS = (
    "0 0.5 0.5 0.2\n"  # 4 columns
    "one 0.5 0.5 0.2 0.2\n"  # not a number
    "7 0.5 0.5 0.2 0.2\n"  # class out of range
    "0 nan 0.5 0.2 0.2\n"  # non-finite
    "1 0.5 0.5 0.0 0.2\n"  # zero width: dropped box, not a bad row
)


@pytest.fixture
def messy_yaml(yolo_factory):
    grey = np.full((60, 80, 3), 100, np.uint8)
    return yolo_factory(
        {"a.jpg": grey, "b.png": grey[:50], "broken.jpg": np.random.default_rng(0).bytes(500), "c.jpg": grey},
        {"a.txt": GOOD_ROWS + BAD_ROWS, "broken.txt": GOOD_ROWS, "c.txt": "\n"},
        ["cat", "dog"],
    )


def test_bad_files_are_skipped_counted_and_named(messy_yaml, caplog):
    spec = load_data_spec(messy_yaml)
    with caplog.at_level(logging.WARNING):
        loaded = load_records(spec, "train")
    assert not loaded.from_cache
    assert [r.path.name for r in loaded.records] == ["a.jpg", "b.png", "c.jpg"]
    assert loaded.stats == {
        "images": 3,
        "skipped_images": 1,  # broken.jpg
        "bad_labels": 4,
        "dropped_boxes": 1,
        "crowd_boxes": 0,
        "missing_labels": 1,  # b.png
        "background_images": 2,  # b.png, c.jpg
        "exif_rotated": 0,
        "clipped_boxes": 1,  # the second good row
    }
    a = loaded.records[0]
    assert a.shape == (60, 80) and a.image_id == 0
    np.testing.assert_allclose(a.boxes_xyxy, [[20, 22.5, 60, 37.5], [56, 42, 80, 60]], atol=1e-4)
    assert a.classes.tolist() == [0, 1]
    text = caplog.text
    assert "broken.jpg: unreadable image" in text
    for row in (3, 4, 5, 6):
        assert f"a.txt:{row}: " in text


def test_second_load_uses_the_cache_and_rebuilds_when_stale(messy_yaml):
    spec = load_data_spec(messy_yaml)
    first = load_records(spec, "train")
    assert first.cache_path.is_file() and first.cache_path.name.endswith("-train.cache.npz")
    second = load_records(spec, "train")
    assert second.from_cache and second.stats == first.stats
    assert len(second.records) == len(first.records)
    for r1, r2 in zip(first.records, second.records):
        assert (r1.path, r1.image_id, r1.shape) == (r2.path, r2.image_id, r2.shape)
        np.testing.assert_array_equal(r1.boxes_xyxy, r2.boxes_xyxy)
        np.testing.assert_array_equal(r1.classes, r2.classes)
        assert r2.boxes_xyxy.dtype == np.float32 and r2.classes.dtype == np.int64

    (labels_dir(spec, "train") / "c.txt").write_text("1 0.5 0.5 0.5 0.5\n")  # size change -> new fingerprint
    third = load_records(spec, "train")
    assert not third.from_cache and third.records[2].classes.tolist() == [1]

    first.cache_path.write_bytes(b"garbage")
    assert not load_records(spec, "train").from_cache  # unreadable cache: rebuilt, no crash
    assert load_records(spec, "train").from_cache


def test_the_label_cache_stays_out_of_the_data_folder(messy_yaml, tmp_path, monkeypatch):
    """A writable data set's folder may still be shared (other users, other versions, version control): the cache
    goes to the user cache folder, and a second load reads it from there."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))
    before = sorted(messy_yaml.parent.rglob("*"))
    first, second = (load_records(load_data_spec(messy_yaml), "train") for _ in range(2))
    assert not first.from_cache and second.from_cache and second.cache_path == first.cache_path
    assert first.cache_path.parent == tmp_path / "user_cache" / "yolorep" / "labels"
    assert sorted(messy_yaml.parent.rglob("*")) == before


def test_no_usable_image_is_an_error(yolo_factory):
    yaml_path = yolo_factory({"x.jpg": b"not an image"}, {}, ["a"])
    with pytest.raises(DatasetError, match="data.yaml: train: no usable image"):
        DetectionDataset(load_data_spec(yaml_path), "train", 64)


def test_coco_crowd_unknown_category_and_size_mismatch(coco_factory):
    images = [
        {"id": 10, "file_name": "a.jpg", "width": 40, "height": 30},
        {"id": 11, "file_name": "b.jpg", "width": 40, "height": 30},
    ]
    annotations = [
        {"id": 1, "image_id": 10, "category_id": 5, "bbox": [1, 2, 10, 8], "iscrowd": 0},
        {"id": 2, "image_id": 10, "category_id": 3, "bbox": [5, 5, 10, 10], "iscrowd": 1},
        {"id": 3, "image_id": 10, "category_id": 4, "bbox": [5, 5, 10, 10]},
        {"id": 4, "image_id": 10, "category_id": 3, "bbox": [30, 20, 20, 20]},
        {"id": 5, "image_id": 99, "category_id": 3, "bbox": [0, 0, 5, 5]},
        {"id": 6, "image_id": 11, "category_id": 3, "bbox": [0, 0, 5]},
    ]
    yaml_path = coco_factory(images, annotations, [{"id": 3, "name": "three"}, {"id": 5, "name": "five"}])
    spec = load_data_spec(yaml_path)
    (spec.train / "b.jpg").write_bytes(b"\xff\xd8\xff")
    loaded = load_records(spec, "train")
    assert loaded.stats["crowd_boxes"] == 1 and loaded.stats["bad_labels"] == 3
    assert loaded.stats["skipped_images"] == 1  # b.jpg is truncated to a bare JPEG marker
    (record,) = loaded.records
    assert record.image_id == 10 and record.classes.tolist() == [1, 0]  # category 5 -> class 1, 3 -> class 0
    np.testing.assert_allclose(record.boxes_xyxy, [[1, 2, 11, 10], [30, 20, 40, 30]])  # second one clipped


@pytest.mark.parametrize("rect", [False, True])
def test_letterbox_ratio_pad_round_trip(shapes_yaml, rect):
    spec = load_data_spec(shapes_yaml)
    dataset = DetectionDataset(spec, "train", imgsz=64, rect=rect, batch_size=3)
    for index in range(len(dataset)):
        image, labels, info = dataset[index]
        record = dataset.records[index]
        assert image.dtype == torch.uint8 and image.shape[0] == 3 and image.is_contiguous()
        assert info["index"] == index and info["image_id"] == record.image_id
        assert info["orig_shape"] == record.shape and info["path"] == str(record.path)
        if not rect:
            assert image.shape[1:] == (64, 64)
        (rw, rh), (pad_w, pad_h) = info["ratio_pad"]
        boxes = labels[:, 1:].numpy().astype(np.float64)
        restored = (boxes - [pad_w, pad_h, pad_w, pad_h]) / [rw, rh, rw, rh]
        np.testing.assert_allclose(restored, record.boxes_xyxy, atol=1e-3)
        assert labels[:, 0].tolist() == record.classes.tolist()
        h0, w0 = record.shape
        assert round(w0 * rw) + 2 * pad_w in (image.shape[2], image.shape[2] - 1)
        assert round(h0 * rh) + 2 * pad_h in (image.shape[1], image.shape[1] - 1)


def test_rect_batches_share_a_stride_multiple_shape(colour_boxes_yaml):
    spec = load_data_spec(colour_boxes_yaml)
    dataset = DetectionDataset(spec, "val", imgsz=128, rect=True, batch_size=2, stride=16)
    aspects = [h / w for h, w in (r.shape for r in dataset.records)]
    assert aspects == sorted(aspects)  # h/w: 0.625, 0.75 | 0.875, 1 | 1.14, 1.33
    assert dataset.batch_shapes == [(96, 128), (128, 128), (128, 112)]
    for start in range(0, len(dataset), 2):
        shapes = {tuple(dataset[i][0].shape[1:]) for i in (start, start + 1)}
        assert shapes == {dataset.batch_shapes[start // 2]}


def test_ram_cache_gives_identical_samples(colour_boxes_yaml):
    spec = load_data_spec(colour_boxes_yaml)
    cached = DetectionDataset(spec, "val", imgsz=96)
    cached.cache_images()
    plain = DetectionDataset(spec, "val", imgsz=96)
    for i in range(len(plain)):
        assert torch.equal(cached[i][0], plain[i][0]) and torch.equal(cached[i][1], plain[i][1])


def test_ram_cache_keeps_training_samples_and_is_never_changed_by_augmentation(shapes_yaml):
    spec = load_data_spec(shapes_yaml)
    cached = DetectionDataset(spec, "train", imgsz=64, augment=True)
    cached.cache_images()
    kept = [image.copy() for image, _ in cached._images]
    assert sum(image.nbytes for image in kept) == cached.decoded_bytes() > 0
    plain = DetectionDataset(spec, "train", imgsz=64, augment=True)
    for mosaic in (True, False):
        cached.mosaic_enabled = plain.mosaic_enabled = mosaic
        for i in range(len(plain)):
            samples = []
            for dataset in (cached, plain):
                random.seed(i)
                np.random.seed(i)
                samples.append(dataset[i])
            assert torch.equal(samples[0][0], samples[1][0]) and torch.equal(samples[0][1], samples[1][1])
    assert all(np.array_equal(before, after) for before, (after, _) in zip(kept, cached._images))


def test_imgsz_must_be_a_stride_multiple(colour_boxes_yaml):
    with pytest.raises(
        ArgumentError, match="--imgsz 100: must be a positive multiple of the model stride 32; use 96 or 128"
    ):
        DetectionDataset(load_data_spec(colour_boxes_yaml), "val", imgsz=100)
