"""Tiny datasets written under tmp_path: a synthetic shapes set and hand-made YOLO/COCO layouts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

BACKGROUND = (40, 40, 40)  # BGR of the plain background in the colour-box set
# BGR colours, far from the background, the pad grey (114) and from one another.
COLOURS = (
    (0, 0, 255),
    (0, 255, 0),
    (255, 0, 0),
    (0, 255, 255),
    (255, 0, 255),
    (255, 255, 0),
    (0, 128, 255),
    (255, 128, 0),
    (128, 0, 255),
    (200, 255, 200),
    (255, 255, 255),
    (0, 0, 128),
)


@pytest.fixture
def box_colours() -> tuple[tuple[int, int, int], ...]:
    """BGR colour of object (= class) k of :func:`colour_boxes_yaml`."""
    return COLOURS


@pytest.fixture
def shapes_yaml(tmp_path: Path) -> Path:
    """A dataset YAML describing a tiny synthetic shapes set (generated on first load)."""
    path = tmp_path / "data" / "shapes.yaml"
    path.parent.mkdir()
    path.write_text(
        "path: ../shapes\n"
        "train: images/train\n"
        "val: images/val\n"
        "train_json: annotations/instances_train.json\n"
        "val_json: annotations/instances_val.json\n"
        "synthetic: {n_train: 8, n_val: 4, imgsz: 96, seed: 3, max_objects: 4}\n"
    )
    return path


def _write_yolo_yaml(root: Path, names: list[str]) -> Path:
    path = root / "data.yaml"
    path.write_text(json.dumps({"path": ".", "train": "images/train", "val": "images/val", "names": names}))
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def colour_boxes_yaml(tmp_path: Path) -> Path:
    """YOLO layout: 6 PNGs of assorted sizes, each with 2 solid rectangles; object k has class k and COLOURS[k]."""
    root = tmp_path / "boxes"
    root.mkdir()
    yaml_path = _write_yolo_yaml(root, [f"c{k}" for k in range(len(COLOURS))])
    rng = np.random.default_rng(0)
    sizes = [(96, 128), (128, 96), (128, 128), (80, 128), (128, 112), (112, 128)]
    for i, (h, w) in enumerate(sizes):
        image = np.full((h, w, 3), BACKGROUND, np.uint8)
        rows = []
        for k in (2 * i, 2 * i + 1):
            bw, bh = (int(v) for v in rng.integers(16, 48, size=2))
            # The two rectangles of an image sit in different halves, so they never overlap.
            x = int(rng.integers(0, w // 2 - bw)) if k % 2 == 0 else int(rng.integers(w // 2, w - bw))
            y = int(rng.integers(0, h - bh))
            image[y : y + bh, x : x + bw] = COLOURS[k]
            rows.append(f"{k} {(x + bw / 2) / w} {(y + bh / 2) / h} {bw / w} {bh / h}")
        for split in ("train", "val"):
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), image)
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(rows) + "\n")
    return yaml_path


@pytest.fixture
def yolo_factory(tmp_path: Path) -> Callable[[dict[str, np.ndarray | bytes], dict[str, str], list[str]], Path]:
    """Write a YOLO layout (train and val identical) from ``{file name: image or raw bytes}`` and
    ``{label file name: text}``; return its YAML."""

    def make(images: dict[str, np.ndarray | bytes], labels: dict[str, str], names: list[str]) -> Path:
        root = tmp_path / "yolo"
        root.mkdir()
        yaml_path = _write_yolo_yaml(root, names)
        for split in ("train", "val"):
            for name, image in images.items():
                path = root / "images" / split / name
                path.write_bytes(image if isinstance(image, bytes) else cv2.imencode(path.suffix, image)[1].tobytes())
            for name, text in labels.items():
                (root / "labels" / split / name).write_text(text)
        return yaml_path

    return make


@pytest.fixture
def coco_factory(tmp_path: Path) -> Callable[[list[dict], list[dict], list[dict]], Path]:
    """Write a COCO layout (same JSON for train and val) from images/annotations/categories; return its YAML.

    Each image entry needs ``id``, ``file_name``, ``width``, ``height``; a grey JPEG of that size is written.
    """

    def make(images: list[dict], annotations: list[dict], categories: list[dict]) -> Path:
        root = tmp_path / "coco"
        (root / "annotations").mkdir(parents=True)
        for split in ("train", "val"):
            (root / "images" / split).mkdir(parents=True)
            for entry in images:
                image = np.full((entry["height"], entry["width"], 3), 90, np.uint8)
                cv2.imwrite(str(root / "images" / split / entry["file_name"]), image)
            coco = {"images": images, "annotations": annotations, "categories": categories}
            (root / "annotations" / f"{split}.json").write_text(json.dumps(coco))
        yaml_path = root / "data.yaml"
        yaml_path.write_text(
            "path: .\ntrain: images/train\nval: images/val\n"
            "train_json: annotations/train.json\nval_json: annotations/val.json\n"
        )
        return yaml_path

    return make
