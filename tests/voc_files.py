"""Tiny Pascal VOC trees written under tmp_path, for the VOC loader, converter and training tests."""

from __future__ import annotations

from pathlib import Path
from typing import Union

import cv2
import numpy as np

Image = Union[tuple[int, int], bytes, np.ndarray]  # (h, w) of a grey image, raw bytes, or BGR pixels


def obj(name: str, xmin, ymin, xmax, ymax, difficult: int = 0, truncated: int = 0) -> str:
    """One ``<object>`` element; coordinates are written as given (numbers or any text)."""
    return (
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>{truncated}</truncated>"
        f"<difficult>{difficult}</difficult><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax>"
        f"<ymax>{ymax}</ymax></bndbox></object>"
    )


def voc_xml(*objects: str, size: tuple[int, int] | None = (40, 30), filename: str = "x.jpg") -> str:
    """A VOC annotation file; ``size`` is (width, height) as VOC writes it, None leaves ``<size>`` out."""
    size_xml = (
        "" if size is None else f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
    )
    return f"<annotation><folder>x</folder><filename>{filename}</filename>{size_xml}{''.join(objects)}</annotation>"


def write_image(path: Path, image: Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, bytes):
        path.write_bytes(image)
        return
    pixels = np.full((*image, 3), 90, np.uint8) if isinstance(image, tuple) else image
    path.write_bytes(cv2.imencode(path.suffix.lower(), pixels)[1].tobytes())


def write_tree(root: Path, files: dict[str, Image | str], lists: dict[str, list[str]] | None = None) -> Path:
    """Write ``{relative path: image or XML text}`` and ``{list file: entries}`` under ``root``; return it."""
    for name, content in files.items():
        path = root / name
        if isinstance(content, str):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        else:
            write_image(path, content)
    for name, entries in (lists or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("".join(e + "\n" for e in entries))
    return root


def write_yaml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def coloured_voc_set(root: Path, n_train: int = 8, n_val: int = 4, seed: int = 0) -> Path:
    """A devkit-layout set of ``n_train + n_val`` 64x80 JPEGs with 1-2 solid rectangles (classes ``red``,
    ``green``), one difficult object in every third image; returns its YAML (names collected from the XML)."""
    rng = np.random.default_rng(seed)
    colours = {"red": (0, 0, 255), "green": (0, 255, 0)}
    files: dict[str, Image | str] = {}
    ids = [f"{i:04d}" for i in range(n_train + n_val)]
    for i, image_id in enumerate(ids):
        image = np.full((64, 80, 3), 40, np.uint8)
        objects = []
        for k, (name, colour) in enumerate(list(colours.items())[: 1 + i % 2]):
            w, h = (int(v) for v in rng.integers(14, 30, size=2))
            x = int(rng.integers(0, 40 - w)) + 40 * k
            y = int(rng.integers(0, 64 - h))
            image[y : y + h, x : x + w] = colour
            objects.append(obj(name, x + 1, y + 1, x + w, y + h, difficult=int(i % 3 == 2 and k == 0)))
        files[f"JPEGImages/{image_id}.jpg"] = image
        files[f"Annotations/{image_id}.xml"] = voc_xml(*objects, size=(80, 64), filename=f"{image_id}.jpg")
    lists = {"ImageSets/Main/train.txt": ids[:n_train], "ImageSets/Main/val.txt": ids[n_train:]}
    write_tree(root, files, lists)
    return write_yaml(root / "voc.yaml", "path: .\ntrain: ImageSets/Main/train.txt\nval: ImageSets/Main/val.txt\n")
