"""Association costs and the thresholded assignment, against torchvision and against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from yolorep.track.matching import fuse_scores, iou_cost, linear_assignment


def test_iou_cost_equals_torchvision():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 100, (7, 2))
    b = rng.uniform(0, 100, (5, 2))
    a, b = (
        np.concatenate([a, a + rng.uniform(1, 40, (7, 2))], 1),
        np.concatenate([b, b + rng.uniform(1, 40, (5, 2))], 1),
    )
    expected = 1 - box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(iou_cost(a, b), expected, atol=1e-12)
    assert iou_cost(a, np.empty((0, 4))).shape == (7, 0)


def test_fused_score_cost():
    cost = np.array([[0.2, 1.0]])
    np.testing.assert_allclose(fuse_scores(cost, np.array([0.5, 0.9])), [[1 - 0.8 * 0.5, 1.0]])


def _best_by_brute_force(cost: np.ndarray, threshold: float) -> float:
    """lap.lapjv(extend_cost=True, cost_limit=threshold)'s objective: pairs cost C, each unmatched row/column
    threshold / 2; minimised over every partial matching."""
    n, m = cost.shape
    best = threshold / 2 * (n + m)
    for k in range(1, min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                total = sum(cost[r, c] for r, c in zip(rows, cols)) + threshold / 2 * (n + m - 2 * k)
                best = min(best, total)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_assignment_is_the_thresholded_optimum(seed):
    rng = np.random.default_rng(seed)
    cost = rng.uniform(0, 1, (int(rng.integers(1, 5)), int(rng.integers(1, 5))))
    threshold = 0.6
    matches, free_rows, free_cols = linear_assignment(cost, threshold)
    assert all(cost[r, c] <= threshold for r, c in matches)
    assert sorted([*matches[:, 0], *free_rows]) == list(range(cost.shape[0]))
    assert sorted([*matches[:, 1], *free_cols]) == list(range(cost.shape[1]))
    total = sum(cost[r, c] for r, c in matches) + threshold / 2 * (len(free_rows) + len(free_cols))
    assert total == pytest.approx(_best_by_brute_force(cost, threshold))


def test_assignment_known_answer_and_empty():
    cost = np.array([[0.1, 0.9], [0.2, 0.95], [0.99, 0.3]])
    matches, free_rows, free_cols = linear_assignment(cost, 0.5)
    assert matches.tolist() == [[0, 0], [2, 1]] and free_rows.tolist() == [1] and free_cols.tolist() == []
    matches, free_rows, free_cols = linear_assignment(np.empty((0, 3)), 0.5)
    assert matches.shape == (0, 2) and free_rows.size == 0 and free_cols.tolist() == [0, 1, 2]
