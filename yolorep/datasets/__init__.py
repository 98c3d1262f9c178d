"""Datasets: YAML descriptions, the data layouts they name (one module each in ``layouts/``), the synthetic shapes
set, loading, conversion, augmentation and data loaders.

Names are re-exported lazily so that ``import yolorep.datasets`` stays cheap (torch and cv2 load on first use).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DataSpec": "spec",
    "ensure_data": "spec",
    "load_data_spec": "spec",
    "DetectionDataset": "dataset",
    "ImageRecord": "records",
    "load_records": "records",
    "build_dataloader": "loader",
    "collate": "loader",
    "generate_shapes": "synthetic",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
