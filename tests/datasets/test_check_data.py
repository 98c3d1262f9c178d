"""yolorep check-data: counts, problems, duplicates and class balance of every layout, without training."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest
from voc_files import obj, voc_xml, write_tree, write_yaml

import yolorep.engine.duplicates as duplicates
from yolorep.cli import main
from yolorep.engine.data_check import check_data
from yolorep.engine.duplicates import identical_files, near_duplicates


def _picture(seed: int, h: int = 60, w: int = 80) -> np.ndarray:
    """A smooth random picture: its difference hash survives resizing and JPEG compression."""
    small = np.random.default_rng(seed).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _exif_rotated_jpeg(picture: np.ndarray) -> bytes:
    """A JPEG whose EXIF asks viewers to rotate it by 90 degrees (orientation 6)."""
    import io

    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.fromarray(picture[:, :, ::-1]).save(out, format="JPEG", exif=exif)
    return out.getvalue()


def test_yolo_counts_problems_duplicates_and_balance(yolo_factory, tmp_path, caplog):
    rows = (
        "0 0.5 0.5 0.5 0.25\n"  # ordinary
        "1 0.9 0.9 0.4 0.4\n"  # partly outside: clipped
        "1 0.5 0.5 0.02 0.5\n"  # 1.6 px wide: kept by the loader (>= 1 px), tiny at --imgsz 64 (1.3 px)
        "0 0.5 0.5 0.2\n"  # bad row
        "1 1.5 1.5 0.1 0.1\n"  # wholly outside: dropped
    )
    yaml_path = yolo_factory(
        {
            "a.jpg": _picture(0),
            "b.png": _picture(1),
            "copy.png": _picture(1),
            "broken.jpg": b"\xff\xd8 not a jpeg",
            "turned.jpg": _exif_rotated_jpeg(_picture(2)),
        },
        {"a.txt": rows, "b.txt": "0 0.2 0.2 0.2 0.2\n", "copy.txt": "0 0.2 0.2 0.2 0.2\n"},
        ["cat", "dog", "bird"],
    )
    with caplog.at_level(logging.INFO):
        report = check_data(yaml_path, imgsz=64, project=tmp_path, name="check")
    train, val = report["splits"]["train"], report["splits"]["val"]
    expected = {
        "images": 4,
        "boxes": 5,
        "skipped_images": 1,
        "bad_labels": 1,
        "dropped_boxes": 1,
        "clipped_boxes": 1,
        "tiny_boxes": 1,
        "background_images": 1,
        "missing_labels": 1,
        "duplicate_images": 1,
        "exif_rotated": 1,
    }
    assert {k: train[k] for k in expected} == expected
    assert train["instances_per_class"] == [3, 2, 0] and train["images_per_class"] == [3, 1, 0]
    assert train["shared_images"] is None and val["shared_images"] == 4  # the factory writes val as a copy of train
    assert val["near_duplicates"] is None  # not asked for
    run = tmp_path / "check"
    assert json.loads((run / "report.json").read_text())["splits"]["val"]["boxes"] == 5
    for split in ("train", "val"):
        assert cv2.imread(str(run / f"labels_{split}.jpg")) is not None
    text = caplog.text
    assert "broken.jpg: unreadable image" in text  # the loader's own report, read afresh
    assert "train: no box of class bird" in text and "val: 4 image(s) also in an earlier split" in text
    assert "boxes partly outside the image, clipped" in text and "tiny boxes (under 2 px a side at --imgsz)" in text
    assert "images with an EXIF rotation" in text


def test_coco_and_a_test_split(coco_factory, tmp_path):
    images = [{"id": 3, "file_name": "a.jpg", "width": 40, "height": 30},
              {"id": 9, "file_name": "b.jpg", "width": 40, "height": 30}]  # fmt: skip
    annotations = [
        {"id": 1, "image_id": 3, "category_id": 5, "bbox": [30, 20, 20, 20], "area": 400, "iscrowd": 0},  # clipped
        {"id": 2, "image_id": 3, "category_id": 5, "bbox": [1, 1, 8, 8], "area": 64, "iscrowd": 1},
        {"id": 3, "image_id": 9, "category_id": 7, "bbox": [1, 1, 8, 8], "area": 64, "iscrowd": 0},
    ]
    yaml_path = coco_factory(images, annotations, [{"id": 5, "name": "cat"}, {"id": 7, "name": "dog"}])
    yaml_path.write_text(yaml_path.read_text() + "test: images/val\ntest_json: annotations/val.json\n")
    report = check_data(data=str(yaml_path), imgsz=320, project=tmp_path)
    assert list(report["splits"]) == ["train", "val", "test"] and report["layout"] == "coco"
    test = report["splits"]["test"]
    assert test["boxes"] == 2 and test["crowd_boxes"] == 1 and test["clipped_boxes"] == 1
    assert test["instances_per_class"] == [1, 1] and test["shared_images"] == 2
    assert (tmp_path / "exp" / "labels_test.jpg").is_file()


def test_voc_difficult_objects_and_names(tmp_path):
    files = {f"images/{n}.jpg": _picture(i, 30, 40) for i, n in enumerate("abc")}
    files.update({
        "annotations/a.xml": voc_xml(obj("cat", 2, 2, 20, 20, difficult=1)),
        "annotations/b.xml": voc_xml(obj("dog", 2, 2, 20, 20), obj("dog", 5, 5, 39, 29)),
        "annotations/c.xml": voc_xml(obj("cat", 2, 2, 9, 9)),
    })  # fmt: skip
    write_tree(tmp_path / "pets", files, {"train.txt": ["a", "b"], "val.txt": ["c"]})
    report = check_data(write_yaml(tmp_path / "pets.yaml", "path: pets\ntrain: train.txt\nval: val.txt\n"),
                        project=tmp_path)  # fmt: skip
    assert report["layout"] == "voc" and report["names"] == ["cat", "dog"]
    train = report["splits"]["train"]
    assert train["difficult_boxes"] == 1 and train["instances_per_class"] == [1, 2]
    assert report["splits"]["val"]["shared_images"] == 0


def test_shapes_set_with_near_duplicates(shapes_yaml, tmp_path):
    report = check_data(shapes_yaml, near_duplicates=True, project=tmp_path)
    train = report["splits"]["train"]
    assert train["images"] == 8 and train["boxes"] > 0 and train["near_duplicates"] == 0
    assert report["duplicates"] == {"identical": [], "near": []}


def test_near_duplicates_are_counted_listed_and_logged(yolo_factory, tmp_path, caplog):
    picture = _picture(7, 120, 160)
    smaller = cv2.imencode(".jpg", cv2.resize(picture, (80, 60)), [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
    label = "0 0.5 0.5 0.5 0.5\n"
    images = {"a.png": picture, "a_small.jpg": smaller, "other.png": _picture(8, 120, 160)}
    yaml_path = yolo_factory(images, {"a.txt": label, "a_small.txt": label, "other.txt": label}, ["cat"])
    with caplog.at_level(logging.INFO):
        report = check_data(yaml_path, near_duplicates=True, project=tmp_path, name="near")
    # the factory's val split is a byte copy of train: identical across splits, so never "near" there
    assert report["splits"]["train"]["near_duplicates"] == 2 and report["splits"]["val"]["near_duplicates"] == 0
    [group] = report["duplicates"]["near"]
    assert [p.rsplit("/", 1)[1] for p in group] == ["a.png", "a_small.jpg"]
    assert f"near-duplicate files: {', '.join(group)}" in caplog.text


def test_an_unusable_set_is_one_line_and_exit_2(yolo_factory, tmp_path, caplog):
    yaml_path = yolo_factory({"a.png": _picture(0), "b.png": _picture(1)}, {}, ["cat"])
    assert main(["check-data", str(yaml_path), "--project", str(tmp_path)]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "train: no boxes in its 2 usable images; there is nothing to learn" in errors[0]
    assert (tmp_path / "exp" / "report.json").is_file()  # the report explains it
    assert main(["check-data", str(tmp_path / "absent.yaml"), "--project", str(tmp_path)]) == 2
    assert "dataset YAML not found" in caplog.text and not (tmp_path / "exp2").exists()


def test_identical_files_reads_only_files_of_a_shared_size(tmp_path, monkeypatch):
    for name, data in {"a": b"x" * 10, "b": b"x" * 10, "c": b"y" * 10, "d": b"z" * 11, "e": b"x" * 10}.items():
        (tmp_path / name).write_bytes(data)
    hashed = []
    original = duplicates._content_hash
    monkeypatch.setattr(duplicates, "_content_hash", lambda p: hashed.append(p.name) or original(p))
    paths = sorted(tmp_path.iterdir())
    assert identical_files([*paths, paths[0]]) == [[tmp_path / "a", tmp_path / "b", tmp_path / "e"]]
    assert sorted(hashed) == ["a", "b", "c", "e"]  # d's size is its own


def test_near_duplicates_are_resized_or_recompressed_copies(tmp_path):
    picture = _picture(5, 120, 160)
    cv2.imwrite(str(tmp_path / "a.png"), picture)
    cv2.imwrite(str(tmp_path / "a_small.jpg"), cv2.resize(picture, (80, 60)), [cv2.IMWRITE_JPEG_QUALITY, 70])
    (tmp_path / "a_copy.png").write_bytes((tmp_path / "a.png").read_bytes())
    cv2.imwrite(str(tmp_path / "other.png"), _picture(6, 120, 160))
    paths = sorted(tmp_path.iterdir())
    exact = identical_files(paths)
    assert exact == [[tmp_path / "a.png", tmp_path / "a_copy.png"]]
    assert near_duplicates(paths, exclude=exact) == [[tmp_path / "a.png", tmp_path / "a_small.jpg"]]


def test_bad_arguments_exit_2(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    assert main(["check-data", "x.yaml", "--imgsz", "0"]) == 2
    assert "--imgsz 0: out of range" in caplog.text
    with pytest.raises(SystemExit) as exit_info:
        main(["check-data"])  # DATA missing: argparse's usage line
    assert exit_info.value.code == 2 and not any(tmp_path.iterdir())
