"""The training loop: epochs, batches, forward, loss, backward and optimizer steps, and the hooks it calls.

Everything else a run does (the EMA, validation, the best model and patience, the time budget, results files,
checkpoints, users' callbacks) is a hook (``yolorep.engine.train.hooks``) that owns its state.
``Trainer.state_dict`` and ``load_state_dict`` are the one place that knows what ``last.pt`` carries to resume a run
exactly; ``yolorep.engine.train.build.build_trainer`` builds a trainer and its hooks from a run's options.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from yolorep.engine.checkpoint import load_state_dict_strict
from yolorep.engine.device import amp_dtype, cudnn_autotune
from yolorep.engine.train import distributed
from yolorep.engine.train.ema import EMA
from yolorep.engine.train.hooks import Hook, check_state_keys, stage_methods
from yolorep.engine.train.optim import ModelEMA
from yolorep.engine.train.phases import PhaseTimer
from yolorep.engine.train.records import Batch, EpochRecord, LoopSettings, TrainState
from yolorep.engine.train.schedule import Schedule
from yolorep.errors import CheckpointError, YolorepError
from yolorep.logs import progress

__all__ = ["Batch", "EpochRecord", "LoopSettings", "TrainState", "Trainer"]

LOGGER = logging.getLogger(__name__)
MAX_BAD_STEPS = 10
PROGRESS_SECONDS = 0.5  # the losses shown are read back from a GPU (a sync) at most this often
LOOP_STATE = ("model", "optimizer", "scheduler", "scaler")  # what the loop itself keeps in last.pt's train_state
# What every last.pt since format 2 holds in train_state (the hooks' keys among them), checked before resuming.
RESUME_REQUIRED = (*LOOP_STATE, "ema_updates", "best_fitness", "history")
H = TypeVar("H", bound=Hook)


class Trainer:
    """Train ``model`` with ``loss_fn`` and ``optimizer`` on ``train_loader`` over the epochs ``schedule`` plans,
    calling ``hooks`` at the stages of ``yolorep.engine.train.hooks`` (in the order given).

    Callbacks read ``epoch``, ``state``, ``metrics``, ``losses``, ``schedule``, ``save_dir``, ``model``, ``ema``,
    ``optimizer`` and may set ``stop``.

    Args:
        model: the multi-branch model on the device (DDP-wrapped when distributed).
        loss_fn: ``(maps, strides, targets) -> (loss, [box, cls, dfl])``.
        optimizer: over ``model``'s parameters; ``schedule`` drives its learning rate (``LambdaLR``).
        train_loader: batches of ``(images, targets, paths)``.
        schedule: epochs, learning-rate curve, warm-up, mosaic closing and time budget.
        hooks: the run's policies and the user's callbacks.
        settings: hyperparameters, device, run folder, seed, profiling.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        optimizer: torch.optim.Optimizer,
        train_loader: torch.utils.data.DataLoader,
        schedule: Schedule,
        hooks: Sequence[Hook],
        settings: LoopSettings,
    ) -> None:
        self.model, self.loss_fn, self.optimizer, self.train_loader = model, loss_fn, optimizer, train_loader
        self.schedule, self.settings, self.hooks = schedule, settings, list(hooks)
        check_state_keys(self.hooks, LOOP_STATE)
        self._stages = stage_methods(self.hooks)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        self.amp_dtype = amp_dtype(settings.device) if settings.hyp.get("amp", True) else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        world_batch = train_loader.batch_size * distributed.world_size()
        self.accumulate = max(round(settings.hyp["nbs"] / world_batch), 1)
        self.timer = PhaseTimer(settings.device, sync=settings.profile)  # seconds per phase (train.phases)
        self.epoch, self.last_epoch, self.stop = -1, -1, False  # the epoch training, the last one completed
        self.this_epoch = EpochRecord(started=time.perf_counter())
        self.batch: Batch | None = None
        self.losses = torch.zeros(3)  # the last epoch's mean [box, cls, dfl]
        self.metrics: dict[str, Any] = {}  # the last validation's
        self.final_metrics: dict[str, Any] = {}  # best.pt's, scored by pycocotools after the loop (on_train_end)
        self.bad_steps = 0  # consecutive non-finite losses

    # ---- what hooks and callbacks read ----------------------------------------------------------------------
    @property
    def epochs(self) -> int:
        """Epochs planned (with a time budget, re-fitted after every epoch)."""
        return self.schedule.epochs

    @property
    def raw_model(self) -> nn.Module:
        return getattr(self.model, "module", self.model)

    @property
    def is_main(self) -> bool:
        return distributed.is_main_process()

    @property
    def device(self) -> torch.device:
        return self.settings.device

    @property
    def save_dir(self) -> Path:
        return self.settings.save_dir

    @property
    def hyp(self) -> dict[str, Any]:
        return self.settings.hyp

    @property
    def ema(self) -> ModelEMA | None:
        """The moving average of the weights, when an ``EMA`` hook keeps one."""
        ema = self.hook(EMA)
        return None if ema is None else ema.average

    @property
    def eval_model(self) -> nn.Module:
        """The model of record, validated and saved: the EMA's when there is one, else the trained one."""
        return self.raw_model if self.ema is None else self.ema.ema

    @property
    def state(self) -> TrainState:
        """The last completed epoch and what the hooks keep (best model, results rows, time), read-only."""
        kept: dict[str, Any] = {}
        for hook in self.hooks:
            kept.update(hook.state_dict())
        return TrainState(epoch=self.last_epoch, **{f.name: kept[f.name] for f in fields(TrainState) if f.name in kept})

    def hook(self, kind: type[H]) -> H | None:
        """The first hook of type ``kind``, or None."""
        return next((hook for hook in self.hooks if isinstance(hook, kind)), None)

    # ---- the resume record ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What ``last.pt`` carries besides the model of record to resume exactly: ``{"epoch": last completed epoch,
        "train_state": {...}}``. ``train_state`` holds the trained (multi-branch) weights, the optimizer, the
        scheduler (with the plan) and the scaler, and every hook's state (``ema_updates``, ``best_fitness``,
        ``best_epoch``, ``epochs_without_improvement``, ``history``, ``elapsed``, ``cycles``, ...); the EMA's
        weights are the checkpoint's own ``state_dict``."""
        train_state = {
            "model": {k: v.detach().cpu() for k, v in self.raw_model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        for hook in self.hooks:
            train_state.update(hook.state_dict())
        return {"epoch": self.last_epoch, "train_state": train_state}

    def load_state_dict(self, checkpoint: dict[str, Any], where: str = "last.pt") -> None:
        """Restore everything ``state_dict`` saved from a ``last.pt`` dict (format 2 or older, by any version).

        Raises:
            CheckpointError: the state does not fit this run's model or optimizer (naming ``where``).
        """
        saved = checkpoint["train_state"]
        load_state_dict_strict(self.raw_model, saved["model"], where)
        if self.ema is not None:
            load_state_dict_strict(self.ema.ema, checkpoint["state_dict"], where)
        try:
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            if saved["scaler"]:  # empty from a run without fp16 loss scaling (CPU, bf16, --amp false): keep ours
                self.scaler.load_state_dict(saved["scaler"])
            for hook in self.hooks:
                hook.load_state_dict({k: saved[k] for k in hook.state_dict() if k in saved})
            self.last_epoch = int(checkpoint["epoch"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            message = f"{where}: its training state does not fit this run ({err}); start a new run"
            raise CheckpointError(message) from None

    @staticmethod
    def check_resumable(checkpoint: dict[str, Any], where: str | Path) -> None:
        """Raise ``CheckpointError`` unless ``checkpoint`` (read by ``read_checkpoint``) is a ``last.pt`` a run can
        continue from."""
        state = checkpoint.get("train_state")
        if not isinstance(state, dict) or any(k not in state for k in RESUME_REQUIRED):
            raise CheckpointError(f"{where}: has no training state to resume from; use weights/last.pt of a run")
        if checkpoint.get("fused"):
            raise CheckpointError(
                f"{where}: holds a fused model, which cannot be trained; resume from the run's last.pt"
            )
        if not isinstance(checkpoint.get("train_args"), dict) or not isinstance(checkpoint.get("epoch"), int):
            raise CheckpointError(f"{where}: train_args or epoch missing or malformed; this last.pt cannot be resumed")

    @staticmethod
    def best_checkpoint(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
        """``best.pt`` as the run wrote it from this ``last.pt`` dict when the epoch it holds was the best so far
        (the same checkpoint without the resume record), else None."""
        if checkpoint["train_state"].get("best_epoch") != checkpoint["epoch"]:
            return None
        return {k: v for k, v in checkpoint.items() if k != "train_state"}

    # ---- the loop -----------------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train from ``last_epoch + 1`` to the planned epochs; returns the last validation's metrics."""
        if self.is_main:
            LOGGER.info("schedule: %s", self.schedule.describe())
        self.fire("on_train_start")
        epoch = self.last_epoch + 1
        while epoch < self.epochs and not self.stop:
            self.epoch, self.this_epoch = epoch, EpochRecord(started=time.perf_counter())
            self._seed_epoch(epoch)
            self.fire("on_train_epoch_start")
            with cudnn_autotune(not self.train_loader.dataset.rect):  # fixed input sizes: tune once per shape
                self.losses, self.this_epoch.images = self._train_one_epoch(epoch)
            self.this_epoch.lr = [group["lr"] for group in self.optimizer.param_groups]  # what was used, warm-up too
            self.scheduler.step()
            self.this_epoch.train_seconds = time.perf_counter() - self.this_epoch.started
            self.fire("on_train_epoch_end")
            if self.is_main:
                self._end_epoch()
            self.fire("on_epoch_complete")
            self.stop, epochs = distributed.broadcast_object((self.stop, self.epochs))
            self.schedule.epochs = epochs  # every rank follows rank 0's plan
            epoch += 1
        self.fire("on_fit_end")
        return self.metrics

    def fire(self, stage: str) -> None:
        """Call ``stage`` of every hook that has it (``on_train_end`` is fired by ``train()``, after the loop)."""
        for method in self._stages[stage]:
            method(self)

    def _seed_epoch(self, epoch: int) -> None:
        # Seeding from (seed, epoch) makes an epoch's data order and augmentation independent of what ran
        # before it, so a resumed run continues exactly like an uninterrupted one.
        epoch_seed = self.settings.seed + 1000 * epoch + distributed.rank()
        random.seed(epoch_seed)
        np.random.seed(epoch_seed % 2**32)
        torch.manual_seed(epoch_seed)
        if self.train_loader.generator is not None:
            self.train_loader.generator.manual_seed(epoch_seed)
        sampler = self.train_loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)

    def _train_one_epoch(self, epoch: int) -> tuple[torch.Tensor, int]:
        """Returns the epoch's mean [box, cls, dfl] losses and the images all ranks trained on."""
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
            self.batch = Batch(i, images, targets)
            self.fire("on_train_batch_start")
            images, targets = self.batch.images, self.batch.targets
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
            self.fire("on_train_batch_end")
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
        factor, hyp = self.schedule(epoch), self.hyp
        for index, group in enumerate(self.optimizer.param_groups):
            # SGD's biases start high and fall to lr0; an adaptive optimizer's step is about its learning rate per
            # weight, so AdamW's would move every bias by ~0.1 a step (a pretrained head collapsed): it starts at 0
            start = hyp["warmup_bias_lr"] if index == 2 and "momentum" in group else 0.0
            group["lr"] = float(np.interp(step, [0, warmup_iters], [start, group["initial_lr"] * factor]))
            if "momentum" in group:
                group["momentum"] = float(np.interp(step, [0, warmup_iters], [hyp["warmup_momentum"], hyp["momentum"]]))

    def _optimizer_step(self) -> None:
        with self.timer("optimizer"):
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.hyp["grad_clip"])
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        self.fire("on_optimizer_step")

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

    # ---- end of epoch (rank 0): the stages of yolorep.engine.train.hooks --------------------------------------------
    def _end_epoch(self) -> None:
        self._review()
        if not self.this_epoch.validated and self.epoch + 1 >= self.epochs:
            self._review()  # the re-fitted plan ends here: the last epoch of a run is always validated
        self.last_epoch = self.epoch
        with self.timer("results"):
            self.fire("on_fit_epoch_end")
        with self.timer("checkpoints"):
            self.fire("on_save")
        self.fire("on_model_save")

    def _review(self) -> None:
        started = time.perf_counter()
        self.fire("on_validate")
        if self.this_epoch.validated:
            self.fire("on_val_end")
            self.this_epoch.val_seconds = time.perf_counter() - started
        self.fire("on_review")
