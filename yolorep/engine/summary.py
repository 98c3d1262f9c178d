"""``yolorep info``: a model's layers, parameters and GFLOPs before and after fusing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from yolorep.checks import check_imgsz
from yolorep.engine.checkpoint import load_checkpoint
from yolorep.nn.fuse import fused_copy
from yolorep.nn.model import DetectionModel, build_model
from yolorep.options import InfoOptions

__all__ = ["info"]

LOGGER = logging.getLogger(__name__)


def info(model: str | Path | DetectionModel, imgsz: int = 640) -> dict[str, Any]:
    """Summarise a model YAML (random weights), a checkpoint or a model, unfused and fused."""
    model, imgsz = (o := InfoOptions(model=model, imgsz=imgsz)).model, o.imgsz
    if isinstance(model, DetectionModel):
        net, path = model, model.spec.name
    else:
        path = Path(model)
        net = load_checkpoint(path) if path.suffix == ".pt" else build_model(path)
    check_imgsz(imgsz, int(net.stride.max()))
    unfused = None if net.is_fused else net.info(imgsz, verbose=False)
    fused_model = net if net.is_fused else fused_copy(net)
    fused = fused_model.info(imgsz, verbose=False)
    LOGGER.info("%s at %d x %d:", path, imgsz, imgsz)
    if unfused is not None:
        LOGGER.info("  unfused: %s", _row(unfused))
    LOGGER.info("  fused:   %s  (%s)", _row(fused), fused_model.fuse_report or "saved fused")
    return {"unfused": unfused, "fused": fused}


def _row(summary: dict[str, Any]) -> str:
    return f"{summary['layers']:4d} modules, {summary['params']:>12,} parameters, {summary['gflops']:7.2f} GFLOPs"
