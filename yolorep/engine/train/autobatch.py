"""AutoBatch (``--batch -1``): the largest batch whose training step fits a share of the GPU's memory.

As ultralytics' autobatch does: a copy of the model takes one training step (forward, loss, backward, at the
largest training image size) at a few batch sizes, the peak memory of each is read, a straight line is fitted
through them, and the batch where the line reaches ``fraction`` of the memory available to the process is taken,
never above a size that ran out of memory and never above the number of training images.

On a CPU (or another device without a memory reading) it takes :data:`CPU_BATCH`: PyTorch reads no peak memory of
CPU allocations (they go through the system allocator), and RAM, tens of GB, is rarely what limits a CPU batch;
a batch filling it would leave few optimizer updates in an epoch of a small data set. ``CPU_BATCH`` is the
nominal batch (``nbs``), so the optimizer steps on every batch without accumulating.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from torch import nn

__all__ = ["CPU_BATCH", "CudaMemory", "MemoryReading", "auto_batch", "fit_batch"]

LOGGER = logging.getLogger(__name__)
CPU_BATCH = 16
FRACTION = 0.6  # of the available memory: the optimizer's state, the EMA and allocator fragmentation need the rest
MAX_BATCH = 1024
_GIB = 1 << 30


class MemoryReading(Protocol):
    """How a device's memory is read: what is available, and the peak bytes of running a function."""

    def available(self) -> tuple[int, int]:
        """``(bytes available to this process, total bytes)``."""

    def peak(self, run: Callable[[], None]) -> int:
        """Run ``run`` and return the peak bytes allocated meanwhile; raises ``torch.OutOfMemoryError`` if it
        does not fit."""


class CudaMemory:
    """The memory of one CUDA device, read from PyTorch's caching allocator."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def available(self) -> tuple[int, int]:
        free, total = torch.cuda.mem_get_info(self.device)
        return free + torch.cuda.memory_reserved(self.device), total  # what the allocator holds is ours to reuse

    def peak(self, run: Callable[[], None]) -> int:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        try:
            run()
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device)
        finally:
            torch.cuda.empty_cache()


def fit_batch(peaks: list[tuple[int, int | None]], available: int, fraction: float, n_images: int) -> int | None:
    """The batch at which a line through the measured ``(batch, peak bytes)`` reaches ``fraction * available``;
    below the first batch that did not fit (peak ``None``) and at most ``n_images``; None without two usable
    measurements.

    Only measurements that grow with the batch are fitted (a smaller peak at a larger batch is a misreading)."""
    usable, last = [], 0
    for batch, peak in peaks:
        if peak is None:
            break
        if 0 < peak < available and peak > last:
            usable.append((batch, peak))
            last = peak
    if len(usable) < 2:
        return None
    slope, intercept = np.polyfit(*zip(*usable), deg=1)
    batch = int((available * fraction - intercept) / slope) if slope > 0 else MAX_BATCH
    too_big = next((b for b, peak in peaks if peak is None), None)
    if too_big is not None and batch >= too_big:
        batch = max(b for b, peak in peaks if peak is not None and b < too_big)  # the last size that fitted
    return max(1, min(batch, MAX_BATCH, n_images))


def _train_step(model: nn.Module, loss_fn: nn.Module, batch: int, imgsz: int, options: dict) -> Callable[[], None]:
    """One forward, loss and backward of ``model`` on ``batch`` blank images with ``max_objects`` boxes each."""

    def run() -> None:
        device, objects = options["device"], max(options["max_objects"], 1)
        images = torch.zeros(batch, 3, imgsz, imgsz, device=device)
        xy = torch.rand(batch * objects, 2, device=device) * imgsz * 0.8
        boxes = torch.cat([xy, xy + imgsz * 0.1], 1)
        owner = torch.arange(batch, device=device).repeat_interleave(objects).float()
        targets = torch.cat([owner[:, None], torch.zeros_like(owner)[:, None], boxes], 1)  # [n, 6]
        dtype = options["amp_dtype"]
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss, _ = loss_fn(model(images), model.stride, targets)
        loss.backward()
        model.zero_grad(set_to_none=True)

    return run


def _probe_sizes(total: int) -> list[int]:
    return [1, 2, 4, 8, 16] if total < 16 * _GIB else [1, 2, 4, 8, 16, 32, 64]


def auto_batch(
    model: nn.Module,
    loss_fn: nn.Module,
    imgsz: int,
    options: dict,
    memory: MemoryReading | None = None,
) -> int:
    """The batch for one device (see the module docstring).

    Args:
        model: the model to train, on its device (copied; not changed).
        loss_fn: the training loss.
        imgsz: the largest training image size (with multi-scale, its top).
        options: ``device``, ``amp_dtype`` (autocast dtype or None), ``max_objects`` (most boxes in a training
            image: the loss's memory grows with them), ``n_images`` (training images).
        memory: how memory is read; by default the CUDA device's (none on other devices).
    """
    device = options["device"]
    if memory is None and device.type != "cuda":
        LOGGER.info("AutoBatch: batch %d on %s (no peak-memory reading there, and RAM rarely limits a batch; "
                    "--batch N to choose)", CPU_BATCH, device.type)  # fmt: skip
        return CPU_BATCH
    memory = memory or CudaMemory(device)
    available, total = memory.available()
    probe = copy.deepcopy(model).train()
    peaks: list[tuple[int, int | None]] = []
    for batch in _probe_sizes(total):
        try:
            peaks.append((batch, memory.peak(_train_step(probe, loss_fn, batch, imgsz, options))))
        except torch.OutOfMemoryError:
            peaks.append((batch, None))
            break
    del probe
    chosen = fit_batch(peaks, available, FRACTION, options["n_images"])
    if chosen is None:
        LOGGER.warning("AutoBatch: no usable memory reading at batch sizes %s; batch %d (--batch N to choose)",
                       [b for b, _ in peaks], CPU_BATCH)  # fmt: skip
        return CPU_BATCH
    LOGGER.info(
        "AutoBatch: batch %d at imgsz %d, for %.0f%% of the %.2f GiB available on %s (%.2f GiB in all)",
        chosen, imgsz, FRACTION * 100, available / _GIB, device, total / _GIB,
    )  # fmt: skip
    return chosen
