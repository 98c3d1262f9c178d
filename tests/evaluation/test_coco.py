"""pycocotools is the number of record: the internal metrics must agree with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from yolorep.errors import DatasetError
from yolorep.evaluation.coco import COCO80_TO_91, build_coco_gt, evaluate_coco, predictions_to_coco
from yolorep.evaluation.metrics import DetectionMetrics

NAMES = ["person", "car", "dog", "zebra"]
CATEGORY_IDS = [1, 3, 7, 90]  # non-contiguous on purpose
W, H = 640, 480


def _synthetic(seed: int, num_images: int = 50, crowd_p: float = 0.0, clutter: int = 0) -> dict:
    """Ground truth and imperfect predictions: jittered boxes, duplicates, wrong classes, misses, strays.

    ``clutter`` adds that many extra low-overlap detections of class 0 to every image, to push past maxDets=100.
    """
    rng = np.random.default_rng(seed)
    data = {"images": [], "gt": [], "crowd": [], "pred": []}
    for i in range(num_images):
        m = int(rng.integers(0, 9))
        xy = rng.uniform(0, [W - 60, H - 60], (m, 2))
        gt_boxes = np.concatenate([xy, np.minimum(xy + rng.uniform(8, 200, (m, 2)), [W, H])], axis=1)
        gt_classes = rng.integers(0, len(NAMES), m)
        boxes, classes = [], []
        for box, c in zip(gt_boxes, gt_classes):
            if rng.random() > 0.85:  # missed
                continue
            size = np.tile(box[2:] - box[:2], 2)
            for _ in range(1 + int(rng.random() < 0.3)):  # sometimes a duplicate
                boxes.append(box + rng.normal(0, 0.08, 4) * size)
                classes.append(c if rng.random() < 0.9 else rng.integers(0, len(NAMES)))
        for _ in range(int(rng.integers(0, 4)) + clutter):  # false positives anywhere
            corner = rng.uniform(0, [W - 60, H - 60])
            boxes.append(np.r_[corner, corner + rng.uniform(8, 150, 2)])
            classes.append(0 if clutter else rng.integers(0, len(NAMES)))
        boxes = np.array(boxes).reshape(-1, 4)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        data["images"].append({"id": i + 1, "file_name": f"{i:06d}.jpg", "width": W, "height": H})
        data["gt"].append((gt_boxes, gt_classes))
        data["crowd"].append(rng.random(m) < crowd_p)
        data["pred"].append((boxes, rng.random(len(boxes)), np.array(classes, dtype=np.int64)))
    return data


def _score_both(data: dict) -> tuple[dict, dict]:
    metrics = DetectionMetrics(NAMES)
    results = []
    for image, (gt_boxes, gt_classes), crowd, (boxes, scores, classes) in zip(
        data["images"], data["gt"], data["crowd"], data["pred"]
    ):
        metrics.update(torch.from_numpy(boxes), torch.from_numpy(scores), classes, gt_boxes, gt_classes, crowd)
        results += predictions_to_coco(image["id"], boxes, scores, classes, CATEGORY_IDS)
    gt = build_coco_gt(data["images"], data["gt"], CATEGORY_IDS, NAMES)
    for ann, is_crowd in zip(gt["annotations"], np.concatenate(data["crowd"])):
        ann["iscrowd"] = int(is_crowd)
    return metrics.compute(), evaluate_coco(gt, results)


def test_coco80_to_91() -> None:
    assert len(COCO80_TO_91) == 80 and len(set(COCO80_TO_91)) == 80
    assert COCO80_TO_91 == sorted(COCO80_TO_91) and COCO80_TO_91[0] == 1 and COCO80_TO_91[-1] == 90


@pytest.mark.parametrize("random_scores", [False, True])
def test_ground_truth_as_predictions_scores_one(random_scores: bool) -> None:
    data = _synthetic(0, num_images=10)
    rng = np.random.default_rng(0)
    data["pred"] = [(b, rng.random(len(b)) if random_scores else np.ones(len(b)), c) for b, c in data["gt"]]
    internal, coco = _score_both(data)
    assert internal["map50_95"] == pytest.approx(1.0)
    assert coco["map50_95"] == pytest.approx(1.0) and coco["map50"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("seed", "crowd_p", "clutter"),
    [(0, 0.0, 0), (1, 0.0, 0), (2, 0.0, 0), (3, 0.2, 0), (4, 0.0, 110)],
    ids=["seed0", "seed1", "seed2", "crowd", "over-maxdets"],
)
def test_internal_map_agrees_with_pycocotools(seed: int, crowd_p: float, clutter: int) -> None:
    internal, coco = _score_both(_synthetic(seed, num_images=20 if clutter else 50, crowd_p=crowd_p, clutter=clutter))
    assert 0.1 < coco["map50_95"] < 0.9  # a meaningful comparison, not all-or-nothing
    for key in ("map50", "map75", "map50_95"):
        assert internal[key] == pytest.approx(coco[key], abs=0.01), key
    # Same boxes and scores up to rounding, so agreement should be far tighter than the 0.01 promised.
    assert internal["map50_95"] == pytest.approx(coco["map50_95"], abs=1e-3)


def test_non_contiguous_category_ids_round_trip() -> None:
    boxes = np.array([[10.0, 10.0, 50.0, 50.0], [100.0, 100.0, 200.0, 150.0], [300.0, 20.0, 330.0, 90.0]])
    classes = np.array([0, 2, 3])
    images = [{"id": 42, "file_name": "a.jpg", "width": W, "height": H}]
    gt = build_coco_gt(images, [(boxes, classes)], CATEGORY_IDS, NAMES)
    assert [a["category_id"] for a in gt["annotations"]] == [1, 7, 90]
    assert gt["annotations"][1]["bbox"] == [100.0, 100.0, 100.0, 50.0] and gt["annotations"][1]["area"] == 5000.0
    assert [a["id"] for a in gt["annotations"]] == [1, 2, 3]

    preds = predictions_to_coco(
        42, torch.from_numpy(boxes), torch.tensor([0.9, 0.8, 0.123456789]), classes, CATEGORY_IDS
    )
    assert [p["category_id"] for p in preds] == [1, 7, 90] and preds[2]["score"] == pytest.approx(0.123456789, rel=1e-7)
    assert evaluate_coco(gt, preds)["map50_95"] == pytest.approx(1.0)
    shifted = predictions_to_coco(42, boxes, [0.9, 0.8, 0.7], (classes + 1) % 4, CATEGORY_IDS)
    assert evaluate_coco(gt, shifted)["map50_95"] == pytest.approx(0.0)


def test_files_subsets_and_no_mutation(tmp_path: Path) -> None:
    data = _synthetic(5, num_images=6)
    gt = build_coco_gt(data["images"], data["gt"], CATEGORY_IDS, NAMES)
    results = []
    for image, (boxes, scores, classes) in zip(data["images"], data["pred"]):
        results += predictions_to_coco(image["id"], boxes, scores, classes, CATEGORY_IDS)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(results))
    snapshot = json.dumps([gt, results])
    from_files = evaluate_coco(tmp_path / "gt.json", str(tmp_path / "pred.json"))
    from_dicts = evaluate_coco(gt, results)
    assert json.dumps([gt, results]) == snapshot
    assert from_files["stats"] == from_dicts["stats"] and len(from_dicts["stats"]) == 12
    assert "Average Precision" in from_dicts["summary"]
    assert from_dicts["map50_95"] == from_dicts["stats"][0] and from_dicts["map50"] == from_dicts["stats"][1]
    subset = evaluate_coco(gt, results, image_ids=[1, 2])
    assert subset["stats"] != from_dicts["stats"]


def test_empty_predictions_and_bad_inputs(tmp_path: Path) -> None:
    data = _synthetic(6, num_images=3)
    gt = build_coco_gt(data["images"], data["gt"], CATEGORY_IDS, NAMES)
    empty = evaluate_coco(gt, [])
    assert empty["map50_95"] == 0.0 and empty["stats"] == [0.0] * 12
    with pytest.raises(DatasetError, match="not found"):
        evaluate_coco(tmp_path / "missing.json", [])
    stray = predictions_to_coco(999, np.array([[0.0, 0.0, 5.0, 5.0]]), [0.5], [0], CATEGORY_IDS)
    with pytest.raises(DatasetError, match="image ids missing from the ground truth"):
        evaluate_coco(gt, stray)
