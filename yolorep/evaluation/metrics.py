"""Detection metrics that agree with pycocotools: COCO mAP, P/R at the best F1, and a confusion matrix.

``DetectionMetrics`` mirrors ``COCOeval`` for boxes at ``areaRng='all'`` and ``maxDets=100``: per image and class
the detections are ranked by score (stable on ties), cut to the top 100 and greedily matched at each IoU
threshold 0.50:0.05:0.95 to the free ground truth of highest IoU; crowd ground truth is never used up and a
detection matched to it is ignored rather than counted. Per class the matches of all images are ranked by score,
the precision envelope is sampled at 101 recall points and averaged. Classes without ground truth are left out of
the mean, as COCO leaves out its -1 entries. The internal number therefore matches pycocotools to float rounding
when both see the same boxes, and the validator can report mAP without writing JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import numpy as np
import torch
from torchvision.ops import box_iou

from yolorep.errors import DatasetError
from yolorep.ops.boxes import box_ioa

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[float]]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCOeval.params.iouThrs
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)  # COCOeval.params.recThrs
CONF_GRID = np.linspace(0.0, 1.0, 1000)  # confidence axis of the P, R and F1 curves


def _numpy(x: ArrayLike | None, dtype: type, width: int | None = None) -> np.ndarray:
    """Copy ``x`` to a numpy array of ``dtype``; ``width`` reshapes to [N, width] so empty inputs work."""
    if x is None:
        x = []
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    out = np.asarray(x, dtype=dtype)
    return out.reshape(-1, width) if width else out.reshape(-1)


def match_detections(ious: np.ndarray, gt_crowd: np.ndarray, iou_thresholds: np.ndarray) -> tuple[np.ndarray, ...]:
    """Greedy COCO matching of one image and class (``COCOeval.evaluateImg``).

    Args:
        ious: [D, G] overlap of detections (sorted by score, descending) with ground truth (non-crowd first); crowd
            columns hold intersection over detection area, as COCO's ``iou(..., iscrowd)`` does.
        gt_crowd: [G] bool, True for crowd ground truth (these come last).
        iou_thresholds: [T] thresholds.

    Returns:
        ``(matched, ignored)``, both [T, D] bool: whether each detection found a ground truth at each threshold,
        and whether that ground truth was a crowd (so the detection is neither a TP nor a FP).
    """
    num_dt, num_gt = ious.shape
    matched = np.zeros((len(iou_thresholds), num_dt), dtype=bool)
    ignored = np.zeros_like(matched)
    if num_dt == 0 or num_gt == 0:
        return matched, ignored
    num_regular = int((~gt_crowd).sum())
    taken = np.zeros((len(iou_thresholds), num_gt), dtype=bool)  # crowds are never marked: they match many
    thresholds = np.minimum(iou_thresholds, 1 - 1e-10)[:, None]  # [T, 1]
    rows = np.arange(len(iou_thresholds))
    # A detection below the lowest threshold with every ground truth matches nothing and takes nothing: most of
    # a validation's low-confidence detections. Only the others are scanned, in score order as before.
    for d in np.flatnonzero(ious.max(axis=1) >= thresholds.min()):
        # A free ground truth at or above the threshold; the highest IoU wins and, as COCO's `>=` scan does, the
        # later one on a tie. Crowds are only considered when no regular ground truth matches.
        overlap = np.where((ious[d] >= thresholds) & ~taken, ious[d], -1.0)  # [T, G]
        for lo, hi, is_crowd in ((0, num_regular, False), (num_regular, num_gt, True)):
            part = overlap[:, lo:hi][:, ::-1]
            if part.shape[1] == 0:
                continue
            best = hi - 1 - part.argmax(axis=1)  # [T], last index of the maximum
            hit = (part.max(axis=1) >= 0) & ~matched[:, d]
            matched[hit, d] = True
            ignored[hit, d] = is_crowd
            if not is_crowd:
                taken[rows[hit], best[hit]] = True
    return matched, ignored


def interpolated_precision(tp: np.ndarray, fp: np.ndarray, num_gt: int) -> np.ndarray:
    """COCO's 101-point interpolated precision of one class (``COCOeval.accumulate``).

    Args:
        tp: [T, D] bool true positives of all detections of the class, ranked by score over all images.
        fp: [T, D] bool false positives, same order.
        num_gt: number of non-crowd ground truth boxes of the class (> 0).

    Returns:
        [T, 101] precision at recall ``RECALL_THRESHOLDS``; 0 beyond the highest recall reached.
    """
    tpc = np.cumsum(tp, axis=1, dtype=float)
    fpc = np.cumsum(fp, axis=1, dtype=float)
    recall = tpc / num_gt
    precision = tpc / (tpc + fpc + np.spacing(1))
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    out = np.zeros((tp.shape[0], len(RECALL_THRESHOLDS)))
    for t in range(tp.shape[0]):
        idx = np.searchsorted(recall[t], RECALL_THRESHOLDS, side="left")
        valid = idx < tp.shape[1]
        out[t, valid] = envelope[t, idx[valid]]
    return out


def _smooth(y: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Box filter ``fraction`` of the curve wide, padding with the edge values (ultralytics' ``smooth``)."""
    width = round(len(y) * fraction * 2) // 2 + 1
    pad = np.ones(width // 2)
    return np.convolve(np.concatenate([pad * y[0], y, pad * y[-1]]), np.ones(width) / width, mode="valid")


def _confidence_curves(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at each ``CONF_GRID`` threshold for one class from its ranked IoU-0.5 matches."""
    if len(scores) == 0:
        return np.zeros_like(CONF_GRID), np.zeros_like(CONF_GRID)
    tpc = np.cumsum(tp, dtype=float)
    fpc = np.cumsum(~tp, dtype=float)
    # np.interp wants increasing x, hence the negated scores (ranked descending).
    recall = np.interp(-CONF_GRID, -scores, tpc / num_gt, left=0)
    precision = np.interp(-CONF_GRID, -scores, tpc / (tpc + fpc), left=1)
    return precision, recall


class DetectionMetrics:
    """Accumulates detections and ground truth image by image, then computes COCO-style metrics.

    Args:
        names: class names, index = class id.
        max_det: detections kept per image and class (COCO's ``maxDets``).
    """

    def __init__(self, names: Sequence[str], max_det: int = 100) -> None:
        self.names = list(names)
        self.max_det = max_det
        nc = len(self.names)
        self.num_images = 0
        self._num_gt = np.zeros(nc, dtype=np.int64)  # non-crowd instances per class
        self._num_img = np.zeros(nc, dtype=np.int64)  # images with at least one such instance
        # Per class, one entry per image that has detections of it: scores [D], tp [T, D], fp [T, D].
        self._records: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(nc)]
        self._result: dict[str, Any] | None = None
        self._curves: dict[str, np.ndarray] = {}

    def update(
        self,
        pred_boxes_xyxy: ArrayLike,
        pred_scores: ArrayLike,
        pred_classes: ArrayLike,
        gt_boxes_xyxy: ArrayLike,
        gt_classes: ArrayLike,
        gt_crowd: ArrayLike | None = None,
    ) -> None:
        """Add one image.

        Args:
            pred_boxes_xyxy: [N, 4] detections (x1, y1, x2, y2), same pixel space as the ground truth.
            pred_scores: [N] confidences.
            pred_classes: [N] class ids.
            gt_boxes_xyxy: [M, 4] ground truth (x1, y1, x2, y2).
            gt_classes: [M] class ids.
            gt_crowd: [M] bool, True for crowd regions; None means no crowds.
        """
        dt_boxes, dt_scores = _numpy(pred_boxes_xyxy, np.float64, 4), _numpy(pred_scores, np.float64)
        dt_cls, gt_boxes = _numpy(pred_classes, np.int64), _numpy(gt_boxes_xyxy, np.float64, 4)
        gt_cls = _numpy(gt_classes, np.int64)
        crowd = np.zeros(len(gt_cls), dtype=bool) if gt_crowd is None else _numpy(gt_crowd, bool)
        self._check(dt_boxes, dt_scores, dt_cls, gt_boxes, gt_cls, crowd)
        self.num_images += 1
        self._result = None
        regular = gt_cls[~crowd]
        self._num_gt += np.bincount(regular, minlength=len(self.names))
        self._num_img[np.unique(regular)] += 1
        # One overlap table per image; crowd columns use intersection over detection area, as COCO does.
        dt_t, gt_t = torch.from_numpy(dt_boxes), torch.from_numpy(gt_boxes)
        overlap = box_iou(dt_t, gt_t).numpy()  # [N, M]
        if crowd.any():
            overlap[:, crowd] = box_ioa(dt_t, gt_t[torch.from_numpy(crowd)]).numpy()
        num_t = len(IOU_THRESHOLDS)
        for c in np.unique(dt_cls):
            d_idx = np.flatnonzero(dt_cls == c)
            d_idx = d_idx[np.argsort(-dt_scores[d_idx], kind="mergesort")][: self.max_det]
            g_idx = np.flatnonzero(gt_cls == c)
            if len(g_idx) == 0:  # every detection is a false positive; most classes of most images
                fp = np.ones((num_t, len(d_idx)), dtype=bool)
                self._records[c].append((dt_scores[d_idx], np.zeros_like(fp), fp))
                continue
            g_idx = g_idx[np.argsort(crowd[g_idx], kind="mergesort")]  # crowds last, like COCO's ignore sort
            matched, ignored = match_detections(overlap[np.ix_(d_idx, g_idx)], crowd[g_idx], IOU_THRESHOLDS)
            self._records[c].append((dt_scores[d_idx], matched & ~ignored, ~matched & ~ignored))

    def _check(
        self,
        dt_boxes: np.ndarray,
        dt_scores: np.ndarray,
        dt_cls: np.ndarray,
        gt_boxes: np.ndarray,
        gt_cls: np.ndarray,
        crowd: np.ndarray,
    ) -> None:
        nc = len(self.names)
        if not len(dt_boxes) == len(dt_scores) == len(dt_cls):
            raise ValueError(
                f"DetectionMetrics.update: {len(dt_boxes)} boxes, {len(dt_scores)} scores and {len(dt_cls)} classes "
                "for the predictions; pass one score and one class per box"
            )
        if not len(gt_boxes) == len(gt_cls) == len(crowd):
            raise ValueError(
                f"DetectionMetrics.update: {len(gt_boxes)} boxes, {len(gt_cls)} classes and {len(crowd)} crowd flags "
                "for the ground truth; pass one class (and crowd flag) per box"
            )
        bad_gt = gt_cls[(gt_cls < 0) | (gt_cls >= nc)]
        if len(bad_gt):
            raise DatasetError(
                f"DetectionMetrics.update: ground truth class {int(bad_gt[0])} with {nc} class names; "
                "fix the labels or the dataset's names list"
            )
        bad_dt = dt_cls[(dt_cls < 0) | (dt_cls >= nc)]
        if len(bad_dt):
            raise ValueError(
                f"DetectionMetrics.update: predicted class {int(bad_dt[0])} with {nc} class names; "
                "the model's class count must match the dataset's"
            )

    def _class_stats(self, c: int) -> dict[str, np.ndarray]:
        """Precision table and confidence curves of one class with ground truth."""
        records = self._records[c]
        scores = np.concatenate([r[0] for r in records]) if records else np.zeros(0)
        tp = np.concatenate([r[1] for r in records], axis=1) if records else np.zeros((len(IOU_THRESHOLDS), 0), bool)
        fp = np.concatenate([r[2] for r in records], axis=1) if records else np.zeros_like(tp)
        order = np.argsort(-scores, kind="mergesort")
        scores, tp, fp = scores[order], tp[:, order], fp[:, order]
        precision = interpolated_precision(tp, fp, int(self._num_gt[c]))  # [T, 101]
        counted = tp[0] | fp[0]  # detections on crowds are neither
        p_curve, r_curve = _confidence_curves(scores[counted], tp[0, counted], int(self._num_gt[c]))
        return {"precision": precision, "p_curve": p_curve, "r_curve": r_curve}

    def compute(self) -> dict[str, Any]:
        """COCO mAP and P/R at the confidence that maximises the F1 averaged over classes.

        Returns:
            ``precision``, ``recall`` (means over classes at ``conf``), ``conf``, ``map50``, ``map75``,
            ``map50_95`` and ``per_class``: one dict per class with ground truth: ``class``, ``name``, ``images``,
            ``instances``, ``precision``, ``recall``, ``map50``, ``map50_95``. Zeros when there is no ground truth.
        """
        if self._result is not None:
            return self._result
        classes = np.flatnonzero(self._num_gt > 0)
        stats = [self._class_stats(int(c)) for c in classes]
        ap = np.array([s["precision"].mean(axis=1) for s in stats]).reshape(len(classes), len(IOU_THRESHOLDS))
        p_curve = np.array([s["p_curve"] for s in stats]).reshape(len(classes), len(CONF_GRID))
        r_curve = np.array([s["r_curve"] for s in stats]).reshape(len(classes), len(CONF_GRID))
        f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + 1e-16)
        # The raw mean-F1 curve is jagged on small validation sets; smoothing picks a stable threshold the way
        # ultralytics does, so P and R read like its reports.
        best = int(_smooth(f1_curve.mean(axis=0)).argmax()) if len(classes) else 0
        per_class = [
            {
                "class": int(c),
                "name": self.names[c],
                "images": int(self._num_img[c]),
                "instances": int(self._num_gt[c]),
                "precision": float(p_curve[k, best]),
                "recall": float(r_curve[k, best]),
                "map50": float(ap[k, 0]),
                "map50_95": float(ap[k].mean()),
            }
            for k, c in enumerate(classes)
        ]
        has_gt = len(classes) > 0
        self._result = {
            "precision": float(p_curve[:, best].mean()) if has_gt else 0.0,
            "recall": float(r_curve[:, best].mean()) if has_gt else 0.0,
            "conf": float(CONF_GRID[best]),
            "map50": float(ap[:, 0].mean()) if has_gt else 0.0,
            "map75": float(ap[:, 5].mean()) if has_gt else 0.0,
            "map50_95": float(ap.mean()) if has_gt else 0.0,
            "per_class": per_class,
        }
        pr50 = np.array([s["precision"][0] for s in stats]).reshape(len(classes), len(RECALL_THRESHOLDS))
        self._curves = {"classes": classes, "pr50": pr50, "p": p_curve, "r": r_curve, "f1": f1_curve}
        return self._result

    def pr_curve(self) -> dict[str, Any]:
        """Curve data for plotting, one row per class with ground truth.

        Returns:
            ``classes`` [K] ids, ``names`` [K], ``recall`` [101] and ``precision`` [K, 101] (COCO's interpolated
            precision at IoU 0.5), ``ap50`` [K], and against ``conf`` [1000]: ``p``, ``r``, ``f1`` [K, 1000] and
            their means over the classes, smoothed as ``compute`` smooths the F1 to choose its threshold: ``p_mean``,
            ``r_mean``, ``f1_mean`` [1000] (zeros without ground truth).
        """
        self.compute()
        curves = self._curves
        means = {
            f"{key}_mean": _smooth(curves[key].mean(axis=0)) if len(curves["classes"]) else np.zeros_like(CONF_GRID)
            for key in ("p", "r", "f1")
        }
        return {
            **means,
            "classes": curves["classes"],
            "names": [self.names[c] for c in curves["classes"]],
            "recall": RECALL_THRESHOLDS,
            "precision": curves["pr50"],
            "ap50": curves["pr50"].mean(axis=1),
            "conf": CONF_GRID,
            "p": curves["p"],
            "r": curves["r"],
            "f1": curves["f1"],
        }

    def format_table(self) -> str:
        """The per-class table the validator prints: an ``all`` row, then one row per class with ground truth."""
        result = self.compute()
        header = f"{'Class':>22}{'Images':>11}{'Instances':>11}{'P':>11}{'R':>11}{'mAP50':>11}{'mAP50-95':>11}"
        rows = [(("all", self.num_images, int(self._num_gt.sum())), result)]
        rows += [((pc["name"], pc["images"], pc["instances"]), pc) for pc in result["per_class"]]
        lines = [header]
        for (name, images, instances), r in rows:
            numbers = "".join(f"{r[k]:>11.3g}" for k in ("precision", "recall", "map50", "map50_95"))
            lines.append(f"{name:>22}{images:>11d}{instances:>11d}{numbers}")
        return "\n".join(lines)


class ConfusionMatrix:
    """Class confusion counts with a background row and column, matched class-agnostically (as ultralytics does).

    ``matrix[pred, true]``: index ``nc`` is background, so ``matrix[nc, c]`` counts missed objects of class ``c``
    and ``matrix[c, nc]`` detections of class ``c`` that match nothing.

    Args:
        nc: number of classes.
        conf: detections at or below this score are dropped.
        iou_thres: a detection and a ground truth match above this IoU.
    """

    def __init__(self, nc: int, conf: float = 0.25, iou_thres: float = 0.45) -> None:
        self.nc = nc
        self.conf = conf
        self.iou_thres = iou_thres
        self.matrix = np.zeros((nc + 1, nc + 1), dtype=np.int64)

    def update(
        self,
        pred_boxes_xyxy: ArrayLike,
        pred_scores: ArrayLike,
        pred_classes: ArrayLike,
        gt_boxes_xyxy: ArrayLike,
        gt_classes: ArrayLike,
    ) -> None:
        """Add one image; arguments as in ``DetectionMetrics.update`` (crowd regions should be left out)."""
        keep = _numpy(pred_scores, np.float64) > self.conf
        dt_boxes, dt_cls = _numpy(pred_boxes_xyxy, np.float64, 4)[keep], _numpy(pred_classes, np.int64)[keep]
        gt_boxes, gt_cls = _numpy(gt_boxes_xyxy, np.float64, 4), _numpy(gt_classes, np.int64)
        iou = box_iou(torch.from_numpy(gt_boxes), torch.from_numpy(dt_boxes)).numpy()  # [M, N]
        gt_idx, dt_idx = np.nonzero(iou > self.iou_thres)
        pairs = np.stack([gt_idx, dt_idx, iou[gt_idx, dt_idx]], axis=1)  # [P, 3]
        # One-to-one by decreasing IoU: keep each detection's best pair, then each ground truth's best pair.
        pairs = pairs[np.argsort(-pairs[:, 2], kind="mergesort")]
        pairs = pairs[np.unique(pairs[:, 1], return_index=True)[1]]
        pairs = pairs[np.argsort(-pairs[:, 2], kind="mergesort")]
        pairs = pairs[np.unique(pairs[:, 0], return_index=True)[1]]
        gt_m, dt_m = pairs[:, 0].astype(int), pairs[:, 1].astype(int)
        np.add.at(self.matrix, (dt_cls[dt_m], gt_cls[gt_m]), 1)
        missed = np.setdiff1d(np.arange(len(gt_cls)), gt_m)
        np.add.at(self.matrix, (self.nc, gt_cls[missed]), 1)
        unmatched = np.setdiff1d(np.arange(len(dt_cls)), dt_m)
        np.add.at(self.matrix, (dt_cls[unmatched], self.nc), 1)
