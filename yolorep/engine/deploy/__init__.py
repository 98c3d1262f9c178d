"""Deploying a trained detector: the formats it exports to (``registry.FORMATS``, one module each), the backends
that run them (``load_backend``: one calling convention for PyTorch, TorchScript, ONNX Runtime and OpenVINO), INT8
calibration, and the one tolerance table every export and fast path is checked against."""

from yolorep.engine.deploy.base import Backend
from yolorep.engine.deploy.exporter import export, export_path
from yolorep.engine.deploy.format import DeployFormat, ExportJob
from yolorep.engine.deploy.loading import load_backend
from yolorep.engine.deploy.pytorch import PyTorchBackend, load_fused
from yolorep.engine.deploy.registry import FORMATS, format_of

__all__ = [
    "FORMATS",
    "Backend",
    "DeployFormat",
    "ExportJob",
    "PyTorchBackend",
    "export",
    "export_path",
    "format_of",
    "load_backend",
    "load_fused",
]
