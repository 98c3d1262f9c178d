"""OpenVINO export: the exported ONNX graph converted to OpenVINO IR (``.xml`` + ``.bin``), optionally quantized
to INT8 with NNCF, saved with yolorep's metadata in its ``rt_info``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yolorep.engine.backends.openvino_ir import RT_INFO_KEY
from yolorep.engine.metadata import ModelMetadata
from yolorep.engine.optional import require
from yolorep.engine.quantize import quantize_openvino

__all__ = ["export_openvino"]


def export_openvino(
    onnx_path: Path, folder: Path, info: ModelMetadata, batches: list[np.ndarray] | None = None
) -> Path:
    """Convert ``onnx_path`` and save it as ``folder/<folder stem without _openvino_model>.xml`` (and ``.bin``).

    Args:
        info: written into ``rt_info[yolorep]``.
        batches: calibration batches; given, the model is quantized to INT8 (``quantize_openvino``).

    Returns:
        ``folder``.
    """
    ov = require("openvino", "--format openvino")
    model = ov.convert_model(str(onnx_path))
    if batches is not None:
        model = quantize_openvino(model, batches)
    for key, value in info.to_strings().items():
        model.set_rt_info(value, [RT_INFO_KEY, key])
    folder.mkdir(parents=True, exist_ok=True)
    xml = folder / (folder.name.removesuffix("_openvino_model") + ".xml")
    # compress_to_fp16 defaults to True and would store the fp32 weights as fp16
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return folder
