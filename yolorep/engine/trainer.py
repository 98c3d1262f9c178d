"""The training loop: multi-branch training, a fused copy of the EMA model validated every epoch.

``Trainer`` takes ready objects (model, loss, optimizer, loader, validator, schedule); ``yolorep.engine.
train_setup.train`` builds them from paths and flags. What is written each epoch (results.csv, plots, TensorBoard)
is done by callbacks (``yolorep.engine.callbacks``), which users can add to.
"""

from __future__ import annotations

import logging
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from yolorep.engine import distributed
from yolorep.engine.callbacks import Callbacks
from yolorep.engine.checkpoint import load_state_dict_strict
from yolorep.engine.device import amp_dtype, cudnn_autotune
from yolorep.engine.optim import ModelEMA
from yolorep.engine.phases import PhaseTimer
from yolorep.engine.schedule import Schedule
from yolorep.engine.train_checkpoints import save_epoch
from yolorep.engine.validator import Validator
from yolorep.errors import CheckpointError, YolorepError
from yolorep.logs import progress
from yolorep.nn.fuse import fused_copy

__all__ = ["TrainState", "Trainer", "fitness"]

LOGGER = logging.getLogger(__name__)
MAX_BAD_STEPS = 10
N_PLOTTED_BATCHES = 3
PROGRESS_SECONDS = 0.5  # the losses shown are read back from a GPU (a sync) at most this often


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
    elapsed: float = 0.0  # seconds of fitting before this process started (time budgets count them)
    cycles: list[float] = field(default_factory=list)  # wall seconds of each epoch: training to saving


class Trainer:
    """Train ``model`` with ``loss_fn`` and ``optimizer`` on ``train_loader``; validate with ``validator``.

    Args:
        model: the multi-branch model on ``device`` (DDP-wrapped when distributed).
        hyp: hyperparameters (cfg/default.yaml merged with overrides).
        schedule: epochs, learning-rate curve, warm-up, mosaic closing and time budget.
        save_dir: run folder; weights go to ``save_dir/weights``. Only rank 0 writes.
        train_args: plain dict of the run's options, stored in checkpoints for ``--resume``.
        callbacks: run at the events of ``yolorep.engine.callbacks``.
        started: ``time.perf_counter()`` when the run started (a time budget counts setup too).
        profile: synchronise a GPU at the end of each timed phase, so ``epoch_phases`` attributes exactly.
        val_period: validate every this many epochs (and always the last): best.pt is chosen among those.
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
        schedule: Schedule,
        save_dir: Path,
        device: torch.device,
        seed: int = 0,
        patience: int = 0,
        train_args: dict[str, Any] | None = None,
        callbacks: Callbacks | None = None,
        started: float | None = None,
        profile: bool = False,
        val_period: int = 1,
    ) -> None:
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.train_loader, self.validator, self.schedule = train_loader, validator, schedule
        self.hyp, self.device, self.seed, self.patience, self.val_period = hyp, device, seed, patience, val_period
        self.save_dir, self.weights_dir = save_dir, save_dir / "weights"
        self.train_args = train_args or {}
        self.callbacks = callbacks or Callbacks()
        self.started = time.perf_counter() if started is None else started
        self.is_main = distributed.is_main_process()
        self.raw_model = getattr(model, "module", model)
        self.ema = ModelEMA(self.raw_model, hyp["ema_decay"], hyp["ema_tau"])
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        self.amp_dtype = amp_dtype(device) if hyp.get("amp", True) else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        world_batch = train_loader.batch_size * distributed.world_size()
        self.accumulate = max(round(hyp["nbs"] / world_batch), 1)
        self.state = TrainState()
        self.bad_steps = 0
        self.epoch, self.stop = -1, False
        self.metrics: dict[str, Any] = {}
        self.losses = torch.zeros(3)
        # What epochs of this process spent after validation (callbacks and plots, then checkpoints); the first
        # one draws results.png for the first time, the later ones rarely (ResultsFiles), so they set the pace.
        self._after_val_seconds: list[float] = []
        self._checkpoint_seconds = 0.0  # the last checkpoint write
        self._val_seconds = 0.0  # what the last validation took
        self._slowest_results = 0.0  # the slowest end-of-epoch callbacks (results.png is redrawn at the end too)
        self.timer = PhaseTimer(device, sync=profile)
        self.epoch_phases: list[dict[str, float]] = []  # seconds per phase (PHASES) of each epoch of this process

    @property
    def epochs(self) -> int:
        """Epochs planned (with a time budget, re-fitted after every epoch)."""
        return self.schedule.epochs

    @property
    def elapsed(self) -> float:
        """Seconds of fitting so far, earlier processes of a resumed run included."""
        return self.state.elapsed + time.perf_counter() - self.started

    def load_train_state(self, checkpoint: dict[str, Any], where: str = "last.pt") -> None:
        """Restore model, optimizer, EMA, scaler, scheduler (with the plan) and counters from a ``last.pt`` dict.

        Raises:
            CheckpointError: the state does not fit this run's model or optimizer (naming ``where``).
        """
        saved = checkpoint["train_state"]
        load_state_dict_strict(self.raw_model, saved["model"], where)
        load_state_dict_strict(self.ema.ema, checkpoint["state_dict"], where)
        try:
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            if saved["scaler"]:  # empty from a run without fp16 loss scaling (CPU, bf16, --amp false): keep ours
                self.scaler.load_state_dict(saved["scaler"])
            self.ema.updates = int(saved["ema_updates"])
            self.state = TrainState(
                epoch=int(checkpoint["epoch"]),
                best_fitness=float(saved["best_fitness"]),
                best_epoch=int(saved.get("best_epoch", -1)),
                epochs_without_improvement=int(saved.get("epochs_without_improvement", 0)),
                history=list(saved["history"]),
                elapsed=float(saved.get("elapsed", 0.0)),
                cycles=[float(s) for s in saved.get("cycles", [])],
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            message = f"{where}: its training state does not fit this run ({err}); start a new run"
            raise CheckpointError(message) from None

    # ---- loop -----------------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train from ``state.epoch + 1`` to the planned epochs; returns the last epoch's validation metrics."""
        if self.is_main:
            LOGGER.info("schedule: %s", self.schedule.describe())
        self.callbacks.run("on_train_start", self)
        epoch = self.state.epoch + 1
        while epoch < self.epochs and not self.stop:
            self.epoch, start = epoch, time.perf_counter()
            self._prepare_epoch(epoch)
            self.callbacks.run("on_train_epoch_start", self)
            with cudnn_autotune(not self.train_loader.dataset.rect):  # fixed input sizes: tune once per shape
                self.losses, images_seen = self._train_one_epoch(epoch)
            self.scheduler.step()
            train_time = time.perf_counter() - start
            self.callbacks.run("on_train_epoch_end", self)
            if self.is_main:
                self._end_epoch(epoch, images_seen, train_time, start)
            self.epoch_phases.append({**self.timer.reset(), "epoch": time.perf_counter() - start})
            self.stop, epochs = distributed.broadcast_object((self.stop, self.epochs))
            self.schedule.epochs = epochs  # every rank follows rank 0's plan
            epoch += 1
        self.callbacks.run("on_fit_end", self)
        return self.metrics

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
        updates_per_epoch = math.ceil(len(self.train_loader) / self.accumulate)
        self.ema.tau = self.schedule.ema_tau(self.hyp["ema_tau"], updates_per_epoch)
        dataset = self.train_loader.dataset
        mosaic = dataset.augment and not dataset.rect and not self.schedule.mosaic_closed(epoch)
        if mosaic != dataset.mosaic_enabled:  # loader workers start anew each epoch, so they pick this up
            if mosaic:
                LOGGER.info("mosaic on again: the plan grew to %d epochs", self.epochs)
            else:
                LOGGER.info("closing mosaic for the last %d epochs", self.epochs - epoch)
            dataset.mosaic_enabled = mosaic

    def _train_one_epoch(self, epoch: int) -> tuple[torch.Tensor, int]:
        self.model.train()
        n_batches = len(self.train_loader)
        warmup_iters = round(self.schedule.warmup_epochs * n_batches)
        mean_losses = torch.zeros(3, device=self.device)
        images_seen, pending = 0, 0
        bar = self._progress(epoch, n_batches)
        tic = waited = shown = time.perf_counter()
        timer = self.timer
        for i, (images, targets, _) in enumerate(bar if bar is not None else self.train_loader):
            timer.add("data", time.perf_counter() - waited)
            step = i + n_batches * epoch
            if step < warmup_iters:
                self._warmup(step, warmup_iters, epoch)
            if self.is_main and epoch == 0 and i < N_PLOTTED_BATCHES:
                with timer("plots"):
                    _plot_batch(images, targets, self.raw_model.names, self.save_dir / f"train_batch{i}.jpg")
            with timer("to_device"):
                images = images.to(self.device, non_blocking=True).float() / 255
                targets = targets.to(self.device)
            # DDP all-reduces gradients only in the backward of a step that updates the weights (no_sync otherwise)
            syncing = distributed.gradient_sync(self.model, pending + 1 >= self.accumulate or i == n_batches - 1)
            with syncing, torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                with timer("forward"):
                    maps = self.model(images)
                with timer("loss"):
                    loss, items = self.loss_fn(maps, self.raw_model.stride, targets)
            loss = loss * distributed.world_size()  # DDP averages gradients across ranks; the loss is a per-rank sum
            if not distributed.all_true(bool(torch.isfinite(loss)), self.device):
                self._skip_step(epoch, i, items)
                pending = 0
                continue
            self.bad_steps = 0
            with timer("backward"):
                self.scaler.scale(loss).backward()
            pending += 1
            if pending >= self.accumulate or i == n_batches - 1:
                self._optimizer_step()
                pending = 0
            mean_losses = (mean_losses * i + items) / (i + 1)
            images_seen += images.shape[0]
            self.callbacks.run("on_train_batch_end", self)
            if bar is not None and (time.perf_counter() - shown >= PROGRESS_SECONDS or i == n_batches - 1):
                shown = time.perf_counter()
                speed = images_seen / max(shown - tic, 1e-9)
                box, cls, dfl = mean_losses.tolist()
                bar.set_postfix_str(
                    f"box {box:.3f} cls {cls:.3f} dfl {dfl:.3f} inst {len(targets)} {speed:.1f} img/s", refresh=False
                )
            waited = time.perf_counter()
        return mean_losses.cpu(), images_seen * distributed.world_size()

    def _warmup(self, step: int, warmup_iters: int, epoch: int) -> None:
        factor = self.schedule(epoch)
        for index, group in enumerate(self.optimizer.param_groups):
            start = self.hyp["warmup_bias_lr"] if index == 2 else 0.0
            group["lr"] = float(np.interp(step, [0, warmup_iters], [start, group["initial_lr"] * factor]))
            if "momentum" in group:
                group["momentum"] = float(
                    np.interp(step, [0, warmup_iters], [self.hyp["warmup_momentum"], self.hyp["momentum"]])
                )

    def _optimizer_step(self) -> None:
        with self.timer("optimizer"):
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.hyp["grad_clip"])
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        with self.timer("ema"):
            self.ema.update(self.model)

    def _skip_step(self, epoch: int, batch: int, items: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.bad_steps += 1
        LOGGER.warning(
            "epoch %d batch %d: non-finite loss (box, cls, dfl = %s); step skipped, weights unchanged",
            epoch + 1, batch, [round(v, 4) for v in items.tolist()],
        )  # fmt: skip
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
        planned = self.epochs if self.schedule.fitted else "?"  # a budget's epochs are known after the first
        return progress(self.train_loader, desc=f"epoch {epoch + 1}/{planned}", total=n_batches, unit="batch")

    # ---- end of epoch: validate the fused EMA, log, save ------------------------------------------------------
    def _validate(self) -> float:
        """Validate a fused copy of the EMA model into ``metrics``; returns the seconds it took."""
        tic = time.perf_counter()
        if self.validator is not None:
            with self.timer("fuse"):
                fused = fused_copy(self.ema.ema)
            with self.timer("validation"):
                self.metrics = self.validator(fused, self.device)
        else:
            self.metrics = {"map50_95": 0.0, "map50": 0.0}
        self.callbacks.run("on_val_end", self)
        return time.perf_counter() - tic

    def _end_epoch(self, epoch: int, images_seen: int, train_time: float, started: float) -> None:
        validated = (epoch + 1) % self.val_period == 0 or epoch + 1 >= self.epochs
        val_time = self._validate() if validated else 0.0
        score = fitness(self.metrics) if validated else -1.0
        improved = validated and score > self.state.best_fitness
        if validated:
            self.state.best_fitness = max(score, self.state.best_fitness)
            self.state.best_epoch = epoch if improved else self.state.best_epoch
            self.state.epochs_without_improvement = 0 if improved else self.state.epochs_without_improvement + 1
        self.state.epoch = epoch
        if self.patience and self.state.epochs_without_improvement >= self.patience:
            LOGGER.info("no improvement for %d epochs: stopping early", self.patience)
            self.stop = True
        # An epoch costs its training and validation and what follows them (callbacks, checkpoints), the latter
        # estimated from earlier epochs; the end of training about two validations (the final one loads best.pt
        # and plots), a checkpoint write and the slowest results callbacks (results.png is drawn once more).
        self._val_seconds = val_time or self._val_seconds
        now = time.perf_counter()
        later = self._after_val_seconds[1:]
        after_val = statistics.median(later) if later else self._checkpoint_seconds
        cycles = [*self.state.cycles, now - started + after_val]
        ending = 2 * (self._val_seconds + self._checkpoint_seconds) + self._slowest_results
        self.schedule.refit(epoch + 1, self.elapsed, cycles, ending)
        if not validated and epoch + 1 >= self.epochs:  # the plan ended here: the last epoch is always validated
            return self._end_epoch(epoch, images_seen, train_time, started)
        self.state.history.append(self._results_row(epoch, images_seen, train_time, val_time, validated))
        with self.timer("results"):
            self.callbacks.run("on_fit_epoch_end", self)
        saving = time.perf_counter()
        self._slowest_results = max(self._slowest_results, saving - now)
        self.state.cycles.append(cycles[-1])  # last.pt carries the estimate; replaced by the measurement below
        with self.timer("checkpoints"):
            save_epoch(self, improved)
        self.callbacks.run("on_model_save", self)
        saved = time.perf_counter()
        self._checkpoint_seconds = saved - saving
        self._after_val_seconds.append(saved - now)
        self.state.cycles[-1] = saved - started
        row = self.state.history[-1]
        LOGGER.info(
            "epoch %d/%d: mAP50-95 %.4f mAP50 %.4f (%s), %.1f img/s, %.1fs",
            epoch + 1, self.epochs, row["metrics/mAP50-95(est)"], row["metrics/mAP50(est)"],
            "fused EMA model, " + self.metrics.get("source", "no validator") if validated else "not validated",
            row["train_images_per_s"], train_time,
        )  # fmt: skip

    def _results_row(
        self, epoch: int, images_seen: int, train_time: float, val_time: float, validated: bool
    ) -> dict[str, float]:
        box, cls, dfl = self.losses.tolist()
        metrics = self.metrics if validated else {"map50": math.nan, "map50_95": math.nan, "val_loss": [math.nan] * 3}
        row = {"epoch": epoch + 1, "train/box_loss": box, "train/cls_loss": cls, "train/dfl_loss": dfl}
        row.update({f"val/{k}_loss": v for k, v in zip(("box", "cls", "dfl"), metrics.get("val_loss") or [])})
        row.update({
            "metrics/precision": metrics.get("precision", math.nan),
            "metrics/recall": metrics.get("recall", math.nan),
            "metrics/mAP50(est)": metrics["map50"],
            "metrics/mAP50-95(est)": metrics["map50_95"],
            "train_images_per_s": images_seen / max(train_time, 1e-9),
            "train_time_s": train_time,
            "val_time_s": val_time,
            "epoch_time_s": train_time + val_time,
        })  # fmt: skip
        row.update({f"lr/pg{i}": group["lr"] for i, group in enumerate(self.optimizer.param_groups)})
        return row


def _plot_batch(images: torch.Tensor, targets: torch.Tensor, names: list[str], path: Path) -> None:
    from yolorep.plots import plot_training_batch

    plot_training_batch(images, targets, names, path)
