"""COCO-format ground truth and predictions, scored by pycocotools (the number of record).

pycocotools is imported inside the functions that use it so that importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from yolorep.errors import DatasetError

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[float]]

# Contiguous class index of the 80 COCO detection classes (YOLO label files) -> COCO category id (1..90, gaps).
COCO80_TO_91 = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34,
    35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
    64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
]  # fmt: skip

# Names of COCOeval.stats, in order.
STAT_NAMES = (
    "map50_95", "map50", "map75", "map_small", "map_medium", "map_large",
    "mar1", "mar10", "mar100", "mar_small", "mar_medium", "mar_large",
)  # fmt: skip


def _ltwh_rows(boxes_xyxy: ArrayLike) -> np.ndarray:
    """[N, 4] xyxy -> [N, 4] float64 (x, y, w, h)."""
    if isinstance(boxes_xyxy, torch.Tensor):
        boxes_xyxy = boxes_xyxy.detach().cpu().numpy()
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def _ints(x: ArrayLike) -> list[int]:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return [int(v) for v in np.asarray(x).reshape(-1)]


def build_coco_gt(
    images: Sequence[dict[str, Any]],
    annotations: Sequence[tuple[ArrayLike, ...]],
    category_ids: Sequence[int],
    names: Sequence[str],
) -> dict[str, Any]:
    """Build a COCO ground-truth dict, so that exactly the ground truth a loader accepted is scored by pycocotools.

    Args:
        images: one dict per image with ``id``, ``file_name``, ``width``, ``height``.
        annotations: per image, in the order of ``images``: ``(boxes_xyxy [M, 4] original pixels, classes [M])``
            with contiguous class indices, optionally followed by ``areas [M]`` (COCO's object areas, which sort
            objects into small/medium/large; default the box areas) and ``iscrowd [M]`` (default 0).
        category_ids: COCO category id of each contiguous class (``COCO80_TO_91`` for COCO in YOLO layout,
            ``range(1, nc + 1)`` otherwise).
        names: class names, index = contiguous class.

    Returns:
        ``{"info", "images", "annotations", "categories"}`` with ``bbox`` as [x, y, w, h] and annotation ids from 1
        (COCOeval treats id 0 as "no match").
    """
    if len(images) != len(annotations):
        raise ValueError(
            f"build_coco_gt: {len(images)} images but {len(annotations)} annotation entries; pass one each"
        )
    if len(category_ids) != len(names):
        raise ValueError(f"build_coco_gt: {len(category_ids)} category ids for {len(names)} names; pass one per class")
    anns = []
    for image, (boxes_xyxy, classes, *extra) in zip(images, annotations):
        ltwh = _ltwh_rows(boxes_xyxy)
        areas = np.asarray(extra[0], dtype=np.float64).reshape(-1) if extra else ltwh[:, 2] * ltwh[:, 3]
        crowd = _ints(extra[1]) if len(extra) > 1 else [0] * len(ltwh)
        for (x, y, w, h), c, area, iscrowd in zip(ltwh.tolist(), _ints(classes), areas.tolist(), crowd):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image["id"],
                    "category_id": int(category_ids[c]),
                    "bbox": [x, y, w, h],
                    "area": area,
                    "iscrowd": iscrowd,
                }
            )
    return {
        "info": {"description": "yolorep ground truth"},
        "images": [{k: image[k] for k in ("id", "file_name", "width", "height")} for image in images],
        "annotations": anns,
        "categories": [{"id": int(i), "name": n, "supercategory": ""} for i, n in zip(category_ids, names)],
    }


def predictions_to_coco(
    image_id: int | str,
    boxes_xyxy: ArrayLike,
    scores: ArrayLike,
    classes: ArrayLike,
    category_ids: Sequence[int],
) -> list[dict[str, Any]]:
    """Detections of one image as COCO result dicts.

    Args:
        image_id: the image's id in the ground truth.
        boxes_xyxy: [N, 4] (x1, y1, x2, y2), original-image pixels.
        scores: [N] confidences.
        classes: [N] contiguous class indices.
        category_ids: COCO category id of each contiguous class.

    Returns:
        ``{"image_id", "category_id", "bbox": [x, y, w, h] (3 decimals), "score"}`` per detection. Scores keep 9
        significant digits (a float32 round-trips): rounding them coarser creates ties that COCOeval breaks
        differently from the model's own ranking, which changes AP for low-confidence detections.
    """
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    score_list = np.asarray(scores, dtype=np.float64).reshape(-1).tolist()
    return [
        {
            "image_id": image_id,
            "category_id": int(category_ids[c]),
            "bbox": [round(v, 3) for v in box],
            "score": float(f"{s:.9g}"),
        }
        for box, s, c in zip(_ltwh_rows(boxes_xyxy).tolist(), score_list, _ints(classes))
    ]


def _load_json(source: dict | list | str | Path, what: str) -> Any:
    if not isinstance(source, (str, Path)):
        return source
    path = Path(source)
    if not path.is_file():
        raise DatasetError(f"{path}: {what} file not found; check the path (COCO annotations are JSON)")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e}); pass a COCO {what} file") from e


def has_pycocotools() -> bool:
    """True when pycocotools can be imported (a dependency of yolorep, missing only from hand-made environments)."""
    try:
        import pycocotools.cocoeval  # noqa: F401
    except ImportError:
        return False
    return True


def evaluate_coco(
    gt: dict[str, Any] | str | Path,
    predictions: list[dict[str, Any]] | str | Path,
    image_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Score box predictions with pycocotools' ``COCOeval``.

    Args:
        gt: a COCO ground-truth dict (``build_coco_gt``) or the path of its JSON file.
        predictions: COCO result dicts (``predictions_to_coco``) or the path of their JSON file.
        image_ids: evaluate only these images; None evaluates every ground-truth image.

    Returns:
        The 12 ``COCOeval.stats`` by name (``map50_95``, ``map50``, ``map75``, ``map_small``, ..., ``mar100``,
        ...), ``stats`` as a list, and ``summary``: the text ``COCOeval.summarize`` prints. All zeros when there are
        no predictions.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_dict = _load_json(gt, "ground truth")
    where = gt if isinstance(gt, (str, Path)) else "evaluate_coco"
    missing = [k for k in ("images", "annotations", "categories") if k not in gt_dict]
    if missing:
        raise DatasetError(f"{where}: ground truth lacks {missing}; a COCO file has images, annotations, categories")
    # pycocotools adds keys to every annotation and result dict; copies keep the caller's data unchanged. It also
    # needs `iscrowd` and `area`, which hand-made files often leave out.
    anns = [{"iscrowd": 0, "area": a["bbox"][2] * a["bbox"][3], **a} for a in gt_dict["annotations"]]
    gt_dict = {**gt_dict, "annotations": anns}
    dts = [dict(d) for d in _load_json(predictions, "predictions")]
    if image_ids is not None:
        wanted = set(image_ids)
        dts = [d for d in dts if d["image_id"] in wanted]
    if not dts:
        return {**dict.fromkeys(STAT_NAMES, 0.0), "stats": [0.0] * len(STAT_NAMES), "summary": "no predictions"}
    unknown = {d["image_id"] for d in dts} - {img["id"] for img in gt_dict["images"]}
    if unknown:
        raise DatasetError(
            f"evaluate_coco: predictions name image ids missing from the ground truth, e.g. {sorted(unknown)[:5]}; "
            "use the ids of the ground-truth images"
        )

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress we do not want
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dts)
        coco_eval = COCOeval(coco_gt, coco_dt, iouType="bbox")
        if image_ids is not None:
            coco_eval.params.imgIds = list(image_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        coco_eval.summarize()
    stats = [float(v) for v in coco_eval.stats]
    return {**dict(zip(STAT_NAMES, stats)), "stats": stats, "summary": summary.getvalue().rstrip()}
