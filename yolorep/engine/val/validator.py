"""Validation: one inference loop (letterboxed batches -> model -> NMS -> original pixels) feeding evaluators.

pycocotools is the number of record; the internal mAP (which mirrors COCOeval's matching) is an estimate kept
beside it because it also gives per-class precision/recall and curves, and because per-epoch validation skips
pycocotools. See ``yolorep.evaluation`` for the evaluators.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from yolorep.assets import find_builtin_data
from yolorep.atomic import write_text_atomic
from yolorep.datasets.dataset import DetectionDataset
from yolorep.datasets.loader import build_dataloader
from yolorep.datasets.spec import DataSpec, ensure_split, load_data_spec
from yolorep.engine.class_names import ReorderedClasses, evaluation_order
from yolorep.engine.data_summary import format_data_summary
from yolorep.engine.deploy.base import Backend
from yolorep.engine.deploy.cpu import cpu_features
from yolorep.engine.deploy.loading import load_backend
from yolorep.engine.deploy.precision import half_dtype
from yolorep.engine.device import loader_workers, select_device
from yolorep.engine.predict.tta import AugmentedBackend
from yolorep.engine.run_dir import increment_run_dir
from yolorep.errors import ArgumentError, CheckpointError, quoted
from yolorep.evaluation import (
    COCOEvaluator,
    Detections,
    Evaluator,
    MetricsEvaluator,
    SampleImages,
    build_coco_gt,
    has_pycocotools,
)
from yolorep.foreign import EVAL_PROTOCOLS
from yolorep.logs import progress
from yolorep.nn.model import DetectionModel
from yolorep.ops.boxes import scale_boxes
from yolorep.ops.nms import NMSSettings, non_max_suppression
from yolorep.options import ValOptions, load_hyp

__all__ = [
    "Validator",
    "build_eval_loader",
    "build_validator",
    "default_eval_settings",
    "eval_args",
    "eval_settings",
    "val",
]

LOGGER = logging.getLogger(__name__)


def default_eval_settings() -> dict[str, Any]:
    """NMS settings of cfg/default.yaml and the default image size, for checkpoints that store none."""
    hyp = load_hyp()
    return {"imgsz": 640, "conf": hyp["val_conf"], "iou": hyp["val_iou"], "max_det": int(hyp["max_det"])}


class Validator:
    """Run a model over one dataset split and feed every image's detections to ``evaluators``.

    Args:
        dataset: an evaluation ``DetectionDataset`` (``augment=False``; ``rect=True`` for speed).
        loader: its loader, without shuffling.
        evaluators: what to compute; one ``MetricsEvaluator`` is required (the internal estimate), a
            ``COCOEvaluator`` makes pycocotools the number of record.
        nms: the NMS settings.
        half: feed fp16 images (for a model cast to fp16).
        save_dir: where ``metrics.json`` goes; ``None`` writes nothing (evaluators write their own files).
        loss_fn: with it, a ``DetectionModel``'s raw maps are also scored by the training loss against the
            letterboxed labels, and ``val_loss`` ([box, cls, dfl]) is added to the results.
    """

    def __init__(
        self,
        dataset: DetectionDataset,
        loader: torch.utils.data.DataLoader,
        evaluators: list[Evaluator],
        *,
        nms: NMSSettings,
        half: bool = False,
        save_dir: Path | None = None,
        loss_fn: nn.Module | None = None,
    ) -> None:
        if not any(isinstance(e, MetricsEvaluator) for e in evaluators):
            raise ValueError("Validator: evaluators must include a MetricsEvaluator (the internal estimate)")
        self.dataset, self.loader, self.evaluators = dataset, loader, list(evaluators)
        self.nms, self.half = nms, half
        self.save_dir, self.loss_fn = save_dir, loss_fn

    @torch.no_grad()
    def __call__(
        self, model: nn.Module | Backend, device: torch.device | None = None, show_progress: bool = True
    ) -> dict[str, Any]:
        """Evaluate ``model``: a ``DetectionModel`` (decoded here; with ``loss_fn``, its validation loss too), any
        module returning [B, N, 4 + nc], or a ``Backend`` (a checkpoint or an exported file)."""
        if isinstance(model, Backend):
            device = device or model.device
        else:
            device = device or next(model.parameters()).device
            model.eval()
        for evaluator in self.evaluators:
            evaluator.reset()
        times = {"preprocess": 0.0, "inference": 0.0, "nms": 0.0}
        images_seen, loss_sum = 0, torch.zeros(3)
        batches = progress(self.loader, desc="val", unit="batch", leave=False) if show_progress else self.loader
        for images, targets, infos in batches:
            start = time.perf_counter()
            x = images.to(device, non_blocking=True)
            x = (x.half() if self.half else x.float()) / 255
            _synchronize(device)
            loaded = time.perf_counter()
            if isinstance(model, DetectionModel):
                maps = model(x)
                raw = model.decode(maps)  # [B, N, 4 + nc]
                if self.loss_fn is not None:
                    loss_sum += self.loss_fn(maps, model.stride, targets.to(device))[1].float().cpu()
            else:
                raw = model(x)  # [B, N, 4 + nc]
            _synchronize(device)
            inferred = time.perf_counter()
            # An untrained model puts nearly every anchor and class above conf 0.001: keeping the 10 * max_det best
            # candidates bounds NMS time without changing what COCOeval scores (its top 100 per image and class).
            detections = non_max_suppression(
                raw, self.nms.conf, self.nms.iou, self.nms.max_det, agnostic=self.nms.agnostic, multi_label=True,
                max_candidates=10 * self.nms.max_det,
            )  # fmt: skip
            times["preprocess"] += loaded - start
            times["inference"] += inferred - loaded
            times["nms"] += time.perf_counter() - inferred
            for det, info in zip(detections, infos):
                record = self.dataset.records[info["index"]]
                det = det.cpu()  # [M, 6] (x1, y1, x2, y2, score, class) in input pixels
                boxes_xyxy = scale_boxes(det[:, :4], info["ratio_pad"], record.shape)
                found = Detections(boxes_xyxy, det[:, 4], det[:, 5].long())
                for evaluator in self.evaluators:
                    evaluator.process(record, found)
                images_seen += 1
        results = self._summarise(images_seen, times)
        if self.loss_fn is not None and isinstance(model, DetectionModel):
            results["val_loss"] = (loss_sum / max(len(self.loader), 1)).tolist()
        results["fused"] = model.fused if isinstance(model, Backend) else bool(getattr(model, "is_fused", False))
        if self.save_dir is not None:
            write_text_atomic(self.save_dir / "metrics.json", json.dumps(results, indent=2))
        return results

    def ground_truth(self) -> dict[str, int]:
        """What was scored, and what the loader dropped from the data set's ground truth (and why)."""
        records, stats = self.dataset.records, self.dataset.stats
        return {
            "images": len(records),
            "boxes": sum(len(r.classes) for r in records),
            "crowd_regions": sum(len(r.crowd_classes) for r in records),
            "skipped_images": stats.get("skipped_images", 0),  # unreadable, truncated or mis-sized files
            "dropped_bad_labels": stats.get("bad_labels", 0),  # malformed, non-finite or unknown-class entries
            "dropped_tiny_boxes": stats.get("dropped_boxes", 0),  # under 1 px after clipping to the image
        }

    def _summarise(self, images_seen: int, times: dict[str, float]) -> dict[str, Any]:
        figures: dict[str, Any] = {}
        for evaluator in self.evaluators:
            figures.update(evaluator.evaluate())
        ground_truth = self.ground_truth()
        if ground_truth["boxes"] == 0:
            LOGGER.warning(
                "%s: the %s split has no ground-truth boxes, so mAP is undefined; it is reported as 0",
                self.dataset.spec.yaml_path, self.dataset.split,
            )  # fmt: skip
            figures.update({k: 0.0 for k in ("map50_95", "map50", "map75") if k in figures})
        has_coco = "coco_stats" in figures
        n = max(images_seen, 1)
        return {
            "source": "pycocotools" if has_coco else "internal estimate",
            "map50_95": figures["map50_95"] if has_coco else figures["map50_95_internal"],
            "map50": figures["map50"] if has_coco else figures["map50_internal"],
            "map75": figures["map75"] if has_coco else figures["map75_internal"],
            "map50_95_internal": figures["map50_95_internal"],
            "map50_internal": figures["map50_internal"],
            "precision": figures["precision"],
            "recall": figures["recall"],
            "per_class": figures["per_class"],
            "coco_stats": figures.get("coco_stats", []),
            "images": images_seen,
            "ground_truth": ground_truth,
            "speed_ms_per_image": {k: 1000 * v / n for k, v in times.items()},
            "settings": dataclasses.asdict(self.nms),
        }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def coco_ground_truth(dataset: DetectionDataset) -> dict[str, Any]:
    """The ground truth pycocotools scores against, built from the records the loader accepted (whatever layout
    the data set has): boxes it dropped or clipped are scored as it kept them, COCO crowd regions and object areas
    included, VOC difficult objects as crowd regions, with the data set's image and category ids. ``file_name`` is
    the image's path relative to the data set root (``path:`` in its YAML)."""
    root = dataset.spec.root
    images = [
        {"id": r.image_id, "file_name": _relative(r.path, root), "width": r.shape[1], "height": r.shape[0]}
        for r in dataset.records
    ]
    annotations = [r.evaluated for r in dataset.records]
    return build_coco_gt(images, annotations, dataset.category_ids, list(dataset.names))


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (posix), or absolute when it lies elsewhere."""
    path = Path(path)
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


def build_validator(
    dataset: DetectionDataset,
    loader: torch.utils.data.DataLoader,
    settings: dict[str, Any],
    *,
    save_dir: Path | None = None,
    coco: bool = True,
    half: bool = False,
    loss_fn: nn.Module | None = None,
    plots: bool = True,
) -> Validator:
    """The validator of ``yolorep val``: internal metrics, pycocotools (``coco``) and, with ``save_dir``, the
    predictions and (with ``plots``) the plots and sample images. ``settings`` holds ``conf``, ``iou`` and
    ``max_det``, and optionally ``agnostic`` (class-agnostic NMS); ``loss_fn`` adds ``val_loss``."""
    names = list(dataset.names)
    evaluators: list[Evaluator] = [MetricsEvaluator(names, save_dir if plots else None)]
    if coco and not has_pycocotools():
        LOGGER.warning(
            "pycocotools is not installed: mAP is yolorep's internal estimate (it mirrors COCOeval; metrics.json says "
            "'source': 'internal estimate'); pip install pycocotools for the number of record"
        )
        coco = False
    if coco:
        evaluators.append(COCOEvaluator(coco_ground_truth(dataset), list(dataset.category_ids), save_dir))
    if save_dir is not None and plots:
        evaluators.append(SampleImages(names, save_dir))
    nms = NMSSettings(settings["conf"], settings["iou"], int(settings["max_det"]), bool(settings.get("agnostic")))
    return Validator(dataset, loader, evaluators, nms=nms, half=half, save_dir=save_dir, loss_fn=loss_fn)


def eval_args(hyp: dict[str, Any]) -> dict[str, Any]:
    """The evaluation settings of a training run's hyperparameters."""
    return eval_settings(None, conf=hyp["val_conf"], iou=hyp["val_iou"], max_det=int(hyp["max_det"]))


def eval_settings(stored: dict[str, Any] | None, **requested: Any) -> dict[str, Any]:
    """Evaluation settings: the checkpoint's (else the defaults), each overridden where the user asked."""
    settings = dict(default_eval_settings(), **(stored or {}))
    for key, value in requested.items():
        if value is None:
            continue
        if stored and key in stored and stored[key] != value:
            LOGGER.warning("%s=%s overrides the checkpoint's evaluation setting %s=%s", key, value, key, stored[key])
        settings[key] = value
    return settings


def build_eval_loader(
    spec: DataSpec,
    split: str,
    imgsz: int,
    batch: int,
    stride: int,
    workers: int = 0,
    single_cls: bool = False,
    rect: bool = True,
) -> tuple[DetectionDataset, torch.utils.data.DataLoader]:
    """Letterboxed batches: rectangular (one shape per batch) or, ``rect=False``, square ``imgsz x imgsz`` (what a
    fixed-shape export accepts)."""
    dataset = DetectionDataset(spec, split, imgsz, augment=False, rect=rect, batch_size=batch, stride=stride)
    if single_cls:
        dataset.as_one_class()
    return dataset, build_dataloader(dataset, batch, shuffle=False, workers=workers)


def _data_of(weights: str, stored: str) -> str:
    """The data set a model was trained on, from its metadata (untrusted: only a data YAML that exists, or a
    built-in name, is read); otherwise what to pass."""
    if not stored:
        raise CheckpointError(f"{weights}: records no data set; pass --data DATA.yaml")
    if find_builtin_data(stored) is not None and not Path(stored).is_file():
        return stored
    if Path(stored).suffix.lower() not in (".yaml", ".yml"):
        raise CheckpointError(
            f"{weights}: its metadata names the data set {quoted(stored)}, which is not a data YAML; pass "
            "--data DATA.yaml"
        )
    if not Path(stored).is_file():
        raise CheckpointError(
            f"{weights}: was trained on {quoted(stored)}, which does not exist here; pass --data DATA.yaml"
        )
    return stored


def val(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Evaluate a checkpoint or a model (fused; a model passed in is left unchanged) or an exported model
    (``.onnx``, ``.torchscript``, OpenVINO folder: see ``load_backend``) on a dataset split; writes a run folder
    and returns the metrics dict with ``save_dir`` added.

    The options are ``ValOptions`` (or its fields as keywords: ``weights``, ``data``, ``split``, ``imgsz``,
    ``batch``, ``conf``, ...). ``data`` defaults to the data set the model was trained on; ``imgsz``, ``conf``,
    ``iou`` and ``max_det`` to its evaluation settings. A fixed-shape export runs on square ``imgsz x imgsz``
    letterboxed batches at its exported size (split and padded to its exported batch size); a checkpoint or a
    ``--dynamic`` export on rectangular batches. ``workers`` defaults to the cores the model leaves free.

    ``protocol`` (``yolov6``, ``ultralytics``) evaluates with the settings behind that project's published COCO
    numbers (thresholds, detections, image size, square or rectangular batches: ``yolorep.foreign.EVAL_PROTOCOLS``);
    flags given beside it still win.
    """
    o = ValOptions.build(args, kwargs)
    weights, data, half = o.weights, o.data, o.half
    dev = select_device(o.device)
    workers = loader_workers(o.workers, dev)
    if half and half_dtype(dev, cpu_features()) is None:
        LOGGER.warning("--half: %s has no fast half precision (fp16 on CUDA, bf16 on AMX or AVX-512 BF16); fp32", dev)
        half = False
    model = load_backend(weights, dev, half=half)
    half = model.precision == "fp16" and dev.type == "cuda"  # fp16 images for fp16 weights; bf16 autocasts fp32 ones
    where = "the model" if isinstance(weights, nn.Module) else str(weights)
    if data is None:
        data = _data_of(where, model.info.data)
        LOGGER.info("data: %s (the data set %s was trained on)", data, where)
    spec = load_data_spec(data)
    ensure_split(spec, o.split)  # train and val are checked on loading; a test split only when it is scored
    if model.info.single_cls and len(model.names) != 1:
        raise CheckpointError(f"{where}: a single-class model with {len(model.names)} class names; the file is corrupt")
    order = None if model.info.single_cls else evaluation_order(model.names, spec.names, where, str(spec.yaml_path))
    model = model if order is None else ReorderedClasses(model, order, spec.names)
    stored, rect = _protocol_settings(o.protocol, model.info.eval_args)
    settings = eval_settings(stored, imgsz=o.imgsz, conf=o.conf, iou=o.iou, max_det=o.max_det)
    if o.augment:
        model = AugmentedBackend(model)
    LOGGER.info("evaluating %s", model.describe())
    size = model.input_size(settings["imgsz"])
    dataset, loader = build_eval_loader(
        spec, o.split, size, o.batch, model.stride, workers, model.info.single_cls, rect=model.dynamic and rect
    )
    LOGGER.info("%s", format_data_summary(spec, {o.split: dataset}))
    save_dir = increment_run_dir(o.project, o.name)
    nms = dict(settings, agnostic=o.agnostic_nms)
    validator = build_validator(dataset, loader, nms, save_dir=save_dir, half=half, plots=o.plots)
    results = validator(model, dev)
    log_results(validator, results)
    LOGGER.info("results saved to %s", save_dir)
    return dict(results, save_dir=str(save_dir))


def _protocol_settings(protocol: str | None, stored: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
    """The evaluation settings to start from and whether batches may be rectangular: the model's own, or those of
    a published protocol (``EVAL_PROTOCOLS``)."""
    if protocol is None:
        return stored, True
    if protocol not in EVAL_PROTOCOLS:
        raise ArgumentError(f"--protocol {protocol}: unknown; use one of {', '.join(EVAL_PROTOCOLS)}")
    settings = {k: v for k, v in EVAL_PROTOCOLS[protocol].items() if k != "rect"}
    LOGGER.info("protocol %s: %s", protocol, ", ".join(f"{k} {v}" for k, v in settings.items()))
    return settings, EVAL_PROTOCOLS[protocol]["rect"]


def log_results(validator: Validator, results: dict[str, Any]) -> None:
    gt = results["ground_truth"]
    LOGGER.info(
        "ground truth scored: %d boxes (+%d crowd regions) in %d images; dropped by the loader: %d unreadable "
        "images, %d bad label entries, %d boxes under 1 px",
        gt["boxes"], gt["crowd_regions"], gt["images"], gt["skipped_images"], gt["dropped_bad_labels"],
        gt["dropped_tiny_boxes"],
    )  # fmt: skip
    for evaluator in validator.evaluators:
        if isinstance(evaluator, COCOEvaluator):
            LOGGER.info("pycocotools COCOeval (number of record):\n%s", evaluator.report)
        elif evaluator.report:
            LOGGER.info("%s", evaluator.report)
    LOGGER.info(
        "mAP50-95 %.4f (internal estimate %.4f), mAP50 %.4f (internal estimate %.4f)",
        results["map50_95"], results["map50_95_internal"], results["map50"], results["map50_internal"],
    )  # fmt: skip
    speed = results["speed_ms_per_image"]
    LOGGER.info(
        "speed: %.2f ms preprocess, %.2f ms inference, %.2f ms NMS per image",
        speed["preprocess"], speed["inference"], speed["nms"],
    )  # fmt: skip
