"""Non-maximum suppression over the detector's decoded output."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import batched_nms, nms


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
        sorted by score, descending.
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
        top = scores.topk(max_candidates).indices
        boxes_xyxy, scores, labels = boxes_xyxy[top], scores[top], labels[top]
    if agnostic:
        keep = nms(boxes_xyxy, scores, iou_thres)
    else:
        keep = batched_nms(boxes_xyxy, scores, labels, iou_thres)
    keep = keep[:max_det]  # torchvision returns indices sorted by decreasing score
    return torch.cat([boxes_xyxy[keep], scores[keep, None], labels[keep, None].float()], dim=1)
