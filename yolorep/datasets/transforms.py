"""Image + box transforms for detection: letterbox, mosaic, random affine, HSV jitter, horizontal and vertical flips.

Images are ``[H, W, 3]`` uint8 numpy arrays (BGR, as cv2 reads them). Labels are ``[n, 5]`` float32 arrays of rows
``(cls, x1, y1, x2, y2)`` in pixels of the image they travel with. Random draws use the global ``random`` and
``np.random`` states, which the data loader seeds per worker.
"""

from __future__ import annotations

import math
import random

import cv2
import numpy as np

from yolorep.ops.boxes import clip_boxes

__all__ = [
    "PAD_VALUE",
    "augment_hsv",
    "box_candidates",
    "fliplr",
    "flipud",
    "letterbox",
    "mosaic4",
    "random_affine",
    "resize_longest",
]

PAD_VALUE = 114  # grey used for every padded pixel (letterbox, mosaic, affine borders)


def resize_longest(image: np.ndarray, size: int, augment: bool = False) -> tuple[np.ndarray, tuple[float, float]]:
    """Resize so the longest side is ``size``, keeping the aspect ratio.

    Returns:
        The resized image and the exact per-axis ratios ``(new_w / w, new_h / h)`` (rounding makes them differ
        slightly from ``size / max(h, w)``).
    """
    h, w = image.shape[:2]
    r = size / max(h, w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    if (new_w, new_h) != (w, h):
        # INTER_AREA avoids aliasing when shrinking for evaluation; training favours speed and matches inference
        # of most detectors with INTER_LINEAR.
        interpolation = cv2.INTER_LINEAR if augment or r > 1 else cv2.INTER_AREA
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    return image, (new_w / w, new_h / h)


def letterbox(
    image: np.ndarray, shape: tuple[int, int], scaleup: bool = True, pad_value: int = PAD_VALUE
) -> tuple[np.ndarray, tuple[float, float], tuple[int, int]]:
    """Fit ``image`` inside ``shape`` = (height, width) keeping its aspect ratio, padding evenly on both sides.

    Args:
        image: ``[h, w, 3]`` uint8.
        shape: target ``(H, W)``.
        scaleup: allow enlarging; ``False`` only shrinks (or pads) images that already fit.
        pad_value: grey level of the padding.

    Returns:
        ``(out [H, W, 3], (rw, rh), (pad_left, pad_top))``. A point ``(x, y)`` of the input maps to
        ``(x * rw + pad_left, y * rh + pad_top)`` in the output; the ratios are the exact resize ratios.
    """
    h, w = image.shape[:2]
    target_h, target_w = shape
    r = min(target_h / h, target_w / w)
    if not scaleup:
        r = min(r, 1.0)
    new_w, new_h = min(max(round(w * r), 1), target_w), min(max(round(h * r), 1), target_h)
    if (new_w, new_h) != (w, h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    left, top = (target_w - new_w) // 2, (target_h - new_h) // 2
    right, bottom = target_w - new_w - left, target_h - new_h - top
    if left or top or right or bottom:
        image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(pad_value,) * 3)
    return image, (new_w / w, new_h / h), (left, top)


def box_candidates(
    unclipped_xyxy: np.ndarray, clipped_xyxy: np.ndarray, min_side: float = 2.0, min_area_ratio: float = 0.1
) -> np.ndarray:
    """Boolean ``[n]``: boxes that keep at least ``min_side`` px per side and ``min_area_ratio`` of their area.

    Args:
        unclipped_xyxy: ``[n, 4]`` boxes after a transform, before clipping to the image.
        clipped_xyxy: the same boxes clipped to the image.
    """
    w, h = clipped_xyxy[:, 2] - clipped_xyxy[:, 0], clipped_xyxy[:, 3] - clipped_xyxy[:, 1]
    full = (unclipped_xyxy[:, 2] - unclipped_xyxy[:, 0]) * (unclipped_xyxy[:, 3] - unclipped_xyxy[:, 1])
    return (w >= min_side) & (h >= min_side) & (w * h >= min_area_ratio * np.maximum(full, 1e-9))


def _keep_visible(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Clip label boxes to ``shape`` and drop those mostly outside it."""
    clipped = labels.copy()
    clipped[:, 1:5] = clip_boxes(labels[:, 1:5], shape)
    return clipped[box_candidates(labels[:, 1:5], clipped[:, 1:5])]


def mosaic4(
    images: list[np.ndarray], labels: list[np.ndarray], size: int, pad_value: int = PAD_VALUE
) -> tuple[np.ndarray, np.ndarray]:
    """Tile four images around a random centre on a ``2 * size`` square canvas (YOLOv4 mosaic).

    Args:
        images: four ``[h, w, 3]`` uint8 images, longest side ``size``.
        labels: their ``[n_i, 5]`` labels.
        size: the training image size.

    Returns:
        ``(canvas [2 * size, 2 * size, 3], labels [n, 5])``; boxes clipped to the canvas, mostly-cut ones dropped.
        Follow with :func:`random_affine` to ``(size, size)`` to crop around the centre.
    """
    assert len(images) == len(labels) == 4, "mosaic4 takes exactly four images"
    s2 = 2 * size
    xc, yc = (int(random.uniform(size / 2, 3 * size / 2)) for _ in range(2))
    canvas = np.full((s2, s2, 3), pad_value, dtype=np.uint8)
    placed = []
    for i, (image, lab) in enumerate(zip(images, labels)):
        h, w = image.shape[:2]
        # Each tile touches the centre from its quadrant; the canvas edge is the only place it gets cut.
        x1a, x2a = (max(xc - w, 0), xc) if i in (0, 2) else (xc, min(xc + w, s2))
        y1a, y2a = (max(yc - h, 0), yc) if i in (0, 1) else (yc, min(yc + h, s2))
        x1b = w - (x2a - x1a) if i in (0, 2) else 0
        y1b = h - (y2a - y1a) if i in (0, 1) else 0
        canvas[y1a:y2a, x1a:x2a] = image[y1b : y1b + (y2a - y1a), x1b : x1b + (x2a - x1a)]
        shifted = lab.copy()
        shifted[:, [1, 3]] += x1a - x1b
        shifted[:, [2, 4]] += y1a - y1b
        placed.append(shifted)
    return canvas, _keep_visible(np.concatenate(placed, 0), (s2, s2))


def random_affine(
    image: np.ndarray,
    labels: np.ndarray,
    out_shape: tuple[int, int],
    degrees: float = 0.0,
    translate: float = 0.1,
    scale: float = 0.5,
    shear: float = 0.0,
    pad_value: int = PAD_VALUE,
) -> tuple[np.ndarray, np.ndarray]:
    """Random rotation, scale, shear and translation about the image centre, output of ``out_shape``.

    The input centre lands at the output centre shifted by up to ``translate`` of the output size, so a
    ``2 * size`` mosaic canvas with ``out_shape = (size, size)`` is cropped around its centre.

    Args:
        image: ``[h, w, 3]`` uint8.
        labels: ``[n, 5]`` rows ``(cls, x1, y1, x2, y2)`` in input pixels.
        out_shape: ``(H, W)`` of the result.
        degrees: rotation range +-degrees.
        translate: translation range, fraction of the output size.
        scale: scale gain range, ``1 +- scale``.
        shear: shear range +-degrees.

    Returns:
        ``(image [H, W, 3], labels [m, 5])``: boxes are the axis-aligned hull of the transformed box corners,
        clipped; boxes keeping under 10% of their area or under 2 px a side are dropped.
    """
    h, w = image.shape[:2]
    out_h, out_w = out_shape
    centre = np.eye(3)
    centre[:2, 2] = -w / 2, -h / 2
    rotate = np.eye(3)
    angle, gain = random.uniform(-degrees, degrees), random.uniform(1 - scale, 1 + scale)
    rotate[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=angle, scale=gain)
    skew = np.eye(3)
    skew[0, 1], skew[1, 0] = (math.tan(math.radians(random.uniform(-shear, shear))) for _ in range(2))
    move = np.eye(3)
    move[0, 2] = random.uniform(0.5 - translate, 0.5 + translate) * out_w
    move[1, 2] = random.uniform(0.5 - translate, 0.5 + translate) * out_h
    matrix = (move @ skew @ rotate @ centre)[:2]  # [2, 3], applied right to left
    image = cv2.warpAffine(image, matrix, (out_w, out_h), borderValue=(pad_value,) * 3)

    if len(labels):
        corners = labels[:, [1, 2, 3, 2, 3, 4, 1, 4]].reshape(-1, 2)  # [4n, 2] (x1y1, x2y1, x2y2, x1y2)
        moved = (corners @ matrix[:, :2].T + matrix[:, 2]).reshape(-1, 4, 2)
        labels = np.concatenate([labels[:, :1], moved.min(1), moved.max(1)], 1).astype(np.float32)
        labels = _keep_visible(labels, out_shape)
    return image, labels


def augment_hsv(image: np.ndarray, hgain: float = 0.015, sgain: float = 0.7, vgain: float = 0.4) -> np.ndarray:
    """Random hue/saturation/value gains via lookup tables; returns a new BGR uint8 image of the same shape."""
    if not (hgain or sgain or vgain):
        return image
    gains = np.random.uniform(-1, 1, 3) * (hgain, sgain, vgain) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float64)
    lut_hue = ((x * gains[0]) % 180).astype(np.uint8)  # OpenCV hue lives in [0, 180)
    lut_sat = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def fliplr(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right; boxes follow (``x1' = W - x2``, ``x2' = W - x1``)."""
    w = image.shape[1]
    labels = labels.copy()
    labels[:, [1, 3]] = w - labels[:, [3, 1]]
    return np.ascontiguousarray(image[:, ::-1]), labels


def flipud(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror up-down; boxes follow (``y1' = H - y2``, ``y2' = H - y1``)."""
    h = image.shape[0]
    labels = labels.copy()
    labels[:, [2, 4]] = h - labels[:, [4, 2]]
    return np.ascontiguousarray(image[::-1]), labels
