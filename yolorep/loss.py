"""Detection loss: task-aligned assignment (TOOD, Feng et al. 2021, as in YOLOv6/YOLOv8), CIoU box loss,
distribution focal loss (DFL, Li et al. 2020) and BCE class loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_iou, complete_box_iou_loss

from yolorep.ops.decode import box_distances, flatten_maps, make_anchor_points

__all__ = ["DetectionLoss", "TaskAlignedAssigner"]


class TaskAlignedAssigner:
    """Assign to each ground truth the ``topk`` anchor points, inside it, with the best alignment
    ``score ** alpha * iou ** beta``; an anchor claimed by several boxes keeps the one it overlaps most."""

    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0, eps: float = 1e-9) -> None:
        self.topk, self.alpha, self.beta, self.eps = topk, alpha, beta, eps

    @torch.no_grad()
    def __call__(
        self,
        pred_scores: Tensor,
        pred_boxes: Tensor,
        points: Tensor,
        gt_labels: Tensor,
        gt_boxes: Tensor,
        gt_mask: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Args:
            pred_scores: [B, N, C] probabilities. pred_boxes: [B, N, 4] xyxy pixels. points: [N, 2] pixels.
            gt_labels: [B, G] int64. gt_boxes: [B, G, 4] xyxy pixels. gt_mask: [B, G] bool (padding is False).

        Returns:
            target_boxes [B, N, 4] xyxy pixels, target_scores [B, N, C] (IoU-normalised alignment on the assigned
            class, 0 elsewhere), fg_mask [B, N] bool.
        """
        batch, n_points, n_classes = pred_scores.shape
        n_gt = gt_boxes.shape[1]
        if n_gt == 0:
            return (
                pred_boxes.new_zeros(pred_boxes.shape),
                pred_scores.new_zeros(pred_scores.shape),
                pred_scores.new_zeros((batch, n_points), dtype=torch.bool),
            )
        deltas = torch.cat(
            (points[None, None] - gt_boxes[:, :, None, :2], gt_boxes[:, :, None, 2:] - points[None, None]), -1
        )
        candidates = (deltas.amin(-1) > self.eps) & gt_mask[..., None]  # [B, G, N]
        overlaps = torch.stack([box_iou(g, p) for g, p in zip(gt_boxes, pred_boxes)]).clamp_(0) * candidates
        class_scores = pred_scores.transpose(1, 2).gather(1, gt_labels[..., None].expand(-1, -1, n_points))
        alignment = class_scores.pow(self.alpha) * overlaps.pow(self.beta) * candidates  # [B, G, N]

        top = alignment.topk(min(self.topk, n_points), dim=-1).indices
        selected = torch.zeros_like(alignment, dtype=torch.bool).scatter_(-1, top, True) & candidates
        claimed = selected.sum(1, keepdim=True)  # [B, 1, N]
        best = F.one_hot(overlaps.argmax(1), n_gt).transpose(1, 2).bool()  # [B, G, N]
        selected = torch.where(claimed > 1, best, selected)
        fg_mask = selected.any(1)
        gt_index = selected.float().argmax(1)  # [B, N]

        target_labels = gt_labels.gather(1, gt_index)
        target_boxes = gt_boxes.gather(1, gt_index[..., None].expand(-1, -1, 4))
        alignment = alignment * selected
        best_alignment = alignment.amax(-1, keepdim=True)
        best_overlap = (overlaps * selected).amax(-1, keepdim=True)
        normalised = (alignment * best_overlap / (best_alignment + self.eps)).amax(1)  # [B, N]
        target_scores = F.one_hot(target_labels, n_classes).to(pred_scores.dtype) * (normalised * fg_mask)[..., None]
        return target_boxes, target_scores, fg_mask


class DetectionLoss(nn.Module):
    """Loss of the detection head's raw maps against pixel-space targets.

    Built from plain numbers (the class count, DFL bins, loss gains and assigner size), it holds no reference to
    the model: the caller passes the maps and their strides. Call with ``maps``: list of
    [B, 4 * reg_max + nc, H_i, W_i], ``strides``: [levels] pixels per cell, and ``targets``: [M, 6] rows
    ``(batch_index, cls, x1, y1, x2, y2)`` in input pixels. Returns ``(total, items)``: the weighted sum times the
    batch size (so gradients do not shrink with smaller batches under a fixed learning rate) and the detached
    per-term losses [3] ``(box, cls, dfl)``.

    Args:
        nc: number of classes.
        reg_max: DFL bins per box side; 0 for a head that predicts the distances themselves (no DFL term).
        box, cls, dfl: gains of the CIoU box loss, the BCE class loss and the DFL loss.
        topk: candidate anchors per ground-truth box in the task-aligned assigner.
    """

    def __init__(self, nc: int, reg_max: int, *, box: float, cls: float, dfl: float, topk: int) -> None:
        super().__init__()
        self.nc, self.reg_max = nc, reg_max
        self.gains = {"box": float(box), "cls": float(cls), "dfl": float(dfl)}
        self.assigner = TaskAlignedAssigner(topk=int(topk))

    @classmethod
    def from_hyp(cls, nc: int, reg_max: int, hyp: dict[str, Any]) -> DetectionLoss:
        """The loss with the gains and assigner size of a hyperparameter dict (``yolorep.options.load_hyp()``)."""
        return cls(nc, reg_max, box=hyp["box"], cls=hyp["cls"], dfl=hyp["dfl"], topk=hyp["assign_topk"])

    def forward(self, maps: list[Tensor], strides: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        reg_max, batch = self.reg_max, maps[0].shape[0]
        box_logits, cls_logits = flatten_maps([m.float() for m in maps], reg_max)  # [B, 4, reg_max, N], [B, nc, N]
        cls_logits = cls_logits.transpose(1, 2)  # [B, N, nc]
        points, point_strides = make_anchor_points([m.shape[2:] for m in maps], strides.float().to(cls_logits.device))
        distances = box_distances(box_logits, reg_max).transpose(1, 2)  # [B, N, 4] grid units
        pred_boxes = torch.cat((points - distances[..., :2], points + distances[..., 2:]), -1)  # [B, N, 4] grid units

        gt_labels, gt_boxes, gt_mask = self._pad_targets(targets.to(cls_logits.device, torch.float32), batch)
        target_boxes, target_scores, fg_mask = self.assigner(
            cls_logits.detach().sigmoid(),
            pred_boxes.detach() * point_strides,
            points * point_strides,
            gt_labels,
            gt_boxes,
            gt_mask,
        )
        score_sum = target_scores.sum().clamp_min(1.0)
        loss_cls = F.binary_cross_entropy_with_logits(cls_logits, target_scores, reduction="sum") / score_sum
        loss_box = loss_dfl = cls_logits.new_zeros(())
        if fg_mask.any():
            weight = target_scores.sum(-1)[fg_mask]  # [P]
            target_grid = (target_boxes / point_strides)[fg_mask]  # [P, 4]
            loss_box = (complete_box_iou_loss(pred_boxes[fg_mask], target_grid, reduction="none") * weight).sum()
            loss_box = loss_box / score_sum
            if reg_max > 0:
                anchor = points.expand(batch, -1, -1)[fg_mask]
                target_ltrb = torch.cat((anchor - target_grid[:, :2], target_grid[:, 2:] - anchor), -1)
                bins = box_logits.permute(0, 3, 1, 2)[fg_mask]  # [P, 4, reg_max]
                loss_dfl = (self._dfl(bins, target_ltrb.clamp(0, reg_max - 1.01)) * weight).sum() / score_sum
        items = torch.stack((loss_box * self.gains["box"], loss_cls * self.gains["cls"], loss_dfl * self.gains["dfl"]))
        return items.sum() * batch, items.detach()

    @staticmethod
    def _dfl(bins: Tensor, target: Tensor) -> Tensor:
        """Distribution focal loss: cross-entropy to the two bins around each continuous target, weighted by
        proximity. bins [P, 4, reg_max] logits, target [P, 4] in bin units -> [P]."""
        left = target.long()
        right_weight = target - left
        logits = bins.reshape(-1, bins.shape[-1])
        loss = F.cross_entropy(logits, left.view(-1), reduction="none") * (1 - right_weight).view(-1)
        loss = loss + F.cross_entropy(logits, (left + 1).view(-1), reduction="none") * right_weight.view(-1)
        return loss.view(-1, 4).mean(-1)

    @staticmethod
    def _pad_targets(targets: Tensor, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        """[M, 6] rows -> labels [B, G] int64, boxes [B, G, 4], mask [B, G] with G the most boxes in one image."""
        image_index = targets[:, 0].long()
        counts = torch.bincount(image_index, minlength=batch) if len(targets) else targets.new_zeros(batch).long()
        n_max = int(counts.max()) if len(targets) else 0
        labels = targets.new_zeros((batch, n_max), dtype=torch.long)
        boxes = targets.new_zeros((batch, n_max, 4))
        mask = torch.zeros((batch, n_max), dtype=torch.bool, device=targets.device)
        if n_max:
            order = torch.argsort(image_index, stable=True)
            sorted_index = image_index[order]
            slot = (
                torch.arange(len(targets), device=targets.device)
                - torch.cumsum(counts, 0)[sorted_index]
                + counts[sorted_index]
            )
            labels[sorted_index, slot] = targets[order, 1].long()
            boxes[sorted_index, slot] = targets[order, 2:6].float()
            mask[sorted_index, slot] = True
        return labels, boxes, mask
