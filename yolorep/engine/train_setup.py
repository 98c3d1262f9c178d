"""``train()``: read paths and flags, build the objects a ``Trainer`` takes, run it, re-validate ``best.pt``."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path
from time import perf_counter
from typing import Any

import torch

from yolorep.engine import distributed
from yolorep.engine.callbacks import Callbacks
from yolorep.engine.checkpoint import load_checkpoint, read_checkpoint
from yolorep.engine.device import select_device
from yolorep.engine.run_dir import RunLock
from yolorep.engine.train_args import TRAIN_DEFAULTS, new_run_args, resumed_run_args
from yolorep.engine.train_build import build_trainer, initial_weights
from yolorep.engine.train_checkpoints import restore_best
from yolorep.engine.trainer import Trainer
from yolorep.engine.validator import build_validator, eval_args, log_results
from yolorep.errors import CheckpointError, YolorepError

__all__ = ["train"]

LOGGER = logging.getLogger(__name__)


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
    time: float | None = None,
    freeze: int | list[int] | None = None,
    single_cls: bool | None = None,
    rect: bool | None = None,
    val_period: int | None = None,
    callbacks: Callbacks | dict[str, list] | None = None,
    profile: bool = False,
    **hyp_overrides: Any,
) -> dict[str, Any]:
    """Train a detector; returns the final metrics of ``best.pt`` (fused, pycocotools) with ``save_dir`` added.

    Options left as None take ``TRAIN_DEFAULTS`` (``yolorep-n.yaml`` on ``shapes.yaml``, 100 epochs at 640, batch
    16, loader workers on the cores the model's threads leave free, ``runs/train/exp``, seed 0, ...). Any key of
    cfg/default.yaml may be passed as a keyword (``lr0=0.002``) or in ``hyp`` (a YAML path or dict). With
    ``resume`` (True for the newest run under ``project``, or a ``last.pt`` path) the run continues with its own
    options; only ``data``, ``device``, ``workers`` and ``cache`` may change. Under ``torchrun`` each process
    trains on its shard with DDP; ``batch`` is the total.

    ``time`` (hours) fits the schedule to a budget that includes the final validation; ``freeze`` keeps the
    first N layers (or the listed ones) at their initial weights; ``single_cls`` trains every object as one
    class; ``rect`` trains on rectangular batches (HSV and flip only, no shuffling); ``val_period`` validates every
    N epochs (and the last); ``callbacks`` maps events of
    ``yolorep.engine.callbacks`` to functions of the trainer; ``profile`` times phases exactly on a GPU
    (``yolorep benchmark --epoch``).
    """
    started = perf_counter()
    given = {k: v for k, v in locals().items() if k in TRAIN_DEFAULTS and v is not None}
    extra = callbacks if isinstance(callbacks, Callbacks) else Callbacks(callbacks)
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
        if args["weights"] and "model" not in given and "source" in initial_weights(args["weights"]):
            args["model"] = args["weights"]  # an imported YOLOv6/ultralytics file trains its own architecture
        for checkpoint_path in (args["weights"], args["model"]):
            if isinstance(checkpoint_path, str) and checkpoint_path.endswith(".pt"):
                initial_weights(checkpoint_path)  # a wrong checkpoint fails now, not after the data set is read
        save_dir = None
    return _run(args, save_dir, checkpoint, extra, started, profile)


def _run(
    args: dict[str, Any],
    save_dir: Path | None,
    checkpoint: dict | None,
    callbacks: Callbacks,
    started: float,
    profile: bool = False,
) -> dict[str, Any]:
    dev = select_device(args["device"])
    is_distributed = distributed.setup(dev)
    try:
        with ExitStack() as stack:
            if save_dir is not None and distributed.is_main_process():  # resuming: refuse a second process at once
                stack.enter_context(RunLock(save_dir))
            trainer = build_trainer(args, save_dir, checkpoint, dev, is_distributed, callbacks, started, profile)
            if save_dir is None and distributed.is_main_process():
                stack.enter_context(RunLock(trainer.save_dir))
            trainer.fit()
            if not distributed.is_main_process():
                return {}
            return _final_validation(trainer, dev)
    finally:
        distributed.cleanup()


def _final_validation(trainer: Trainer, dev: torch.device) -> dict[str, Any]:
    """Re-validate best.pt exactly as ``yolorep val`` does: load it from disk, fuse, evaluate, write the run files."""
    best = trainer.save_dir / "weights" / "best.pt"
    model = load_checkpoint(best).fuse().to(dev)
    LOGGER.info("validating %s (%s)", best, model.fuse_report)
    per_epoch = trainer.validator
    settings = eval_args(trainer.hyp)
    validator = build_validator(per_epoch.dataset, per_epoch.loader, settings, save_dir=trainer.save_dir)
    results = validator(model, dev)
    log_results(validator, results)
    LOGGER.info("results saved to %s", trainer.save_dir)
    return dict(results, save_dir=str(trainer.save_dir))
