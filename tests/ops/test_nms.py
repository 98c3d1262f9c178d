from __future__ import annotations

import pytest
import torch
import torchvision.ops as torchvision_ops

from yolorep.ops import nms as nms_module
from yolorep.ops import non_max_suppression


def _preds(rows: list[tuple[list[float], list[float]]]) -> torch.Tensor:
    """[1, N, 4 + nc] from (box_xyxy, class_scores) rows."""
    return torch.tensor([[box + scores for box, scores in rows]])


# A and A2 overlap with IoU 0.9; B overlaps neither.
A, A2, B = [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 9.0], [50.0, 50.0, 60.0, 60.0]


def test_suppresses_overlapping_boxes_of_one_class() -> None:
    out = non_max_suppression(_preds([(A, [0.9, 0.0]), (A2, [0.8, 0.0]), (B, [0.7, 0.0])]), iou_thres=0.5)[0]
    assert out.shape == (2, 6)
    assert out[:, 4].tolist() == pytest.approx([0.9, 0.7])
    assert out[0, :4].tolist() == A and out[:, 5].tolist() == [0.0, 0.0]


def test_keeps_overlapping_boxes_of_different_classes_unless_agnostic() -> None:
    preds = _preds([(A, [0.9, 0.0]), (A2, [0.0, 0.8])])
    assert len(non_max_suppression(preds, iou_thres=0.5)[0]) == 2
    out = non_max_suppression(preds, iou_thres=0.5, agnostic=True)[0]
    assert out[:, 4:].tolist() == [pytest.approx([0.9, 0.0])]


def test_conf_classes_and_max_det() -> None:
    preds = _preds([(A, [0.9, 0.0]), (B, [0.0, 0.3]), ([100.0, 100.0, 110.0, 110.0], [0.2, 0.0])])
    assert len(non_max_suppression(preds, conf_thres=0.25)[0]) == 2
    assert non_max_suppression(preds, classes=[1])[0][:, 5].tolist() == [1.0]
    out = non_max_suppression(preds, max_det=1)[0]
    assert out.shape == (1, 6) and out[0, 4].item() == pytest.approx(0.9)
    assert non_max_suppression(preds, max_det=0)[0].shape == (0, 6)


def test_multi_label_emits_each_class_above_conf() -> None:
    preds = _preds([(A, [0.9, 0.6]), (B, [0.05, 0.0])])
    single = non_max_suppression(preds, conf_thres=0.1)[0]
    multi = non_max_suppression(preds, conf_thres=0.1, multi_label=True)[0]
    assert single[:, 5].tolist() == [0.0]
    assert multi[:, 5].tolist() == [0.0, 1.0] and multi[:, 4].tolist() == pytest.approx([0.9, 0.6])


def test_batch_empty_and_fp16() -> None:
    preds = torch.cat([_preds([(A, [0.9, 0.0])]), _preds([(B, [0.0, 0.0])])]).half()
    out = non_max_suppression(preds, conf_thres=0.25)
    assert [o.shape for o in out] == [(1, 6), (0, 6)]
    assert out[0].dtype == torch.float32


def test_max_candidates_bounds_work() -> None:
    boxes = torch.rand(1, 500, 2) * 600
    preds = torch.cat([boxes, boxes + 20, torch.rand(1, 500, 3)], dim=2)
    out = non_max_suppression(preds, max_candidates=50)[0]
    assert 0 < len(out) <= 50


def test_rejects_bad_thresholds() -> None:
    with pytest.raises(ValueError, match="iou_thres"):
        non_max_suppression(torch.zeros(1, 1, 6), iou_thres=1.5)


def _crowded_preds(n: int, nc: int, seed: int) -> torch.Tensor:
    """An undertrained model's output: n overlapping boxes, every class scored above 0.001, many exact ties."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(n, 2, generator=g) * 200
    sides = 8 + torch.rand(n, 2, generator=g) * 30
    scores = torch.randint(1, 400, (n, nc), generator=g).float() / 400  # quantized: ties everywhere
    return torch.cat([centers - sides / 2, centers + sides / 2, scores], dim=1)[None]


@pytest.mark.parametrize(("agnostic", "multi_label"), [(False, True), (False, False), (True, False)])
@pytest.mark.parametrize("max_det", [300, 40])
def test_nms_over_the_top_scores_keeps_exactly_what_nms_over_all_keeps(monkeypatch, agnostic, multi_label, max_det):
    preds = _crowded_preds(2000, 6, seed=max_det)
    sizes = []
    greedy = nms_module._greedy_nms

    def counted(boxes, *args):
        sizes.append(len(boxes))
        return greedy(boxes, *args)

    monkeypatch.setattr(nms_module, "_greedy_nms", counted)
    fast = non_max_suppression(preds, max_det=max_det, agnostic=agnostic, multi_label=multi_label)[0]
    assert len(fast) == max_det and sizes == [sizes[0]] and sizes[0] < 2000  # the prefix alone sufficed
    monkeypatch.setattr(nms_module, "PREFIX_PER_DETECTION", 10**9)
    full = non_max_suppression(preds, max_det=max_det, agnostic=agnostic, multi_label=multi_label)[0]
    assert torch.equal(fast, full)
    scores = full[:, 4]
    assert bool((scores[:-1] >= scores[1:]).all())


def test_nms_falls_back_to_all_boxes_when_the_top_scores_keep_too_few(monkeypatch):
    box = torch.tensor([10.0, 10.0, 50.0, 50.0])
    jitter = torch.rand(3000, 4, generator=torch.Generator().manual_seed(0))
    scores = torch.linspace(0.9, 0.01, 3000)[:, None]
    scores[-5:] = 0.005  # five low-scoring boxes elsewhere: kept only by NMS over all boxes
    boxes = box + jitter
    boxes[-5:] += torch.arange(1, 6)[:, None] * 100.0
    preds = torch.cat([boxes, scores], dim=1)[None]
    out = non_max_suppression(preds, max_det=300)[0]
    monkeypatch.setattr(nms_module, "PREFIX_PER_DETECTION", 10**9)
    assert len(out) == 6 and torch.equal(out, non_max_suppression(preds, max_det=300)[0])


@pytest.mark.parametrize(("agnostic", "multi_label"), [(False, True), (True, False)])
def test_equal_scores_keep_the_same_boxes_whatever_order_the_kernel_sorts_them_in(monkeypatch, agnostic, multi_label):
    """torchvision's CUDA kernel orders equal scores unpredictably; emulated here by kernels that see the boxes
    in reverse, so that of two equal scores the later box comes first."""
    preds = _crowded_preds(3000, 4, seed=3)  # quantized scores: many exact ties, also at the candidate cut
    kwargs = dict(max_det=300, agnostic=agnostic, multi_label=multi_label, max_candidates=1000)
    expected = non_max_suppression(preds, **kwargs)[0]

    def reversed_nms(boxes, scores, iou):
        flip = torch.arange(len(boxes) - 1, -1, -1)
        return flip[torchvision_ops.nms(boxes[flip], scores[flip], iou)]

    def reversed_batched_nms(boxes, scores, labels, iou):
        flip = torch.arange(len(boxes) - 1, -1, -1)
        return flip[torchvision_ops.batched_nms(boxes[flip], scores[flip], labels[flip], iou)]

    monkeypatch.setattr(nms_module, "nms", reversed_nms)
    monkeypatch.setattr(nms_module, "batched_nms", reversed_batched_nms)
    assert torch.equal(non_max_suppression(preds, **kwargs)[0], expected)
    monkeypatch.setattr(nms_module, "PREFIX_PER_DETECTION", 10**9)
    assert torch.equal(non_max_suppression(preds, **kwargs)[0], expected)


def test_the_candidate_cut_keeps_the_earliest_of_equal_scores():
    scores = torch.tensor([0.5, 0.9, 0.5, 0.7, 0.5, 0.5, 0.9])
    assert nms_module._top_candidates(scores, 4).nonzero().flatten().tolist() == [0, 1, 3, 6]
    assert nms_module._top_candidates(scores, 6).nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 6]
