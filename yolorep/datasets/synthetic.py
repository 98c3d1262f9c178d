"""The bundled synthetic shapes set: coloured shapes on textured, noisy backgrounds, in COCO layout.

Category ids are deliberately non-contiguous (1, 2, 3, 5, 7, 8) so that every consumer exercises the mapping
between dataset category ids and contiguous class indices.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolorep.atomic import partial_dir
from yolorep.errors import DatasetError

__all__ = ["SHAPE_CATEGORIES", "contrasting_colour", "draw_shape", "generate_shapes", "textured_background"]

SHAPE_CATEGORIES: tuple[tuple[int, str], ...] = (
    (1, "circle"),
    (2, "rectangle"),
    (3, "triangle"),
    (5, "ellipse"),
    (7, "star"),
    (8, "cross"),
)
_MIN_SIZE, _MAX_SIZE = 10, 200
_MIN_VISIBLE_PX = 40  # smaller remnants (border cuts) are not placed at all, so no unlabelled shape exists
_KEEP_VISIBLE = 0.5  # a new shape may hide at most half of an earlier one
_JPEG_QUALITY = 90


def generate_shapes(
    root: str | Path, n_train: int = 800, n_val: int = 200, imgsz: int = 320, seed: int = 0, max_objects: int = 8
) -> Path:
    """Write the shapes set under ``root`` and return ``root``; identical output for identical arguments.

    Layout: ``root/images/{train,val}/NNNNNN.jpg`` and ``root/annotations/instances_{train,val}.json`` (COCO
    instances: ``bbox`` is ``[x, y, w, h]`` in pixels, tight on the visible pixels of the shape). Image sides are
    drawn from ``[0.75 * imgsz, imgsz]`` so letterbox and rectangular batches see varied aspect ratios.

    Everything is written to a temporary sibling folder first and renamed into place, so an interrupted run
    leaves either no set or a complete one. A complete set already at ``root`` is kept as it is.

    Raises:
        DatasetError: ``root`` holds files from an incomplete set that cannot be replaced.
    """
    root = Path(root)
    if _is_complete(root):
        return root
    tmp = partial_dir(root)
    try:
        for split_index, (split, n) in enumerate((("train", n_train), ("val", n_val))):
            rng = np.random.default_rng([seed, split_index])
            coco = _write_split(tmp / "images" / split, n, imgsz, max_objects, rng)
            (tmp / "annotations").mkdir(exist_ok=True)
            (tmp / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
        _move_into_place(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _is_complete(root: Path) -> bool:
    return all((root / "annotations" / f"instances_{s}.json").is_file() for s in ("train", "val"))


def _move_into_place(tmp: Path, root: Path) -> None:
    try:
        os.replace(tmp, root)  # atomic when root does not exist (or is an empty folder)
        return
    except OSError:
        if _is_complete(root):  # another process (another DDP rank) finished first
            return
    # root holds other files but no set: move the two folders in, annotations last because complete annotation
    # files mark a complete set. Existing images/annotations folders are not ours to delete.
    for sub in ("images", "annotations"):
        if (root / sub).exists():
            raise DatasetError(
                f"{root}: holds an incomplete synthetic set ({root / sub} exists but the annotation files do not); "
                "delete that folder and run again"
            )
    for sub in ("images", "annotations"):
        os.replace(tmp / sub, root / sub)


def _write_split(folder: Path, n: int, imgsz: int, max_objects: int, rng: np.random.Generator) -> dict[str, Any]:
    folder.mkdir(parents=True)
    images, annotations = [], []
    low = max(int(0.75 * imgsz), 1)
    # Crops of one shared noise field at random offsets: drawing fresh gaussian noise per image dominated the time.
    noise_bank = rng.standard_normal((imgsz + 64, imgsz + 64, 3), dtype=np.float32)
    for i in range(n):
        h, w = (int(v) for v in rng.integers(low, imgsz + 1, size=2))
        image, objects = _draw_image(h, w, max_objects, rng)
        oy, ox = (int(v) for v in rng.integers(0, 65, size=2))
        image = cv2.add(image, noise_bank[oy : oy + h, ox : ox + w] * float(rng.uniform(2.0, 10.0)), dtype=cv2.CV_8U)
        file_name = f"{i:06d}.jpg"
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        assert ok, "cv2 failed to encode a synthetic image"
        (folder / file_name).write_bytes(buf.tobytes())
        image_id = i + 1
        images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
        for category_id, bbox, area in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category_id,
                    "bbox": bbox,
                    "area": area,
                    "iscrowd": 0,
                }
            )
    return {
        "info": {"description": "yolorep synthetic shapes"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c, "name": name, "supercategory": "shape"} for c, name in SHAPE_CATEGORIES],
    }


def _draw_image(
    h: int, w: int, max_objects: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[int, list[float], float]]]:
    """One noise-free BGR image ``[h, w, 3]`` and its objects as ``(category_id, [x, y, w, h], visible area)``."""
    image = textured_background(h, w, rng)
    masks: list[np.ndarray] = []  # visible part of each placed shape, [h, w] uint8 0/255
    categories: list[int] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        placed = _place_shape(h, w, masks, rng)
        if placed is None:
            continue
        category_index, mask = placed
        colour = contrasting_colour(np.array(cv2.mean(image, mask)[:3]), rng)
        x, y, bw, bh = cv2.boundingRect(mask)  # paint inside the shape's box only: full-image fills were slow
        image[y : y + bh, x : x + bw][mask[y : y + bh, x : x + bw] > 0] = colour
        for prev in masks:
            cv2.bitwise_and(prev, cv2.bitwise_not(mask), dst=prev)
        masks.append(mask)
        categories.append(SHAPE_CATEGORIES[category_index][0])

    objects = []
    for category_id, mask in zip(categories, masks):
        x, y, bw, bh = cv2.boundingRect(mask)
        objects.append((category_id, [float(x), float(y), float(bw), float(bh)], float(cv2.countNonZero(mask))))
    return image, objects


def _place_shape(
    h: int, w: int, masks: list[np.ndarray], rng: np.random.Generator, tries: int = 5
) -> tuple[int, np.ndarray] | None:
    """Draw a random shape's mask that is visible enough and hides no earlier shape too much."""
    for _ in range(tries):
        category_index = int(rng.integers(len(SHAPE_CATEGORIES)))
        size = float(np.exp(rng.uniform(np.log(_MIN_SIZE), np.log(min(_MAX_SIZE, h, w)))))
        cx, cy = rng.uniform(-0.2 * size, w + 0.2 * size), rng.uniform(-0.2 * size, h + 0.2 * size)
        mask = np.zeros((h, w), np.uint8)
        _DRAWERS[category_index](mask, cx, cy, size, rng)
        if cv2.countNonZero(mask) < _MIN_VISIBLE_PX:
            continue
        hidden = cv2.bitwise_not(mask)
        if all(cv2.countNonZero(m & hidden) >= _KEEP_VISIBLE * cv2.countNonZero(m) for m in masks):
            return category_index, mask
    return None


def textured_background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Linear gradient between two random colours plus random lines, BGR uint8 ``[h, w, 3]``."""
    c0, c1 = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    # The gradient is linear, so computing it on a coarse grid and resizing is exact enough and much cheaper.
    gh, gw = h // 8 + 2, w // 8 + 2
    t = (
        np.cos(angle) * np.arange(gw, dtype=np.float32)[None, :]
        + np.sin(angle) * np.arange(gh, dtype=np.float32)[:, None]
    )
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    image = cv2.resize((c0 + (c1 - c0) * t[..., None]).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(2, 10))):
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        cv2.line(image, p0, p1, colour, int(rng.integers(1, 4)))
    return image


def contrasting_colour(background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random colour at least 150 (sum of absolute channel differences) away from ``background``."""
    colour = rng.integers(0, 256, size=3)
    for _ in range(10):
        if np.abs(colour - background).sum() >= 150:
            break
        colour = rng.integers(0, 256, size=3)
    return colour.astype(np.uint8)


def _polar(radii: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Points ``[k, 2]`` at ``radii`` and ``angles`` (radians) around the origin."""
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _fill(canvas: np.ndarray, cx: float, cy: float, points: np.ndarray, angle: float = 0.0) -> None:
    """Fill the polygon ``points`` ``[k, 2]`` (relative to its centre) rotated by ``angle`` and moved to (cx, cy)."""
    c, s = np.cos(angle), np.sin(angle)
    placed = points @ np.array([[c, s], [-s, c]]) + (cx, cy)
    cv2.fillPoly(canvas, [np.round(placed).astype(np.int32)], 255)


def _circle(canvas: np.ndarray, cx: float, cy: float, size: float, rng: np.random.Generator) -> None:
    cv2.circle(canvas, (round(cx), round(cy)), max(round(size / 2), 1), 255, -1)


def _rectangle(canvas: np.ndarray, cx: float, cy: float, size: float, rng: np.random.Generator) -> None:
    half = np.array([size, size * rng.uniform(0.4, 1.0)]) / 2
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    _fill(canvas, cx, cy, corners, rng.uniform(0, np.pi))


def _triangle(canvas: np.ndarray, cx: float, cy: float, size: float, rng: np.random.Generator) -> None:
    angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2, 4]) * np.pi / 3 + rng.uniform(-0.3, 0.3, size=3)
    _fill(canvas, cx, cy, _polar(np.full(3, size / 2), angles))


def _ellipse(canvas: np.ndarray, cx: float, cy: float, size: float, rng: np.random.Generator) -> None:
    axes = (max(round(size / 2), 1), max(round(size / 2 * rng.uniform(0.35, 0.7)), 1))
    cv2.ellipse(canvas, (round(cx), round(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)


def _star(canvas: np.ndarray, cx: float, cy: float, size: float, rng: np.random.Generator) -> None:
    angles = rng.uniform(0, 2 * np.pi) + np.arange(10) * np.pi / 5
    _fill(canvas, cx, cy, _polar(np.tile([size / 2, size / 5], 5), angles))


def _cross(canvas: np.ndarray, cx: float, cy: float, size: float, rng: np.random.Generator) -> None:
    a, b = size / 2, size * rng.uniform(0.12, 0.2)
    corners = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b], [-a, b],
                        [-a, -b], [-b, -b]])  # fmt: skip
    _fill(canvas, cx, cy, corners, rng.uniform(0, np.pi / 2))


def draw_shape(
    mask: np.ndarray, category_index: int, cx: float, cy: float, size: float, rng: np.random.Generator
) -> None:
    """Fill shape ``SHAPE_CATEGORIES[category_index]`` of about ``size`` pixels centred at (cx, cy) with 255 on
    ``mask`` [H, W] uint8; ``rng`` draws its proportions and rotation (the same seed draws the same shape)."""
    _DRAWERS[category_index](mask, cx, cy, size, rng)


_DRAWERS: tuple[Callable[[np.ndarray, float, float, float, np.random.Generator], None], ...] = (
    _circle,
    _rectangle,
    _triangle,
    _ellipse,
    _star,
    _cross,
)
