"""``yolorep benchmark --sweep``: the unfused/fused comparison over a grid of batch and image sizes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from yolorep.benchmark.compare import compare
from yolorep.benchmark.paths import RunOptions
from yolorep.benchmark.report import plot_sweep, write_sweep_csv
from yolorep.nn.model import DetectionModel

__all__ = ["sweep_grid", "sweep_shapes"]

LOGGER = logging.getLogger(__name__)


def sweep_grid(batch: int, imgsz: int, device: torch.device, stride: int) -> tuple[list[int], list[int]]:
    """The sweep's batch sizes and image sizes, anchored at ``--batch`` and ``--imgsz``.

    Batch ``b, 8b, 32b`` on a GPU and ``b, 2b, 4b`` on the CPU; image size ``imgsz / 2`` (rounded down to the
    stride) and ``imgsz``. The defaults (1, 640) give batch 1, 8, 32 and 320, 640 px on a GPU.
    """
    factors = (1, 8, 32) if device.type == "cuda" else (1, 2, 4)
    half = max(stride, imgsz // 2 // stride * stride)
    return [batch * f for f in factors], sorted({half, imgsz})


def sweep_shapes(
    unfused: DetectionModel,
    fused: DetectionModel,
    options: RunOptions,
    grid: tuple[list[int], list[int]],
    *,
    out: str | Path,
    iters: int | None = None,
    warmup: int | None = None,
    title: str = "",
) -> dict[str, Any]:
    """``compare`` at every (imgsz, batch) of ``grid`` (batches, image sizes: ``sweep_grid``); write ``sweep.csv``
    and ``sweep.png`` into ``out``.

    Returns:
        ``{"rows": [one compare() result per point, with imgsz and batch], "csv": path, "plot": path}``.
    """
    batches, imgszs = grid
    rows = []
    for imgsz in imgszs:
        for batch in batches:
            if options.compile:
                # each shape compiles afresh; stale graphs would count against dynamo's recompile limit
                torch.compiler.reset()
            row = compare(unfused, fused, options, batch=batch, imgsz=imgsz, iters=iters, warmup=warmup)
            rows.append({"imgsz": imgsz, "batch": batch, **row})
            LOGGER.info(
                "imgsz %d batch %d: unfused %.2f ms, fused %.2f ms", imgsz, batch, row["unfused_ms"], row["fused_ms"]
            )
    out = Path(out)
    csv_path = write_sweep_csv(rows, out / "sweep.csv")
    plot_path = plot_sweep(rows, out / "sweep.png", f"{title} | {rows[0]['path']}")
    return {"rows": rows, "csv": str(csv_path), "plot": str(plot_path)}
