"""Association: box overlaps as costs, and the thresholded minimum-cost assignment between tracks and detections."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from yolorep.errors import YolorepError

__all__ = ["assignment_solver", "fuse_scores", "iou_cost", "linear_assignment"]


def iou_cost(boxes_a_xyxy: np.ndarray, boxes_b_xyxy: np.ndarray) -> np.ndarray:
    """[N, M] cost ``1 - IoU`` between [N, 4] and [M, 4] boxes (x1, y1, x2, y2); 1 where they do not overlap.

    The same numbers as ``torchvision.ops.box_iou`` (a test checks it), in numpy: at tracker sizes (tens of boxes)
    torch's per-operation dispatch cost several times the arithmetic, and a frame makes four of these.
    """
    a, b = np.asarray(boxes_a_xyxy, np.float64).reshape(-1, 4), np.asarray(boxes_b_xyxy, np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.ones((len(a), len(b)))
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0.0, None).prod(axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return 1.0 - inter / np.maximum(union, 1e-12)


def fuse_scores(cost: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ByteTrack's score fusion: cost ``1 - IoU * score``, so a confident detection wins a close call. ``cost``
    [N, M] is ``1 - IoU`` against M detections scoring ``scores`` [M]."""
    return 1.0 - (1.0 - cost) * np.asarray(scores)[None, :]


def assignment_solver() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """``scipy.optimize.linear_sum_assignment``, or one line saying how to install it.

    Raises:
        YolorepError: scipy is not installed.
    """
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        raise YolorepError("tracking needs scipy, which is not installed; pip install 'yolorep[track]'") from None
    return linear_sum_assignment


def linear_assignment(cost: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost matching that leaves a row or column unmatched rather than pair it above ``threshold``.

    This is the problem ``lap.lapjv(cost, extend_cost=True, cost_limit=threshold)`` solves (every unmatched row
    and column costs ``threshold / 2``), solved as the maximum-weight matching on weights
    ``max(threshold - cost, 0)`` with ``scipy.optimize.linear_sum_assignment``: a pair that costs more than the
    threshold earns nothing and is dropped, so it can never displace a valid pair.

    Args:
        cost: [N, M] costs.
        threshold: largest cost of an accepted pair.

    Returns:
        ``matches`` [K, 2] (row, column) pairs, ``unmatched_rows`` [N - K], ``unmatched_cols`` [M - K].
    """
    if cost.size == 0:
        return np.empty((0, 2), dtype=np.int64), np.arange(cost.shape[0]), np.arange(cost.shape[1])
    rows, cols = assignment_solver()(np.maximum(threshold - cost, 0.0), maximize=True)
    keep = cost[rows, cols] <= threshold
    rows, cols = rows[keep], cols[keep]
    free_rows, free_cols = np.ones(cost.shape[0], bool), np.ones(cost.shape[1], bool)
    free_rows[rows], free_cols[cols] = False, False
    return np.stack([rows, cols], axis=1).astype(np.int64), np.flatnonzero(free_rows), np.flatnonzero(free_cols)
