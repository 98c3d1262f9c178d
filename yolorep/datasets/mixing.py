"""Augmentations that mix two training images: MixUp and box-level copy-paste.

Images are ``[H, W, 3]`` uint8 (BGR) and labels ``[n, 5]`` float32 rows ``(cls, x1, y1, x2, y2)`` in pixels, as in
:mod:`yolorep.datasets.transforms`; random draws use the global ``random`` and ``np.random`` states.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from yolorep.ops.boxes import box_ioa

__all__ = ["MAX_COVER", "copy_paste", "mixup"]

MAX_COVER = 0.3  # a pasted object may hide at most this share of a box already in the image (ultralytics' 0.30)
_PLACES_TRIED = 3  # random places tried for each pasted object before it is left out
_MIN_SIDE = 2  # pixels: smaller boxes are not pasted (they are dropped by the affine's box rules anyway)


def mixup(
    image: np.ndarray, labels: np.ndarray, other: np.ndarray, other_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """MixUp (Zhang et al., ICLR 2018) for detection: blend two images of one shape with a ratio drawn from
    Beta(32, 32) (near 0.5, as YOLOv5/v8 draw it) and keep the boxes of both.

    Returns:
        ``(image [H, W, 3] uint8, labels [n + m, 5])``.
    """
    ratio = np.random.beta(32.0, 32.0)
    blended = image.astype(np.float32) * ratio + other.astype(np.float32) * (1 - ratio)
    return blended.round().astype(np.uint8), np.concatenate([labels, other_labels], 0)


def copy_paste(
    image: np.ndarray, labels: np.ndarray, donor: np.ndarray, donor_labels: np.ndarray, probability: float
) -> tuple[np.ndarray, np.ndarray]:
    """Copy objects of ``donor`` into ``image``: each with ``probability``, as the rectangle of its box (yolorep's
    labels are boxes, without the segmentation masks that copy-paste of Ghiasi et al., CVPR 2021, cuts objects
    out with, so the object brings the background inside its box along), at a random place where it hides at most
    :data:`MAX_COVER` of every box already there, pasted ones included; an object with no such place among
    :data:`_PLACES_TRIED` draws is left out. Its box and class are added to the labels.

    Args:
        image: ``[H, W, 3]`` the image to paste into; not modified.
        labels: its ``[n, 5]`` labels.
        donor: ``[h, w, 3]`` the image objects are taken from, at the same scale.
        donor_labels: its ``[m, 5]`` labels.
        probability: chance of each donor object being pasted.

    Returns:
        ``(image [H, W, 3], labels [n + k, 5])``: a copy with ``k`` objects pasted.
    """
    height, width = image.shape[:2]
    out, kept = image, [labels]
    boxes = torch.from_numpy(labels[:, 1:5].astype(np.float32)).reshape(-1, 4)
    for cls, x1, y1, x2, y2 in donor_labels.tolist():
        if random.random() >= probability:
            continue
        x1, y1 = max(int(round(x1)), 0), max(int(round(y1)), 0)
        box_w, box_h = min(int(round(x2)), donor.shape[1]) - x1, min(int(round(y2)), donor.shape[0]) - y1
        if min(box_w, box_h) < _MIN_SIDE or box_w > width or box_h > height:
            continue
        for _ in range(_PLACES_TRIED):
            left, top = random.randint(0, width - box_w), random.randint(0, height - box_h)
            placed = torch.tensor([[left, top, left + box_w, top + box_h]], dtype=torch.float32)
            if len(boxes) and bool((box_ioa(boxes, placed) > MAX_COVER).any()):
                continue
            out = out.copy() if out is image else out
            out[top : top + box_h, left : left + box_w] = donor[y1 : y1 + box_h, x1 : x1 + box_w]
            boxes = torch.cat([boxes, placed])
            kept.append(np.array([[cls, *placed[0].tolist()]], dtype=np.float32))
            break
    return out, np.concatenate(kept, 0)
