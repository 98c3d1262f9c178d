"""``yolorep import``: a YOLOv6 or ultralytics checkpoint written as a weights-only yolorep checkpoint."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from yolorep.engine.checkpoint import read_checkpoint, write_atomic
from yolorep.errors import CheckpointError
from yolorep.foreign import import_checkpoint

__all__ = ["import_weights"]

LOGGER = logging.getLogger(__name__)


def import_weights(src: str | Path, out: str | Path | None = None) -> Path:
    """Import ``src`` (a YOLOv6 v3.0, YOLOv8 or YOLO11 ``.pt``; nothing of it runs) and write it to ``out``
    (default: ``<src stem>-yolorep.pt`` beside it): model config, fp32 weights, class names, image size, the
    evaluation protocol of its family, and the source's family, architecture, file name and sha256.

    The other commands accept ``src`` directly too; importing once saves reading it again. Returns ``out``.
    """
    started = time.perf_counter()
    src = Path(src)
    if not src.is_file():
        raise CheckpointError(f"{src}: file not found; pass a YOLOv6 or ultralytics .pt file")
    out = Path(out) if out is not None else src.with_name(f"{src.stem}-yolorep.pt")
    if out.resolve() == src.resolve():
        raise CheckpointError(f"--out {out}: is the source file; write the import elsewhere")
    checkpoint = import_checkpoint(src)
    write_atomic(checkpoint, out)
    read_checkpoint(out)  # what was written reads back weights-only
    source = checkpoint["source"]
    LOGGER.info(
        "%s: %s %s, %d classes, %d tensors, image size %d, sha256 %s... -> %s (%.1f s)",
        src, source["family"], source["architecture"], len(checkpoint["names"]), len(checkpoint["state_dict"]),
        checkpoint["imgsz"], source["sha256"][:12], out, time.perf_counter() - started,
    )  # fmt: skip
    return out
