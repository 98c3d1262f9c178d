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

from yolorep.engine.phases import PHASES

__all__ = ["benchmark_epochs", "format_epoch_table"]


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
    from yolorep.engine.train_setup import train

    captured: dict[str, Any] = {}

    def on_train_start(trainer: Any) -> None:
        captured["startup"] = time.perf_counter() - trainer.started
        captured["images"] = len(trainer.train_loader.dataset)

    def on_fit_end(trainer: Any) -> None:
        captured["phases"] = list(trainer.epoch_phases)
        captured["fit_end"] = time.perf_counter()

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="yolorep-epoch-") as project:
        results = train(
            model=model, data=data, epochs=epochs, imgsz=imgsz, batch=batch, device=device, workers=workers,
            project=project, name="bench", callbacks={"on_train_start": [on_train_start], "on_fit_end": [on_fit_end]},
            profile=True, **train_kwargs,
        )  # fmt: skip
    end = time.perf_counter()
    rows = []
    for phases in captured["phases"]:
        tracked = sum(v for k, v in phases.items() if k != "epoch")
        rows.append({**phases, "other": max(phases["epoch"] - tracked, 0.0)})
    return {
        "epochs": rows,
        "startup": captured["startup"],
        "final_validation": end - captured["fit_end"],
        "total": end - start,
        "images_per_epoch": captured["images"],
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
