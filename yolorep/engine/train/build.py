"""Building a ``Trainer`` from a run's plain options: data, model (initial weights, frozen layers), loss,
optimizer, schedule, validator and the run's hooks."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from yolorep.checks import check_imgsz
from yolorep.datasets.spec import load_data_spec
from yolorep.engine.checkpoint import read_checkpoint
from yolorep.engine.class_names import class_rows_by_name, require_same_names
from yolorep.engine.data_summary import format_data_summary
from yolorep.engine.run_dir import increment_run_dir
from yolorep.engine.train import distributed
from yolorep.engine.train.auto_optimizer import STATE_KEY as OPTIMIZER_CHOICE
from yolorep.engine.train.auto_optimizer import OptimizerSettings, build_run_optimizer
from yolorep.engine.train.best import BestModel
from yolorep.engine.train.budget import TimeBudget
from yolorep.engine.train.checkpoints import Checkpointer
from yolorep.engine.train.data import build_train_data, cache_images, resolve_batch
from yolorep.engine.train.ema import EMA
from yolorep.engine.train.hooks import Hook
from yolorep.engine.train.labels import LabelStatistics
from yolorep.engine.train.loggers import build_loggers
from yolorep.engine.train.mosaic import MosaicClosing
from yolorep.engine.train.multiscale import MultiScale
from yolorep.engine.train.results import Results, TrainBatchPlots
from yolorep.engine.train.schedule import Schedule
from yolorep.engine.train.trainer import LoopSettings, Trainer
from yolorep.engine.train.validation import Validation
from yolorep.engine.val.validator import Validator, build_eval_loader, build_validator, eval_args
from yolorep.errors import CheckpointError
from yolorep.loss import DetectionLoss
from yolorep.nn.model import DetectionModel, build_model
from yolorep.nn.modules.timm_backbone import without_pretrained_weights

__all__ = ["build_trainer", "cache_images", "freeze_layers", "initial_weights"]

LOGGER = logging.getLogger(__name__)
LOGGERS_DEFAULT = ("tensorboard",)  # what runs stored before --loggers existed used


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _initial_model(
    model_cfg: str | dict, nc: int, names: list[str], weights: str | None, checkpoint: dict | None
) -> DetectionModel:
    if checkpoint is None and isinstance(model_cfg, (str, Path)) and str(model_cfg).endswith(".pt"):
        checkpoint, weights = initial_weights(model_cfg), weights or model_cfg  # a .pt's architecture and weights
    if checkpoint is not None:  # the architecture a checkpoint stores
        cfg, scale, name = checkpoint["model_cfg"], checkpoint.get("scale"), checkpoint.get("model_name")
        with without_pretrained_weights():  # the checkpoint's weights replace any download
            model = build_model(cfg, nc=nc, scale=scale, name=name)
    else:
        model = build_model(model_cfg, nc=nc)
    model.names = list(names)
    if weights:
        _transfer_weights(model, weights)
    return model


def initial_weights(weights: str | Path) -> dict[str, Any]:
    """The checkpoint to start training from; a fused one is refused (its folded kernels fit no training block)."""
    checkpoint = read_checkpoint(weights)
    if checkpoint.get("fused"):
        raise CheckpointError(
            f"--weights {weights}: holds a fused model (BatchNorm folded into its convolutions), which cannot seed "
            "multi-branch training; pass the unfused last.pt or best.pt of the run it came from"
        )
    return checkpoint


def _transfer_weights(model: DetectionModel, weights: str | Path) -> None:
    """Copy the tensors of ``weights`` whose names and shapes match, the head's class rows by class name
    (``class_rows_by_name``)."""
    checkpoint = initial_weights(weights)
    target = model.state_dict()
    state_dict = class_rows_by_name(checkpoint["state_dict"], target, checkpoint.get("names"), model.names)
    matched = {k: v for k, v in state_dict.items() if k in target and v.shape == target[k].shape}
    model.load_state_dict(matched, strict=False)
    LOGGER.info("transferred %d/%d tensors from %s", len(matched), len(target), weights)
    left = [k for k in target if k not in matched]
    absent = [n for n in model.names if n not in (checkpoint.get("names") or model.names)]
    if absent and len(matched) >= len(target) / 2:  # a class the checkpoint lacks starts from initial class rows
        left += [k for k in matched if state_dict[k] is not checkpoint["state_dict"].get(k)]
    if left and len(matched) >= len(target) / 2:  # say which ones start afresh (another class count: the predictors)
        shown = ", ".join(left[:8]) + (f" ... ({len(left)} in all)" if len(left) > 8 else "")
        LOGGER.info("kept every tensor of %s except %s (another shape, absent there, or rows of classes it lacks)",
                    weights, shown)  # fmt: skip
    if len(matched) < len(target) / 2:
        LOGGER.warning(
            "--weights %s: only %d of the model's %d tensors matched by name and shape; most of the model starts "
            "from random weights (a different architecture or scale?)", weights, len(matched), len(target),
        )  # fmt: skip


def build_trainer(
    args: dict[str, Any],
    save_dir: Path | None,
    checkpoint: dict | None,
    dev: torch.device,
    is_distributed: bool,
    callbacks: Sequence[Hook] | None = None,
    started: float | None = None,
    profile: bool = False,
) -> Trainer:
    """A ready ``Trainer`` and the run's hooks built from ``args`` (the plain options ``train()`` stores), restored
    from ``checkpoint`` when resuming; ``callbacks`` (the user's hooks) act after the run's own. After ``setup``."""
    is_main = distributed.is_main_process()
    hyp, world = args["hyp"], distributed.world_size()
    _seed_everything(args["seed"])
    spec = load_data_spec(args["data"]) if is_main else None
    spec = distributed.broadcast_object(spec) if is_distributed else spec
    single_cls = bool(args.get("single_cls"))
    names = ["object"] if single_cls else list(spec.names)
    if checkpoint is not None:  # resuming: the run's classes, in its order
        require_same_names(checkpoint.get("names"), names, str(save_dir / "weights" / "last.pt"), args["data"])
    weights = None if checkpoint else args["weights"]
    model = _initial_model(args["model"], len(names), names, weights, checkpoint).to(dev)
    if args.get("freeze") is not None:
        freeze_layers(model, args["freeze"])
    stride = int(model.stride.max())
    imgsz = check_imgsz(args["imgsz"], stride)
    if is_main:
        model.info(imgsz=imgsz)
    loss_fn = DetectionLoss.from_hyp(model.nc, model.reg_max, hyp)
    args = {**args, "batch": resolve_batch(args, model, loss_fn, spec, dev)}  # stored as measured: resumed alike
    batch = max(args["batch"] // world, 1)
    dataset, loader, workers = build_train_data(args, spec, imgsz, stride, batch, dev, is_distributed)
    stored_choice = checkpoint["train_state"].get(OPTIMIZER_CHOICE) if checkpoint is not None else None
    optimizer_settings = OptimizerSettings.of_run(args, len(dataset), batch, len(spec.names))
    optimizer, optimizer_choice = build_run_optimizer(
        model, optimizer_settings, args["epochs"], args.get("time") is not None, stored_choice
    )
    model = _distributed_model(model, args["sync_bn"], dev) if is_distributed else model
    validator = None
    if is_main:
        val_set, val_loader = build_eval_loader(spec, "val", imgsz, batch * 2, stride, workers, single_cls)
        # Per-epoch checks use the internal estimate (it mirrors COCOeval); best.pt is re-scored by pycocotools.
        validator = build_validator(val_set, val_loader, eval_args(hyp), coco=False, loss_fn=loss_fn)
        LOGGER.info("%s", format_data_summary(spec, {"train": dataset, "val": val_set}))
    cache_images(args["cache"], [dataset, val_set] if is_main else [dataset], world)
    # the run folder is made last, once everything a user can get wrong has been read and checked
    if save_dir is None and is_main:
        save_dir = increment_run_dir(args["project"], args["name"], bool(args.get("exist_ok")))
    save_dir = Path(distributed.broadcast_object(str(save_dir)))
    schedule = Schedule(args["epochs"], hyp["lrf"], hyp["cos_lr"], hyp["warmup_epochs"], int(hyp["close_mosaic"]),
                        time_budget=None if args.get("time") is None else args["time"] * 3600)  # fmt: skip
    hooks = [optimizer_choice, *_run_hooks(args, model, validator, save_dir, started), *(callbacks or ())]
    settings = LoopSettings(hyp=hyp, device=dev, save_dir=save_dir, seed=args["seed"], profile=profile)
    trainer = Trainer(model, loss_fn, optimizer, loader, schedule, hooks, settings)
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint, str(save_dir / "weights" / "last.pt"))
        LOGGER.info("resuming %s from epoch %d", save_dir, trainer.last_epoch + 2)
    return trainer


def _distributed_model(model: nn.Module, sync_bn: bool, dev: torch.device) -> nn.Module:
    if sync_bn and dev.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    elif sync_bn:
        LOGGER.warning("--sync-bn: SyncBatchNorm needs CUDA; training on %s with per-process BatchNorm", dev)
    return nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)


def _run_hooks(
    args: dict[str, Any], model: nn.Module, validator: Validator | None, save_dir: Path, started: float | None
) -> list[Hook]:
    """The run's policies (``yolorep.engine.train.hooks``), in the order they act: on every rank the EMA and mosaic
    closing; on rank 0 (the one with a ``validator``: it validates, keeps the best, plans a time budget and writes
    the run's files while the others wait) also labels.jpg and the first batches drawn (unless ``plots`` is off),
    validation, best model and patience, the time budget, results and checkpoints. A new policy is one more entry
    here."""
    hyp = args["hyp"]
    hooks: list[Hook] = [EMA(model, hyp["ema_decay"], hyp["ema_tau"]), MosaicClosing()]
    if args.get("multi_scale"):
        stride = int(getattr(model, "module", model).stride.max())
        hooks.append(MultiScale(int(args["imgsz"]), args["multi_scale"], stride))
    if validator is not None:
        evaluation = dict(eval_args(hyp), imgsz=int(args["imgsz"]))
        plots = bool(args.get("plots", True))  # runs stored before the option drew them
        hooks += [
            *((LabelStatistics(), TrainBatchPlots()) if plots else ()),
            Validation(validator, int(args.get("val_period", 1))),
            BestModel(args["patience"]),
            TimeBudget(time.perf_counter() if started is None else started),
            Results(args, plots=plots),
            Checkpointer(save_dir / "weights", args, evaluation),
            *build_loggers(tuple(args.get("loggers", LOGGERS_DEFAULT)), args),
        ]
    return hooks


def freeze_layers(model: DetectionModel, freeze: int | list[int]) -> list[int]:
    """Keep the first ``freeze`` layers (or the layer indices listed) as they are: parameters at their initial values
    (``requires_grad`` off, so the optimizer leaves them out) and BatchNorm statistics fixed (eval mode, kept through
    ``model.train()``: ``DetectionModel.freeze``). Returns the frozen layer indices."""
    layers = list(range(freeze)) if isinstance(freeze, int) else sorted(set(freeze))
    bad = [i for i in layers if i >= len(model.layers)]
    if bad:
        raise CheckpointError(f"--freeze {freeze}: the model has layers 0..{len(model.layers) - 1}; got {bad}")
    count = model.freeze(layers)
    LOGGER.info("froze layers %s (%s parameters, BatchNorm statistics fixed)", layers, f"{count:,}")
    return layers
