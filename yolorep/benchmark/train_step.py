"""``yolorep benchmark --train``: the cost of one training step, split into forward, loss, backward and optimizer.

The unfused model is trained on one synthetic batch (random images and random boxes) repeated, so no data loading
is timed and the figure moves only when the model, the loss or the optimizer changes. On a GPU the phases are
marked with CUDA events inside each step (no synchronization between them), so splitting the step does not slow it.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from yolorep.benchmark.paths import RunOptions
from yolorep.benchmark.report import environment_line
from yolorep.engine.deploy.tolerance import DTYPE_NAMES
from yolorep.engine.device import cudnn_autotune
from yolorep.engine.timing import Clock, default_iters, default_warmup
from yolorep.loss import DetectionLoss
from yolorep.options.hyp import load_hyp

__all__ = ["PHASES", "benchmark_train", "format_train_table", "synthetic_batch", "time_train_steps"]

PHASES = ("forward", "loss", "backward", "optimizer")
BOXES_PER_IMAGE = 8
LossFn = Callable[[Any, Tensor], tuple[Tensor, Tensor]]


def synthetic_batch(
    batch: int, imgsz: int, nc: int, boxes_per_image: int = BOXES_PER_IMAGE, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Random images and boxes in the loss's target format.

    Returns:
        images [B, 3, imgsz, imgsz] in 0..1, and targets [B * boxes_per_image, 6] rows
        (batch_index, cls, x1, y1, x2, y2) in pixels, sides 5-50% of the image, inside it.
    """
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, imgsz, imgsz, generator=generator)
    m = batch * boxes_per_image
    wh = (torch.rand(m, 2, generator=generator) * 0.45 + 0.05) * imgsz
    xy1 = torch.rand(m, 2, generator=generator) * (imgsz - wh)
    cls = torch.randint(nc, (m, 1), generator=generator).float()
    index = torch.arange(batch).repeat_interleave(boxes_per_image)[:, None].float()
    return images, torch.cat((index, cls, xy1, xy1 + wh), dim=1)


def time_train_steps(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    targets: Tensor,
    *,
    amp_dtype: torch.dtype | None = None,
    iters: int | None = None,
    warmup: int = 2,
) -> tuple[dict[str, list[float]], float]:
    """Run ``warmup`` untimed, then ``iters`` timed training steps (default: enough for a few seconds).

    A step is forward (under autocast when ``amp_dtype`` is set), loss (also under autocast, as in training),
    backward (through a gradient scaler for fp16) and optimizer step + ``zero_grad``.

    Returns:
        Milliseconds per step for each of ``PHASES``, and the last step's loss.
    """
    device = images.device
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    clock = Clock(device)
    loss_value = torch.zeros(())

    def step() -> list[float]:
        nonlocal loss_value
        clock.mark()
        with autocast:
            preds = model(images)
            clock.mark()
            loss, _ = loss_fn(preds, targets)
            clock.mark()
        scaler.scale(loss).backward()
        clock.mark()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        clock.mark()
        loss_value = loss.detach()
        return clock.intervals()

    warm = [step() for _ in range(max(warmup, 1))]
    iters = iters or default_iters(sum(warm[-1]), device)
    steps = [step() for _ in range(iters)]
    return {phase: [s[i] for s in steps] for i, phase in enumerate(PHASES)}, float(loss_value)


def _default_loss(model: nn.Module) -> LossFn:
    """The training loss with cfg/default.yaml's gains, reading the model's strides."""
    loss = DetectionLoss.from_hyp(model.nc, model.reg_max, load_hyp())
    return lambda maps, targets: loss(maps, model.stride, targets)


def benchmark_train(
    model: nn.Module,
    options: RunOptions,
    *,
    batch: int,
    imgsz: int,
    iters: int | None = None,
    warmup: int | None = None,
    make_loss: Callable[[nn.Module], LossFn] | None = None,
) -> dict[str, Any]:
    """Time training steps of ``model`` (unfused, fp32 weights, on ``options.device``; trained in place).

    AMP is fp16 autocast on CUDA (bf16 with ``--bf16``, on either device); the CPU trains in fp32 otherwise.
    ``channels_last`` and ``compile`` apply to the model as in inference. The optimizer is SGD with Nesterov
    momentum 0.937 and weight decay 5e-4 on every parameter.

    Args:
        make_loss: builds ``loss_fn(maps, targets)`` from the model (default: ``yolorep.loss.DetectionLoss``).
    """
    device = options.device
    amp_dtype = options.dtype if options.is_reduced else torch.float16 if device.type == "cuda" else None
    loss_fn = (make_loss or _default_loss)(model)
    model.train()
    if options.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.937, nesterov=True, weight_decay=5e-4)
    forward = torch.compile(model) if options.compile else model
    images, targets = synthetic_batch(batch, imgsz, model.nc)
    memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
    images = images.to(device).contiguous(memory_format=memory_format)
    warmup = default_warmup(device, train=True) if warmup is None else warmup
    with cudnn_autotune():
        phases, loss = time_train_steps(
            forward, loss_fn, optimizer, images, targets.to(device), amp_dtype=amp_dtype, iters=iters, warmup=warmup
        )
    totals = [sum(step) for step in zip(*phases.values())]
    step_ms = statistics.median(totals)
    return {
        "amp": DTYPE_NAMES[amp_dtype] if amp_dtype is not None else None,
        "path": " + ".join(
            [f"AMP {DTYPE_NAMES[amp_dtype]}" if amp_dtype is not None else "fp32"]
            + [name for name, on in (("channels-last", options.channels_last), ("compile", options.compile)) if on]
        ),
        "params": sum(p.numel() for p in model.parameters()),
        "train_step_ms": step_ms,
        "train_images_per_s": batch * 1e3 / step_ms,
        **{f"{phase}_ms": statistics.median(times) for phase, times in phases.items()},
        "loss": loss,
        "boxes_per_image": BOXES_PER_IMAGE,
        "iters": len(totals),
        "warmup": warmup,
        "timer": "CUDA events" if device.type == "cuda" else "time.perf_counter",
    }


def format_train_table(result: dict[str, Any]) -> str:
    """The table logged by ``yolorep benchmark --train``."""
    r = result
    lines = [
        f"yolorep benchmark --train | {r['model']} ({r['source']}), nc {r['nc']}, unfused | imgsz {r['imgsz']}, "
        f"batch {r['batch']} | path: {r['path']}",
        environment_line(r),
        f"synthetic batch: random images, {r['boxes_per_image']} random boxes per image; SGD (Nesterov); median "
        f"of {r['iters']} steps after {r['warmup']} warm-up steps ({r['timer']}); last loss {r['loss']:.4g}",
        "",
        f"{'phase':<12}{'ms/step':>10}",
        *(f"{phase:<12}{r[f'{phase}_ms']:>10.2f}" for phase in PHASES),
        f"{'step':<12}{r['train_step_ms']:>10.2f}",
        f"throughput: {r['train_images_per_s']:.1f} images/s ({r['params']:,} parameters)",
    ]
    return "\n".join(lines)
