"""Non-maximum suppression over the detector's decoded output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchvision.ops import batched_nms, nms

# NMS first runs over this many candidates per detection wanted (max_det), highest scores first
PREFIX_PER_DETECTION = 4


@dataclass(frozen=True)
class NMSSettings:
    """The NMS settings evaluation runs with: score threshold, IoU threshold, detections kept per image, and
    whether boxes of different classes suppress each other."""

    conf: float
    iou: float
    max_det: int
    agnostic: bool = False


def non_max_suppression(
    preds: torch.Tensor,
    conf_thres: float = 0.001,
    iou_thres: float = 0.7,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
    agnostic: bool = False,
    multi_label: bool = False,
    max_candidates: int = 30000,
) -> list[torch.Tensor]:
    """Filter decoded predictions by score and suppress overlapping boxes, per image.

    Args:
        preds: [B, N, 4 + nc] eval output of the model: boxes (x1, y1, x2, y2) in input pixels, then per-class
            sigmoid scores. Any float dtype, any device.
        conf_thres: keep class scores strictly above this.
        iou_thres: suppress a box whose IoU with a higher-scoring kept box of the same class exceeds this.
        max_det: keep at most this many detections per image, highest scores first.
        classes: keep only these class indices; None keeps all.
        agnostic: suppress across classes, as if every box had the same class.
        multi_label: emit a box once for every class scoring above ``conf_thres`` instead of only its best class.
            COCO-style mAP at a low threshold wants this: a box that is unsure between two classes still scores
            for the right one.
        max_candidates: before NMS, keep at most this many highest-scoring candidates per image, which bounds
            NMS time for an untrained model that scores everything above ``conf_thres``.

    Returns:
        One float32 tensor [M, 6] per image on the device of ``preds``, rows (x1, y1, x2, y2, score, class),
        sorted by score, descending. Of equal scores the box earlier in ``preds`` ranks higher, both in the
        order and in which of two overlapping boxes is kept, so the detections are the same on every device
        (torchvision's kernels leave that order to an unstable sort).
    """
    if not 0.0 <= conf_thres <= 1.0:
        raise ValueError(f"non_max_suppression: conf_thres={conf_thres} is out of range; use a value in [0, 1]")
    if not 0.0 <= iou_thres <= 1.0:
        raise ValueError(f"non_max_suppression: iou_thres={iou_thres} is out of range; use a value in [0, 1]")
    if preds.ndim != 3 or preds.shape[-1] < 5:
        raise ValueError(f"non_max_suppression: preds has shape {tuple(preds.shape)}; expected [B, N, 4 + nc]")
    # NMS kernels and score comparisons in fp16 lose ties and overflow on large coordinates.
    preds = preds.float()
    wanted = None if classes is None else torch.as_tensor(list(classes), device=preds.device)
    return [_suppress(x, conf_thres, iou_thres, max_det, wanted, agnostic, multi_label, max_candidates) for x in preds]


def _suppress(
    x: torch.Tensor,
    conf_thres: float,
    iou_thres: float,
    max_det: int,
    wanted: torch.Tensor | None,
    agnostic: bool,
    multi_label: bool,
    max_candidates: int,
) -> torch.Tensor:
    """NMS for one image; ``x`` is [N, 4 + nc] float32, the result [M, 6]."""
    boxes_xyxy, cls_scores = x[:, :4], x[:, 4:]
    if multi_label:
        box_idx, labels = (cls_scores > conf_thres).nonzero(as_tuple=True)
        boxes_xyxy, scores = boxes_xyxy[box_idx], cls_scores[box_idx, labels]
    else:
        scores, labels = cls_scores.max(dim=1)
        keep = scores > conf_thres
        boxes_xyxy, scores, labels = boxes_xyxy[keep], scores[keep], labels[keep]
    if wanted is not None:
        keep = (labels[:, None] == wanted[None, :]).any(dim=1)
        boxes_xyxy, scores, labels = boxes_xyxy[keep], scores[keep], labels[keep]
    if scores.numel() > max_candidates:
        top = _top_candidates(scores, max_candidates)
        boxes_xyxy, scores, labels = boxes_xyxy[top], scores[top], labels[top]
    keep = _greedy_nms_first(boxes_xyxy, scores, labels if not agnostic else None, iou_thres, max_det)
    return torch.cat([boxes_xyxy[keep], scores[keep, None], labels[keep, None].float()], dim=1)


def _top_candidates(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the ``k`` highest ``scores`` [N]; of those tying with the k-th, the lowest indices (``topk`` leaves
    that choice to the kernel, which differs between devices)."""
    floor = scores.topk(k).values[-1]
    above, tied = scores > floor, scores == floor
    return above | (tied & (tied.cumsum(0) <= k - above.sum()))


def _greedy_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor | None, iou_thres: float
) -> torch.Tensor:
    """Kept indices by decreasing score; of equal scores the lower index ranks higher, on every device.

    torchvision's kernels order boxes by an unstable sort of the scores; on CUDA the order of equal scores varies,
    and with it which of two overlapping boxes of equal score is kept. The kernels are therefore given distinct
    ranks instead of the scores: the candidates numbered n..1 in a stable descending sort of the scores.
    """
    order = scores.sort(descending=True, stable=True).indices
    ranks = torch.arange(len(order), 0, -1, device=boxes.device, dtype=boxes.dtype)
    boxes = boxes[order]
    keep = nms(boxes, ranks, iou_thres) if labels is None else batched_nms(boxes, ranks, labels[order], iou_thres)
    return order[keep]  # kernels return kept boxes by decreasing rank


def _greedy_nms_first(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor | None, iou_thres: float, max_det: int
) -> torch.Tensor:
    """The first ``max_det`` indices greedy NMS keeps, by decreasing score; exactly those of NMS over all boxes.

    Greedy NMS decides each box from the higher-scoring boxes alone, so NMS over the highest-scoring boxes keeps
    the same boxes among them as NMS over all. When that prefix already yields ``max_det`` kept boxes, no box
    outside it can rank among the first ``max_det``; an undertrained model that scores thousands of boxes above
    ``conf_thres`` then costs a few hundred boxes' NMS instead of thousands' (quadratic in the count).
    """
    prefix_size = PREFIX_PER_DETECTION * max_det
    if 0 < prefix_size < scores.numel():
        # every box scoring as high as the prefix's last one, so that ties at the boundary are all inside
        floor = scores.topk(prefix_size).values[-1]
        prefix = (scores >= floor).nonzero(as_tuple=True)[0]
        if prefix.numel() < scores.numel():
            kept = _greedy_nms(boxes[prefix], scores[prefix], None if labels is None else labels[prefix], iou_thres)
            if kept.numel() >= max_det:
                return prefix[kept[:max_det]]
    return _greedy_nms(boxes, scores, labels, iou_thres)[:max_det]
