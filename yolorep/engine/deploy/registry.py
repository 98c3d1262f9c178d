"""The deploy formats yolorep exports to and runs: adding one is a new module with its ``DeployFormat`` record and one
line here."""

from __future__ import annotations

from pathlib import Path

from yolorep.engine.deploy.coreml import COREML
from yolorep.engine.deploy.format import DeployFormat
from yolorep.engine.deploy.ncnn import NCNN
from yolorep.engine.deploy.onnx import ONNX
from yolorep.engine.deploy.openvino import OPENVINO
from yolorep.engine.deploy.tensorrt import TENSORRT
from yolorep.engine.deploy.tflite import TFLITE
from yolorep.engine.deploy.torchscript import TORCHSCRIPT

__all__ = ["FORMATS", "format_of"]

FORMATS: dict[str, DeployFormat] = {f.name: f for f in (ONNX, TORCHSCRIPT, OPENVINO, NCNN, TFLITE, COREML, TENSORRT)}


def format_of(path: Path) -> DeployFormat | None:
    """The format an existing exported file or folder is in; None for anything else (a ``.pt`` checkpoint)."""
    return next((f for f in FORMATS.values() if f.holds(path)), None)
