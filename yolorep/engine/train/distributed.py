"""torch.distributed helpers for ``torchrun --nproc_per_node N -m yolorep train ...``."""

from __future__ import annotations

import contextlib
import os
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "COLLECTIVE_TIMEOUT",
    "all_true",
    "broadcast_object",
    "cleanup",
    "gradient_sync",
    "is_main_process",
    "rank",
    "setup",
    "world_size",
]

# How long a rank waits in a collective before the job is aborted. At the end of every epoch the other ranks wait
# in a broadcast while rank 0 validates the whole val split alone, plots and writes checkpoints; NCCL's default of
# 10 minutes (gloo's 30) would abort a run on a large val set or a slow disk. A hung rank is then found after hours.
COLLECTIVE_TIMEOUT = timedelta(hours=3)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    return rank() == 0


def setup(device: torch.device) -> bool:
    """Join the process group torchrun describes (NCCL on GPUs, gloo on CPUs); False when not under torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    return True


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (no-op when not distributed)."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_true(flag: bool, device: torch.device) -> bool:
    """True only if ``flag`` is true on every rank, so ranks take the same branch (e.g. skipping a step)."""
    if world_size() == 1:
        return flag
    t = torch.tensor(1.0 if flag else 0.0, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def gradient_sync(model: torch.nn.Module, sync: bool) -> AbstractContextManager:
    """The context to run a training step's forward pass in: with ``sync`` false, a DistributedDataParallel
    ``model`` keeps this step's gradients local (``no_sync``) and all-reduces them, summed with the following
    steps', in the backward of the next forward made with ``sync``. DDP decides at the forward pass. Gradient
    accumulation thereby all-reduces once per optimizer step instead of once per batch. Other models: no-op."""
    if sync or not isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
