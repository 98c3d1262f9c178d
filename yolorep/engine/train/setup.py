"""``train()``: read paths and flags, build the objects a ``Trainer`` takes, run it, re-validate ``best.pt``."""

from __future__ import annotations

import logging
import shlex
from contextlib import ExitStack
from pathlib import Path
from time import perf_counter
from typing import Any

import torch

from yolorep.engine.checkpoint import load_checkpoint, read_checkpoint
from yolorep.engine.device import select_device
from yolorep.engine.run_dir import RunLock
from yolorep.engine.train import distributed
from yolorep.engine.train.build import build_trainer, initial_weights
from yolorep.engine.train.callbacks import user_hooks
from yolorep.engine.train.checkpoints import restore_best
from yolorep.engine.train.hooks import Hook
from yolorep.engine.train.loggers import check_loggers
from yolorep.engine.train.results import Results
from yolorep.engine.train.resume import run_folder_of
from yolorep.engine.train.trainer import Trainer
from yolorep.engine.train.validation import Validation
from yolorep.engine.val.validator import build_validator, eval_args, log_results
from yolorep.errors import YolorepError
from yolorep.options import TrainOptions

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
    Trainer.check_resumable(checkpoint, last)
    return checkpoint


def train(
    options: TrainOptions | None = None,
    /,
    *,
    callbacks: dict[str, list] | Hook | list[Hook] | None = None,
    profile: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Train a detector; returns the final metrics of ``best.pt`` (fused, pycocotools) with ``save_dir`` added.

    The options are ``TrainOptions`` (or its fields as keywords: ``model``, ``data``, ``epochs``, ``imgsz``,
    ``batch``, ...; ``None`` means the default) and any hyperparameter (``lr0=0.002``, or ``hyp``: a YAML path, a
    mapping or ``Hyperparameters``). With ``resume`` (True for the newest run under ``project``, or a ``last.pt``
    path) the run continues with its own options; only ``data``, ``device``, ``workers``, ``cache`` and ``loggers``
    may change.
    Under ``torchrun`` each process trains on its shard with DDP; ``batch`` is the total.

    ``callbacks`` maps events of ``yolorep.engine.train.callbacks`` to functions of the trainer, or gives
    ``yolorep.engine.train.hooks.Hook`` objects; ``profile`` times phases exactly on a GPU
    (``yolorep benchmark --epoch``).
    """
    started = perf_counter()
    extra = user_hooks(callbacks)
    given = dict(kwargs) if options is None else {**_changed_fields(options), **kwargs}
    checkpoint = None
    if given.get("resume"):
        last = _find_resume_checkpoint(given["resume"], given.get("project") or TrainOptions.project)
        checkpoint = _resume_checkpoint(last)
        args = TrainOptions.from_stored(checkpoint["train_args"]).resumed(given, last)
        check_loggers(args.loggers)  # a logger asked for and not installed stops the run before it starts
        save_dir = run_folder_of(last, checkpoint)  # before anything is written there
        restore_best(save_dir / "weights" / "last.pt", checkpoint)
        if checkpoint["epoch"] + 1 >= args.epochs:  # stopped after its last epoch: finish what remains
            LOGGER.info("%s: all %d epochs are trained; validating best.pt", last, args.epochs)
    else:
        args = TrainOptions.create(given)
        check_loggers(args.loggers)
        if args.weights and "model" not in given and "source" in initial_weights(args.weights):
            args = args.replace(model=args.weights)  # an imported YOLOv6/ultralytics file trains its own architecture
        for checkpoint_path in (args.weights, args.model):
            if isinstance(checkpoint_path, str) and checkpoint_path.endswith(".pt"):
                initial_weights(checkpoint_path)  # a wrong checkpoint fails now, not after the data set is read
        save_dir = None
    return _run(args.to_train_args(), save_dir, checkpoint, extra, started, profile)


def _changed_fields(options: TrainOptions) -> dict[str, Any]:
    """An options object as the keywords that would make it (hyperparameters included)."""
    defaults = TrainOptions()
    changed = {f.name: getattr(options, f.name) for f, spec in options.specs()
               if spec.cli and getattr(options, f.name) != getattr(defaults, f.name)}  # fmt: skip
    changed.pop("hyp", None)
    changed.update({k: getattr(options.hyp, k) for k in options.hyp_set})
    return changed


def _run(
    args: dict[str, Any],
    save_dir: Path | None,
    checkpoint: dict | None,
    callbacks: list[Hook],
    started: float,
    profile: bool = False,
) -> dict[str, Any]:
    dev = select_device(args["device"])
    is_distributed = distributed.setup(dev)
    trainer = None
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
    except KeyboardInterrupt:
        last = (trainer.save_dir if trainer is not None else save_dir or Path(".")) / "weights" / "last.pt"
        if distributed.is_main_process() and last.is_file():  # say how to continue (the CLI prints the message)
            raise KeyboardInterrupt(f"continue with: yolorep train --resume {shlex.quote(str(last))}") from None
        raise
    finally:
        distributed.cleanup()


def _final_validation(trainer: Trainer, dev: torch.device) -> dict[str, Any]:
    """Re-validate best.pt exactly as ``yolorep val`` does: load it from disk, fuse, evaluate, write the run files."""
    best = trainer.save_dir / "weights" / "best.pt"
    model = load_checkpoint(best).fuse().to(dev)
    LOGGER.info("validating %s (%s)", best, model.fuse_report)
    per_epoch = trainer.hook(Validation).validator
    settings = eval_args(trainer.hyp)
    plots = bool(trainer.hook(Results).train_args.get("plots", True))
    validator = build_validator(per_epoch.dataset, per_epoch.loader, settings, save_dir=trainer.save_dir, plots=plots)
    results = validator(model, dev)
    log_results(validator, results)
    trainer.final_metrics = results
    trainer.fire("on_train_end")
    LOGGER.info("results saved to %s", trainer.save_dir)
    return dict(results, save_dir=str(trainer.save_dir))
