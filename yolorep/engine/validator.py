"""Validation: batched letterboxed inference of a (fused) model, NMS, internal metrics and pycocotools.

pycocotools is the number of record; the internal mAP (which mirrors COCOeval's matching) is an estimate kept
beside it because it also gives per-class precision/recall and curves.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from yolorep.datasets.config import DataSpec, load_data_spec
from yolorep.datasets.dataset import DetectionDataset
from yolorep.datasets.loader import build_dataloader
from yolorep.engine.coco import build_coco_gt, evaluate_coco, predictions_to_coco
from yolorep.engine.device import select_device
from yolorep.engine.metrics import ConfusionMatrix, DetectionMetrics
from yolorep.errors import CheckpointError
from yolorep.ops.boxes import scale_boxes
from yolorep.ops.nms import non_max_suppression

__all__ = ["DEFAULT_EVAL_ARGS", "Validator", "val"]

LOGGER = logging.getLogger(__name__)
DEFAULT_EVAL_ARGS = {"imgsz": 640, "conf": 0.001, "iou": 0.7, "max_det": 300}
N_PLOTTED_IMAGES = 4


class Validator:
    """Evaluate a model on one dataset split.

    Args:
        dataset: an evaluation ``DetectionDataset`` (``augment=False``; ``rect=True`` for speed).
        loader: its loader, without shuffling.
        conf, iou, max_det, agnostic: NMS settings.
        save_dir: where ``metrics.json``, ``predictions.json`` and plots go; ``None`` writes nothing.
        coco_eval: also score with pycocotools (the number of record); without it ``map50_95`` and ``map50`` hold
            the internal estimates, and ``metrics["source"]`` says which it is.
    """

    def __init__(
        self,
        dataset: DetectionDataset,
        loader: torch.utils.data.DataLoader,
        conf: float = 0.001,
        iou: float = 0.7,
        max_det: int = 300,
        agnostic: bool = False,
        half: bool = False,
        save_dir: Path | None = None,
        coco_eval: bool = True,
    ) -> None:
        self.dataset, self.loader = dataset, loader
        self.coco_eval = coco_eval
        self.conf, self.iou, self.max_det, self.agnostic, self.half = conf, iou, max_det, agnostic, half
        self.save_dir = save_dir
        self.names = list(dataset.names)

    @torch.no_grad()
    def __call__(self, model: nn.Module, device: torch.device | None = None, progress: bool = False) -> dict[str, Any]:
        device = device or next(model.parameters()).device
        model.eval()
        metrics = DetectionMetrics(self.names)
        confusion = ConfusionMatrix(len(self.names))
        predictions: list[dict[str, Any]] = []
        evaluated: list[int] = []
        times = {"preprocess": 0.0, "inference": 0.0, "nms": 0.0}
        plotted = 0
        batches = self.loader
        if progress:
            from tqdm import tqdm

            batches = tqdm(self.loader, desc="val", unit="batch", leave=False)
        for images, _, infos in batches:
            start = time.perf_counter()
            x = images.to(device, non_blocking=True)
            x = (x.half() if self.half else x.float()) / 255
            _synchronize(device)
            loaded = time.perf_counter()
            raw = model(x)
            _synchronize(device)
            inferred = time.perf_counter()
            # An untrained model puts nearly every anchor and class above conf 0.001: keeping the 10 * max_det best
            # candidates bounds NMS time without changing what COCOeval scores (its top 100 per image and class).
            detections = non_max_suppression(
                raw, self.conf, self.iou, self.max_det, agnostic=self.agnostic, multi_label=True,
                max_candidates=10 * self.max_det,
            )  # fmt: skip
            times["preprocess"] += loaded - start
            times["inference"] += inferred - loaded
            times["nms"] += time.perf_counter() - inferred
            for det, info in zip(detections, infos):
                record = self.dataset.records[info["index"]]
                det = det.cpu()
                boxes = scale_boxes(det[:, :4], info["ratio_pad"], record.shape)
                scores, classes = det[:, 4], det[:, 5].long()
                gt_boxes, gt_classes = torch.from_numpy(record.boxes_xyxy), torch.from_numpy(record.classes)
                metrics.update(boxes, scores, classes, gt_boxes, gt_classes)
                confusion.update(boxes, scores, classes, gt_boxes, gt_classes)
                predictions += predictions_to_coco(record.image_id, boxes, scores, classes, self.dataset.category_ids)
                evaluated.append(record.image_id)
                if self.save_dir is not None and plotted < N_PLOTTED_IMAGES:
                    self._plot_image(record, (gt_boxes, gt_classes), (boxes, classes, scores), plotted)
                    plotted += 1
        results = self._summarise(metrics, predictions, evaluated, times)
        results["fused"] = bool(getattr(model, "is_fused", False))
        if self.save_dir is not None:
            self._save(results, metrics, confusion, predictions)
        return results

    def _summarise(
        self, metrics: DetectionMetrics, predictions: list[dict], evaluated: list[int], times: dict[str, float]
    ) -> dict[str, Any]:
        internal = metrics.compute()
        n = max(len(evaluated), 1)
        self.table = metrics.format_table()
        if self.coco_eval:
            coco = evaluate_coco(self._coco_ground_truth(), predictions, image_ids=evaluated)
            self.coco_summary, source = coco["summary"], "pycocotools"
        else:
            coco = {
                "map50_95": internal["map50_95"],
                "map50": internal["map50"],
                "map75": internal["map75"],
                "stats": [],
            }
            self.coco_summary, source = "(pycocotools not run)", "internal estimate"
        return {
            "source": source,
            "map50_95": coco["map50_95"],
            "map50": coco["map50"],
            "map75": coco["map75"],
            "map50_95_internal": internal["map50_95"],
            "map50_internal": internal["map50"],
            "precision": internal["precision"],
            "recall": internal["recall"],
            "per_class": internal["per_class"],
            "coco_stats": coco["stats"],
            "images": len(evaluated),
            "speed_ms_per_image": {k: 1000 * v / n for k, v in times.items()},
            "settings": {"conf": self.conf, "iou": self.iou, "max_det": self.max_det, "agnostic": self.agnostic},
        }

    def _coco_ground_truth(self) -> dict[str, Any] | Path:
        spec: DataSpec = self.dataset.spec
        annotation_file = spec.split_json(self.dataset.split)
        if annotation_file is not None:
            return annotation_file  # the dataset's own file: ids and categories come from it, crowd included
        records = self.dataset.records
        images = [
            {"id": r.image_id, "file_name": Path(r.path).name, "width": r.shape[1], "height": r.shape[0]}
            for r in records
        ]
        return build_coco_gt(
            images, [(r.boxes_xyxy, r.classes) for r in records], self.dataset.category_ids, self.names
        )

    def _plot_image(self, record: Any, gt: tuple, pred: tuple, index: int) -> None:
        import cv2

        from yolorep.engine.plots import save_side_by_side

        image = cv2.imread(str(record.path))
        if image is not None:
            keep = pred[2] >= 0.25
            shown = (pred[0][keep], pred[1][keep], pred[2][keep])
            save_side_by_side(image, gt, shown, self.names, self.save_dir / f"val_image{index}_labels_vs_pred.jpg")

    def _save(self, results: dict, metrics: DetectionMetrics, confusion: ConfusionMatrix, predictions: list) -> None:
        from yolorep.engine.plots import plot_pr_curve

        self.save_dir.mkdir(parents=True, exist_ok=True)
        (self.save_dir / "metrics.json").write_text(json.dumps(results, indent=2))
        (self.save_dir / "predictions.json").write_text(json.dumps(predictions))
        plot_pr_curve(metrics, self.save_dir / "pr_curve.png")
        confusion.plot(self.save_dir / "confusion_matrix.png", self.names)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def eval_settings(stored: dict[str, Any] | None, **requested: Any) -> dict[str, Any]:
    """Evaluation settings: the checkpoint's (else the defaults), each overridden where the user asked."""
    settings = dict(DEFAULT_EVAL_ARGS, **(stored or {}))
    for key, value in requested.items():
        if value is None:
            continue
        if stored and key in stored and stored[key] != value:
            LOGGER.warning("%s=%s overrides the checkpoint's evaluation setting %s=%s", key, value, key, stored[key])
        settings[key] = value
    return settings


def build_eval_loader(
    spec: DataSpec, split: str, imgsz: int, batch: int, stride: int, workers: int = 0
) -> tuple[DetectionDataset, torch.utils.data.DataLoader]:
    dataset = DetectionDataset(spec, split, imgsz, augment=False, rect=True, batch_size=batch, stride=stride)
    return dataset, build_dataloader(dataset, batch, shuffle=False, workers=workers)


def val(
    weights: str | Path,
    data: str | Path = "data/shapes.yaml",
    split: str = "val",
    imgsz: int | None = None,
    batch: int = 32,
    device: str | None = None,
    conf: float | None = None,
    iou: float | None = None,
    max_det: int | None = None,
    agnostic_nms: bool = False,
    half: bool = False,
    workers: int = 2,
    project: str | Path = "runs/val",
    name: str = "exp",
) -> dict[str, Any]:
    """Evaluate a checkpoint, fused, on a dataset split; writes a run folder and returns the metrics dict."""
    import yolorep
    from yolorep.engine.run_dir import increment_run_dir

    model = yolorep.load(weights)
    spec = load_data_spec(data)
    if len(spec.names) != model.nc:
        raise CheckpointError(
            f"{weights}: the model predicts {model.nc} classes ({', '.join(model.names[:6])}...) but {spec.yaml_path} "
            f"has {len(spec.names)} ({', '.join(spec.names[:6])}...); evaluate on the dataset it was trained on"
        )
    settings = eval_settings(model.meta.get("eval_args"), imgsz=imgsz, conf=conf, iou=iou, max_det=max_det)
    dev = select_device(device)
    if half and dev.type != "cuda":
        LOGGER.warning("--half needs CUDA; evaluating in fp32 on %s", dev)
        half = False
    model.fuse(verbose=False)
    LOGGER.info("evaluating the fused model (%s)", model.fuse_report)
    model = model.to(dev).half() if half else model.to(dev)
    stride = int(model.stride.max())
    dataset, loader = build_eval_loader(spec, split, settings["imgsz"], batch, stride, workers)
    save_dir = increment_run_dir(project, name)
    validator = Validator(
        dataset, loader, settings["conf"], settings["iou"], settings["max_det"], agnostic_nms, half, save_dir
    )
    results = validator(model, dev, progress=True)
    log_results(validator, results)
    LOGGER.info("results saved to %s", save_dir)
    return results


def log_results(validator: Validator, results: dict[str, Any]) -> None:
    LOGGER.info("%s", validator.table)
    LOGGER.info("pycocotools COCOeval (number of record):\n%s", validator.coco_summary)
    LOGGER.info(
        "mAP50-95 %.4f (internal estimate %.4f), mAP50 %.4f (internal estimate %.4f)",
        results["map50_95"],
        results["map50_95_internal"],
        results["map50"],
        results["map50_internal"],
    )
    speed = results["speed_ms_per_image"]
    LOGGER.info(
        "speed: %.2f ms preprocess, %.2f ms inference, %.2f ms NMS per image",
        speed["preprocess"],
        speed["inference"],
        speed["nms"],
    )
