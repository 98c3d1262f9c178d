"""The training loop: multi-branch training, a fused copy of the EMA model validated every epoch.

``Trainer`` takes ready objects (model, loss, optimizer, loader, validator); ``yolorep.engine.train_setup.train``
builds them from paths and flags.
"""

from __future__ import annotations

import csv
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from yolorep.atomic import atomic_path
from yolorep.engine import distributed
from yolorep.engine.checkpoint import load_state_dict_strict, save_checkpoint, write_atomic
from yolorep.engine.optim import ModelEMA, lr_lambda
from yolorep.engine.validator import Validator
from yolorep.errors import CheckpointError, YolorepError
from yolorep.logs import progress
from yolorep.nn.fuse import fused_copy

__all__ = ["TrainState", "Trainer", "fitness"]

LOGGER = logging.getLogger(__name__)
MAX_BAD_STEPS = 10
N_PLOTTED_BATCHES = 3


def fitness(metrics: dict[str, Any]) -> float:
    """What "best" means: mAP50-95, with a little mAP50 to break ties early in training."""
    return 0.9 * metrics["map50_95"] + 0.1 * metrics["map50"]


@dataclass
class TrainState:
    """Everything besides weights that a resumed run needs to continue exactly."""

    epoch: int = -1  # last completed epoch (0-based)
    best_fitness: float = -1.0
    best_epoch: int = -1  # the epoch best.pt holds
    epochs_without_improvement: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """Train ``model`` with ``loss_fn`` and ``optimizer`` on ``train_loader``; validate with ``validator``.

    Args:
        model: the multi-branch model on ``device`` (DDP-wrapped when distributed).
        hyp: hyperparameters (cfg/default.yaml merged with overrides).
        save_dir: run folder; weights go to ``save_dir/weights``. Only rank 0 writes.
        train_args: plain dict of the run's options, stored in checkpoints for ``--resume``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        optimizer: torch.optim.Optimizer,
        train_loader: torch.utils.data.DataLoader,
        validator: Validator | None,
        *,
        hyp: dict[str, Any],
        epochs: int,
        save_dir: Path,
        device: torch.device,
        seed: int = 0,
        patience: int = 0,
        train_args: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.train_loader, self.validator = train_loader, validator
        self.hyp, self.epochs, self.device, self.seed, self.patience = hyp, epochs, device, seed, patience
        self.save_dir, self.weights_dir = save_dir, save_dir / "weights"
        self.train_args = train_args or {}
        self.is_main = distributed.is_main_process()
        self.raw_model = getattr(model, "module", model)
        self.ema = ModelEMA(self.raw_model, hyp["ema_decay"], hyp["ema_tau"])
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(epochs, hyp["lrf"], hyp["cos_lr"]))
        self.amp_dtype = amp_dtype(device) if hyp.get("amp", True) else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        world_batch = train_loader.batch_size * distributed.world_size()
        self.accumulate = max(round(hyp["nbs"] / world_batch), 1)
        self.state = TrainState()
        self.bad_steps = 0
        self.tensorboard = _tensorboard(save_dir) if self.is_main else None

    # ---- resume ---------------------------------------------------------------------------------------------
    def load_train_state(self, checkpoint: dict[str, Any], where: str = "last.pt") -> None:
        """Restore model, optimizer, EMA, scaler, scheduler and counters from a ``last.pt`` dict.

        Raises:
            CheckpointError: the state does not fit this run's model or optimizer (naming ``where``).
        """
        saved = checkpoint["train_state"]
        load_state_dict_strict(self.raw_model, saved["model"], where)
        load_state_dict_strict(self.ema.ema, checkpoint["state_dict"], where)
        try:
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            self.scaler.load_state_dict(saved["scaler"])
            self.ema.updates = int(saved["ema_updates"])
            self.state = TrainState(
                epoch=int(checkpoint["epoch"]),
                best_fitness=float(saved["best_fitness"]),
                best_epoch=int(saved.get("best_epoch", -1)),
                epochs_without_improvement=int(saved.get("epochs_without_improvement", 0)),
                history=list(saved["history"]),
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            message = f"{where}: its training state does not fit this run ({err}); start a new run"
            raise CheckpointError(message) from None

    # ---- loop -----------------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train from ``state.epoch + 1`` to ``epochs``; returns the last epoch's validation metrics."""
        metrics: dict[str, Any] = {}
        for epoch in range(self.state.epoch + 1, self.epochs):
            start = time.perf_counter()
            self._prepare_epoch(epoch)
            losses, images_seen = self._train_one_epoch(epoch)
            self.scheduler.step()
            train_time = time.perf_counter() - start
            stop = False
            if self.is_main:
                metrics = self._end_epoch(epoch, losses, images_seen, train_time)
                stop = bool(self.patience) and self.state.epochs_without_improvement >= self.patience
                if stop:
                    LOGGER.info("no improvement for %d epochs: stopping early", self.patience)
            if distributed.broadcast_object(stop):
                break
        if self.tensorboard is not None:
            self.tensorboard.close()
        return metrics

    def _prepare_epoch(self, epoch: int) -> None:
        # Seeding from (seed, epoch) makes an epoch's data order and augmentation independent of what ran
        # before it, so a resumed run continues exactly like an uninterrupted one.
        epoch_seed = self.seed + 1000 * epoch + distributed.rank()
        random.seed(epoch_seed)
        np.random.seed(epoch_seed % 2**32)
        torch.manual_seed(epoch_seed)
        if self.train_loader.generator is not None:
            self.train_loader.generator.manual_seed(epoch_seed)
        sampler = self.train_loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        dataset = self.train_loader.dataset
        if dataset.mosaic_enabled and epoch >= self.epochs - int(self.hyp["close_mosaic"]):
            # loader workers start anew each epoch, so they pick this up
            LOGGER.info("closing mosaic for the last %d epochs", self.epochs - epoch)
            dataset.mosaic_enabled = False

    def _train_one_epoch(self, epoch: int) -> tuple[torch.Tensor, int]:
        self.model.train()
        n_batches = len(self.train_loader)
        warmup_iters = round(self.hyp["warmup_epochs"] * n_batches)
        mean_losses = torch.zeros(3, device=self.device)
        images_seen, pending = 0, 0
        bar = self._progress(epoch, n_batches)
        tic = time.perf_counter()
        for i, (images, targets, _) in enumerate(bar if bar is not None else self.train_loader):
            step = i + n_batches * epoch
            if step < warmup_iters:
                self._warmup(step, warmup_iters, epoch)
            if self.is_main and epoch == 0 and i < N_PLOTTED_BATCHES:
                _plot_batch(images, targets, self.raw_model.names, self.save_dir / f"train_batch{i}.jpg")
            images = images.to(self.device, non_blocking=True).float() / 255
            targets = targets.to(self.device)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                loss, items = self.loss_fn(self.model(images), self.raw_model.stride, targets)
            loss = loss * distributed.world_size()  # DDP averages gradients across ranks; the loss is a per-rank sum
            if not distributed.all_true(bool(torch.isfinite(loss)), self.device):
                self._skip_step(epoch, i, items)
                pending = 0
                continue
            self.bad_steps = 0
            self.scaler.scale(loss).backward()
            pending += 1
            if pending >= self.accumulate or i == n_batches - 1:
                self._optimizer_step()
                pending = 0
            mean_losses = (mean_losses * i + items) / (i + 1)
            images_seen += images.shape[0]
            if bar is not None:
                speed = images_seen / max(time.perf_counter() - tic, 1e-9)
                box, cls, dfl = mean_losses.tolist()
                bar.set_postfix_str(
                    f"box {box:.3f} cls {cls:.3f} dfl {dfl:.3f} inst {len(targets)} {speed:.1f} img/s", refresh=False
                )
        return mean_losses.cpu(), images_seen * distributed.world_size()

    def _warmup(self, step: int, warmup_iters: int, epoch: int) -> None:
        factor = self.scheduler.lr_lambdas[0](epoch)
        for index, group in enumerate(self.optimizer.param_groups):
            start = self.hyp["warmup_bias_lr"] if index == 2 else 0.0
            group["lr"] = float(np.interp(step, [0, warmup_iters], [start, group["initial_lr"] * factor]))
            if "momentum" in group:
                group["momentum"] = float(
                    np.interp(step, [0, warmup_iters], [self.hyp["warmup_momentum"], self.hyp["momentum"]])
                )

    def _optimizer_step(self) -> None:
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.hyp["grad_clip"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.model)

    def _skip_step(self, epoch: int, batch: int, items: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.bad_steps += 1
        LOGGER.warning(
            "epoch %d batch %d: non-finite loss (box, cls, dfl = %s); step skipped, weights unchanged",
            epoch + 1,
            batch,
            [round(v, 4) for v in items.tolist()],
        )
        if self.bad_steps >= MAX_BAD_STEPS:
            raise YolorepError(
                f"{self.save_dir}: {MAX_BAD_STEPS} consecutive non-finite losses; training stopped with the last good "
                "weights in weights/last.pt; lower lr0, check the labels, or set amp: false in --hyp"
            )

    def _progress(self, epoch: int, n_batches: int):
        """A progress display over the loader on rank 0 (a bar on a terminal, lines when redirected); None on
        other ranks."""
        if not self.is_main:
            return None
        return progress(self.train_loader, desc=f"epoch {epoch + 1}/{self.epochs}", total=n_batches, unit="batch")

    # ---- end of epoch: validate the fused EMA, log, save ------------------------------------------------------
    def _end_epoch(self, epoch: int, losses: torch.Tensor, images_seen: int, train_time: float) -> dict[str, Any]:
        fused = fused_copy(self.ema.ema)
        metrics = self.validator(fused, self.device) if self.validator is not None else {"map50_95": 0.0, "map50": 0.0}
        score = fitness(metrics)
        improved = score > self.state.best_fitness
        self.state.best_fitness = max(score, self.state.best_fitness)
        self.state.best_epoch = epoch if improved else self.state.best_epoch
        self.state.epochs_without_improvement = 0 if improved else self.state.epochs_without_improvement + 1
        self.state.epoch = epoch
        row = self._results_row(epoch, losses, metrics, images_seen, train_time)
        self.state.history.append(row)
        self._write_results()
        self._save(epoch, metrics, best=improved)
        LOGGER.info(
            "epoch %d/%d: mAP50-95 %.4f mAP50 %.4f (%s, fused EMA model), %.1f img/s, %.1fs",
            epoch + 1,
            self.epochs,
            metrics["map50_95"],
            metrics["map50"],
            metrics.get("source", "no validation"),
            row["train_images_per_s"],
            train_time,
        )
        return metrics

    def _results_row(
        self, epoch: int, losses: torch.Tensor, metrics: dict[str, Any], images_seen: int, train_time: float
    ) -> dict[str, float]:
        box, cls, dfl = losses.tolist()
        row = {
            "epoch": epoch + 1,
            "train/box_loss": box,
            "train/cls_loss": cls,
            "train/dfl_loss": dfl,
            "metrics/precision": metrics.get("precision", 0.0),
            "metrics/recall": metrics.get("recall", 0.0),
            "metrics/mAP50(est)": metrics["map50"],
            "metrics/mAP50-95(est)": metrics["map50_95"],
            "train_images_per_s": images_seen / max(train_time, 1e-9),
            "epoch_time_s": train_time,
        }
        row.update({f"lr/pg{i}": group["lr"] for i, group in enumerate(self.optimizer.param_groups)})
        if self.tensorboard is not None:
            for key, value in row.items():
                self.tensorboard.add_scalar(key, value, epoch + 1)
        return row

    def _write_results(self) -> None:
        from yolorep.plots import plot_results_csv

        csv_path = self.save_dir / "results.csv"
        with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.state.history[0]))
            writer.writeheader()
            writer.writerows(self.state.history)
        plot_results_csv(csv_path, self.save_dir / "results.png")

    def _save(self, epoch: int, metrics: dict[str, Any], best: bool) -> None:
        summary = {k: v for k, v in metrics.items() if k != "per_class"}
        meta = {
            "epoch": epoch,
            "metrics": summary,
            "train_args": self.train_args,
            "eval_args": {
                "imgsz": int(self.train_args.get("imgsz", 640)),
                "conf": float(self.hyp["val_conf"]),
                "iou": float(self.hyp["val_iou"]),
                "max_det": int(self.hyp["max_det"]),
            },
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        train_state = {
            "model": {k: v.detach().cpu() for k, v in self.raw_model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema_updates": self.ema.updates,
            "best_fitness": self.state.best_fitness,
            "best_epoch": self.state.best_epoch,
            "epochs_without_improvement": self.state.epochs_without_improvement,
            "history": self.state.history,
        }
        # last.pt first: it holds everything best.pt would (the same EMA weights and metadata, and best_epoch), so a
        # run stopped before best.pt is written gets it back on resume (restore_best); the other order lost it.
        save_checkpoint(self.ema.ema, self.weights_dir / "last.pt", **meta, train_state=train_state)
        if best:
            save_checkpoint(self.ema.ema, self.weights_dir / "best.pt", **meta)


def restore_best(last: Path, checkpoint: dict[str, Any]) -> bool:
    """Write ``best.pt`` from ``last.pt`` when the epoch ``last.pt`` holds was the best and ``best.pt`` does not
    hold it (the run stopped between the two writes). Returns whether it did."""
    best_epoch = checkpoint["train_state"].get("best_epoch")
    best = last.parent / "best.pt"
    if best_epoch != checkpoint["epoch"]:
        return False
    if best.is_file():
        try:
            if torch.load(best, map_location="cpu", weights_only=True).get("epoch") == best_epoch:
                return False
        except Exception:  # an unreadable best.pt is replaced too
            pass
    write_atomic({k: v for k, v in checkpoint.items() if k != "train_state"}, best)
    LOGGER.info("%s: restored from %s (the run stopped before writing it)", best, last.name)
    return True


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision for training: fp16 (with loss scaling) on CUDA; bf16 on CPUs with native bf16 units
    (AVX512-BF16 / AMX), where it trains about 1.7x faster than fp32; otherwise none."""
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16
    return None


def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and torch.cpu._is_avx512_bf16_supported()
    except (AttributeError, RuntimeError):  # private probes: absent in some builds
        return False


def _plot_batch(images: torch.Tensor, targets: torch.Tensor, names: list[str], path: Path) -> None:
    from yolorep.plots import plot_training_batch

    plot_training_batch(images, targets, names, path)


def _tensorboard(save_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # TensorBoard is optional
        return None
    return SummaryWriter(str(save_dir))
