"""Where a training epoch's wall time goes: seconds accumulated per phase (data, forward, loss, backward,
optimizer, EMA, validation, checkpoints, ...), for ``yolorep benchmark --epoch``.

The clocks are ``time.perf_counter`` reads, cheap enough to run in every training; with ``sync`` (profiling on a
GPU) each phase ends with a CUDA synchronize, so that asynchronous kernels are charged to the phase that queued
them rather than to whichever phase waits next.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["PHASES", "PhaseTimer"]

# The phases of an epoch, in the order a table lists them.
PHASES = (
    "data",  # waiting for the loader: decoding, augmentation, collation (in workers or the main process)
    "to_device",  # moving the batch and converting it to float
    "forward",
    "loss",  # assignment (TAL), CIoU, DFL, BCE
    "backward",
    "optimizer",  # unscale, gradient clipping, step, zero_grad
    "ema",
    "plots",  # the first epoch's train_batch*.jpg
    "fuse",  # the fused copy of the EMA model validated each epoch
    "validation",  # inference, decoding, NMS, metrics
    "checkpoints",  # last.pt, best.pt
    "results",  # callbacks: results.csv, results.png, TensorBoard
)


class PhaseTimer:
    """Seconds per phase, accumulated until ``reset``.

    Args:
        device: where the model runs (synchronised with ``sync`` when it is a GPU).
        sync: synchronise CUDA at the end of each phase (exact attribution, slower training).
    """

    def __init__(self, device: torch.device, sync: bool = False) -> None:
        self.sync = sync and device.type == "cuda"
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync:
                torch.cuda.synchronize(self.device)
            self.seconds[phase] += time.perf_counter() - start

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] += seconds

    def reset(self) -> dict[str, float]:
        """The seconds so far (every phase of ``PHASES``, zeros included), and start again."""
        totals = {phase: self.seconds.get(phase, 0.0) for phase in PHASES}
        totals.update({k: v for k, v in self.seconds.items() if k not in totals})
        self.seconds = defaultdict(float)
        return totals
