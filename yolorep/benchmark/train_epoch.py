"""``yolorep benchmark --epoch``: where the wall time of real training epochs goes.

A short training run (the usual ``train()``, into a temporary folder) is timed phase by phase: start-up (data
scan, model build, loaders), data loading and augmentation, forward, loss and assignment, backward, optimizer
step, EMA, the fused copy and validation of every epoch, checkpoint writes, results files, and the final
validation of best.pt. The first epoch carries one-time costs (worker start, the first plots), so each epoch is
reported.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from yolorep.engine.train.hooks import Hook
from yolorep.engine.train.phases import PHASES

__all__ = ["EpochPhases", "benchmark_epochs", "format_epoch_table"]


class EpochPhases(Hook):
    """Collects the trainer's seconds per phase at the end of every epoch, the start-up before the first and when
    fitting ended.

    Args:
        started: ``time.perf_counter()`` before training was called.
    """

    def __init__(self, started: float) -> None:
        self.started = started
        self.startup = self.fit_end = 0.0
        self.images = 0
        self.epochs: list[dict[str, float]] = []

    def on_train_start(self, trainer: Any) -> None:
        self.startup = time.perf_counter() - self.started
        self.images = len(trainer.train_loader.dataset)

    def on_epoch_complete(self, trainer: Any) -> None:
        self.epochs.append({**trainer.timer.reset(), "epoch": time.perf_counter() - trainer.this_epoch.started})

    def on_fit_end(self, trainer: Any) -> None:
        self.fit_end = time.perf_counter()


def benchmark_epochs(
    model: str,
    data: str,
    *,
    imgsz: int,
    batch: int,
    device: str | None,
    epochs: int = 2,
    workers: int | None = None,
    **train_kwargs: Any,
) -> dict[str, Any]:
    """Train ``epochs`` epochs and return the seconds of each phase of each epoch, start-up and final validation.

    Returns:
        ``{"epochs": [{phase: seconds, ..., "epoch": wall, "other": unattributed}], "startup": s,
        "final_validation": s, "total": s, "images_per_epoch": n, ...}``.
    """
    from yolorep.engine.train.setup import train

    start = time.perf_counter()
    phases = EpochPhases(start)
    with tempfile.TemporaryDirectory(prefix="yolorep-epoch-") as project:
        results = train(
            model=model, data=data, epochs=epochs, imgsz=imgsz, batch=batch, device=device, workers=workers,
            project=project, name="bench", callbacks=phases, profile=True, **train_kwargs,
        )  # fmt: skip
    end = time.perf_counter()
    rows = []
    for epoch in phases.epochs:
        tracked = sum(v for k, v in epoch.items() if k != "epoch")
        rows.append({**epoch, "other": max(epoch["epoch"] - tracked, 0.0)})
    return {
        "epochs": rows,
        "startup": phases.startup,
        "final_validation": end - phases.fit_end,
        "total": end - start,
        "images_per_epoch": phases.images,
        "map50_95": results["map50_95"],
    }


def format_epoch_table(result: dict[str, Any]) -> str:
    """Seconds per phase and epoch, and each phase's share of the last epoch."""
    epochs = result["epochs"]
    last = epochs[-1]
    header = f"{'phase':<14}" + "".join(f"{f'epoch {i + 1} s':>12}" for i in range(len(epochs))) + f"{'share':>9}"
    lines = [header]
    for phase in (*PHASES, "other"):
        values = "".join(f"{row.get(phase, 0.0):>12.2f}" for row in epochs)
        lines.append(f"{phase:<14}{values}{100 * last.get(phase, 0.0) / last['epoch']:>8.1f}%")
    lines.append(f"{'epoch (wall)':<14}" + "".join(f"{row['epoch']:>12.2f}" for row in epochs))
    images = result["images_per_epoch"]
    lines.append(f"{'images/s':<14}" + "".join(f"{images / row['epoch']:>12.1f}" for row in epochs))
    lines += [
        f"start-up {result['startup']:.2f} s, final validation {result['final_validation']:.2f} s, "
        f"total {result['total']:.2f} s; mAP50-95 {result['map50_95']:.4f} (pycocotools)",
    ]
    return "\n".join(lines)
