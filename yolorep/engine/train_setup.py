"""``train()``: read paths and flags, build the objects a ``Trainer`` takes, run it, re-validate ``best.pt``."""

from __future__ import annotations

import logging
import math
import random
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from yolorep.checks import check_imgsz
from yolorep.datasets.dataset import DetectionDataset
from yolorep.datasets.loader import build_dataloader
from yolorep.datasets.spec import load_data_spec
from yolorep.engine import distributed
from yolorep.engine.checkpoint import load_checkpoint, read_checkpoint
from yolorep.engine.device import select_device
from yolorep.engine.optim import build_optimizer, resolve_optimizer
from yolorep.engine.run_dir import RunLock, increment_run_dir
from yolorep.engine.train_args import TRAIN_DEFAULTS, new_run_args, resumed_run_args
from yolorep.engine.trainer import Trainer, restore_best
from yolorep.engine.validator import build_eval_loader, build_validator, eval_settings, log_results
from yolorep.errors import CheckpointError, YolorepError
from yolorep.loss import DetectionLoss
from yolorep.nn.model import DetectionModel, build_model

__all__ = ["build_trainer", "train"]

LOGGER = logging.getLogger(__name__)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _find_resume_checkpoint(resume: bool | str, project: str | Path) -> Path:
    if isinstance(resume, (str, Path)) and resume is not True:
        return Path(resume)
    candidates = sorted(Path(project).glob("*/weights/last.pt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise YolorepError(f"{project}: no run with weights/last.pt to resume; pass --resume path/to/last.pt")
    return candidates[-1]


def _resume_checkpoint(last: Path) -> dict[str, Any]:
    """``last.pt`` read and checked for everything a resumed run needs."""
    checkpoint = read_checkpoint(last)
    state = checkpoint.get("train_state")
    keys = ("model", "optimizer", "scheduler", "scaler", "ema_updates", "best_fitness", "history")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise CheckpointError(f"{last}: has no training state to resume from; use weights/last.pt of a run")
    if checkpoint.get("fused"):
        raise CheckpointError(f"{last}: holds a fused model, which cannot be trained; resume from the run's last.pt")
    if not isinstance(checkpoint.get("train_args"), dict) or not isinstance(checkpoint.get("epoch"), int):
        raise CheckpointError(f"{last}: train_args or epoch missing or malformed; this last.pt cannot be resumed")
    return checkpoint


def _initial_model(
    model_cfg: str | dict, nc: int, names: list[str], weights: str | None, checkpoint: dict | None
) -> DetectionModel:
    if checkpoint is None and isinstance(model_cfg, (str, Path)) and str(model_cfg).endswith(".pt"):
        checkpoint, weights = _initial_weights(model_cfg), weights or model_cfg  # a .pt's architecture and weights
    if checkpoint is not None:  # the architecture a checkpoint stores
        cfg, scale, name = checkpoint["model_cfg"], checkpoint.get("scale"), checkpoint.get("model_name")
        model = build_model(cfg, nc=nc, scale=scale, name=name)
    else:
        model = build_model(model_cfg, nc=nc)
    model.names = list(names)
    if weights:
        _transfer_weights(model, weights)
    return model


def _initial_weights(weights: str | Path) -> dict[str, Any]:
    """The checkpoint to start training from; a fused one is refused (its folded kernels fit no training block)."""
    checkpoint = read_checkpoint(weights)
    if checkpoint.get("fused"):
        raise CheckpointError(
            f"--weights {weights}: holds a fused model (BatchNorm folded into its convolutions), which cannot seed "
            "multi-branch training; pass the unfused last.pt or best.pt of the run it came from"
        )
    return checkpoint


def _transfer_weights(model: DetectionModel, weights: str | Path) -> None:
    """Copy the tensors of ``weights`` whose names and shapes match (a different class count keeps the rest)."""
    checkpoint = _initial_weights(weights)
    target = model.state_dict()
    matched = {k: v for k, v in checkpoint["state_dict"].items() if k in target and v.shape == target[k].shape}
    model.load_state_dict(matched, strict=False)
    LOGGER.info("transferred %d/%d tensors from %s", len(matched), len(target), weights)
    if len(matched) < len(target) / 2:
        LOGGER.warning(
            "--weights %s: only %d of the model's %d tensors matched by name and shape; most of the model starts "
            "from random weights (a different architecture or scale?)", weights, len(matched), len(target),
        )  # fmt: skip


def train(
    model: str | dict | None = None,
    data: str | Path | None = None,
    epochs: int | None = None,
    imgsz: int | None = None,
    batch: int | None = None,
    device: str | None = None,
    workers: int | None = None,
    project: str | Path | None = None,
    name: str | None = None,
    seed: int | None = None,
    optimizer: str | None = None,
    hyp: str | Path | dict | None = None,
    resume: bool | str = False,
    weights: str | None = None,
    sync_bn: bool | None = None,
    cache: bool | None = None,
    patience: int | None = None,
    **hyp_overrides: Any,
) -> dict[str, Any]:
    """Train a detector; returns the final metrics of ``best.pt`` (fused, pycocotools) with ``save_dir`` added.

    Options left as None take ``TRAIN_DEFAULTS`` (``yolorep-n.yaml`` on ``shapes.yaml``, 100 epochs at 640, batch
    16, 2 workers, ``runs/train/exp``, seed 0, ...). Any key of cfg/default.yaml may be passed as a keyword
    (``lr0=0.002``) or in ``hyp`` (a YAML path or dict). With ``resume`` (True for the newest run under
    ``project``, or a ``last.pt`` path) the run continues with its own options; only ``data``, ``device`` and
    ``workers`` may change. Under ``torchrun`` each process trains on its shard with DDP; ``batch`` is the total.
    """
    given = {k: v for k, v in locals().items() if k in TRAIN_DEFAULTS and v is not None}
    checkpoint = None
    if resume:
        last = _find_resume_checkpoint(resume, given.pop("project", TRAIN_DEFAULTS["project"]))
        checkpoint = _resume_checkpoint(last)
        if hyp is not None or hyp_overrides:
            raise YolorepError(f"{last}: --resume keeps the run's hyperparameters; start a new run to change them")
        args = resumed_run_args(checkpoint["train_args"], given, last)
        restore_best(last, checkpoint)
        if checkpoint["epoch"] + 1 >= int(args["epochs"]):  # stopped after its last epoch: finish what remains
            LOGGER.info("%s: all %d epochs are trained; validating best.pt", last, args["epochs"])
        save_dir = last.parent.parent
    else:
        args = new_run_args(given, hyp, hyp_overrides)
        for checkpoint_path in (args["weights"], args["model"]):
            if isinstance(checkpoint_path, str) and checkpoint_path.endswith(".pt"):
                _initial_weights(checkpoint_path)  # a wrong checkpoint fails now, not after the data set is read
        save_dir = None
    return _run(args, save_dir, checkpoint)


def _run(args: dict[str, Any], save_dir: Path | None, checkpoint: dict | None) -> dict[str, Any]:
    dev = select_device(args["device"])
    is_distributed = distributed.setup(dev)
    try:
        with ExitStack() as stack:
            if save_dir is not None and distributed.is_main_process():  # resuming: refuse a second process at once
                stack.enter_context(RunLock(save_dir))
            trainer = build_trainer(args, save_dir, checkpoint, dev, is_distributed)
            if save_dir is None and distributed.is_main_process():
                stack.enter_context(RunLock(trainer.save_dir))
            trainer.fit()
            if not distributed.is_main_process():
                return {}
            return _final_validation(trainer, dev)
    finally:
        distributed.cleanup()


def build_trainer(
    args: dict[str, Any], save_dir: Path | None, checkpoint: dict | None, dev: torch.device, is_distributed: bool
) -> Trainer:
    """Build model, data, loss, optimizer and validator from ``args`` (the plain options ``train()`` stores) and
    return a ready ``Trainer``, restored from ``checkpoint`` when resuming. Call after ``distributed.setup``."""
    is_main = distributed.is_main_process()
    hyp, world = args["hyp"], distributed.world_size()
    _seed_everything(args["seed"])
    spec = load_data_spec(args["data"]) if is_main else None
    spec = distributed.broadcast_object(spec) if is_distributed else spec
    weights = None if checkpoint else args["weights"]
    model = _initial_model(args["model"], len(spec.names), list(spec.names), weights, checkpoint).to(dev)
    stride = int(model.stride.max())
    imgsz = check_imgsz(args["imgsz"], stride)
    if is_main:
        model.info(imgsz=imgsz)
    batch = max(args["batch"] // world, 1)
    dataset = DetectionDataset(spec, "train", imgsz, augment=True, hyp=hyp, cache_images=args["cache"])
    loader = build_dataloader(dataset, batch, True, args["workers"], args["seed"], distributed=is_distributed)
    accumulate = max(round(hyp["nbs"] / (batch * world)), 1)
    steps = math.ceil(len(dataset) / max(batch * world, hyp["nbs"])) * args["epochs"]
    lr0_set = "lr0" in args.get("hyp_set", ())
    opt_name, lr0 = resolve_optimizer(args["optimizer"], len(spec.names), steps, hyp["lr0"], lr0_set)
    weight_decay = hyp["weight_decay"] * batch * world * accumulate / hyp["nbs"]
    optimizer = build_optimizer(model, opt_name, lr0, hyp["momentum"], weight_decay)
    if is_main:
        LOGGER.info("optimizer %s lr0=%g, batch %d x %d ranks, accumulate %d", opt_name, lr0, batch, world, accumulate)
    loss_fn = DetectionLoss.from_hyp(model.nc, model.reg_max, hyp)
    if is_distributed:
        if args["sync_bn"] and dev.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif args["sync_bn"]:
            LOGGER.warning("--sync-bn: SyncBatchNorm needs CUDA; training on %s with per-process BatchNorm", dev)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    validator = None
    if is_main:
        val_set, val_loader = build_eval_loader(spec, "val", imgsz, batch * 2, stride, args["workers"])
        # Per-epoch checks use the internal estimate (it mirrors COCOeval); best.pt is re-scored by pycocotools.
        validator = build_validator(val_set, val_loader, _eval_args(hyp), coco=False)
        LOGGER.info("train: %s; val: %s", dataset.stats, val_set.stats)
    # the run folder is made last, once everything a user can get wrong has been read and checked
    if save_dir is None and is_main:
        save_dir = increment_run_dir(args["project"], args["name"])
    save_dir = Path(distributed.broadcast_object(str(save_dir)))
    trainer = Trainer(
        model, loss_fn, optimizer, loader, validator, hyp=hyp, epochs=args["epochs"], save_dir=save_dir,
        device=dev, seed=args["seed"], patience=args["patience"], train_args=args,
    )  # fmt: skip
    if checkpoint is not None:
        trainer.load_train_state(checkpoint, str(save_dir / "weights" / "last.pt"))
        LOGGER.info("resuming %s from epoch %d", save_dir, trainer.state.epoch + 2)
    return trainer


def _eval_args(hyp: dict[str, Any]) -> dict[str, Any]:
    return eval_settings(None, conf=hyp["val_conf"], iou=hyp["val_iou"], max_det=int(hyp["max_det"]))


def _final_validation(trainer: Trainer, dev: torch.device) -> dict[str, Any]:
    """Re-validate best.pt exactly as ``yolorep val`` does: load it from disk, fuse, evaluate, write the run files."""
    best = trainer.save_dir / "weights" / "best.pt"
    model = load_checkpoint(best).fuse().to(dev)
    LOGGER.info("validating %s (%s)", best, model.fuse_report)
    per_epoch = trainer.validator
    validator = build_validator(per_epoch.dataset, per_epoch.loader, _eval_args(trainer.hyp), save_dir=trainer.save_dir)
    results = validator(model, dev)
    log_results(validator, results)
    LOGGER.info("results saved to %s", trainer.save_dir)
    return dict(results, save_dir=str(trainer.save_dir))
