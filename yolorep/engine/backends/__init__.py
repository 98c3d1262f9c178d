"""Inference backends: ``load_backend`` turns a checkpoint, an exported file or a model into a ``Backend``,
``backend(images [B, 3, H, W] in 0..1) -> [B, N, 4 + nc]``, whatever runs it:

* ``best.pt`` or a model: ``PyTorchBackend`` (fused on load);
* ``best.torchscript``: ``TorchScriptBackend``;
* ``best.onnx``: ``ONNXBackend``, onnxruntime (``pip install 'yolorep[export]'``);
* ``best_openvino_model/`` or its ``.xml``: ``OpenVINOBackend``, OpenVINO on the CPU
  (``pip install 'yolorep[openvino]'``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from yolorep.engine.backends.base import Backend
from yolorep.engine.backends.onnx_runtime import ONNXBackend
from yolorep.engine.backends.openvino_ir import OpenVINOBackend
from yolorep.engine.backends.pytorch import PyTorchBackend, TorchScriptBackend, load_fused
from yolorep.engine.device import select_device
from yolorep.errors import YolorepError

__all__ = [
    "Backend",
    "ONNXBackend",
    "OpenVINOBackend",
    "PyTorchBackend",
    "TorchScriptBackend",
    "load_backend",
    "load_fused",
]

LOGGER = logging.getLogger(__name__)


def load_backend(
    weights: str | Path | nn.Module | Backend, device: str | torch.device | None = None, half: bool = False
) -> Backend:
    """The backend for ``weights``, returning its outputs on ``device``.

    Args:
        weights: a ``.pt`` checkpoint or an in-memory model (fused on load; a model is copied first), a ``.onnx``
            or ``.torchscript`` file, an OpenVINO model folder or its ``.xml``, or a ``Backend`` (returned as is).
        device: ``None`` (first GPU, else CPU), ``"cpu"``, ``"0"`` ... or a ``torch.device``.
        half: fp16 inference for PyTorch models; an exported file runs at the precision it was exported with.

    Raises:
        YolorepError: the file does not exist, holds no yolorep metadata, or needs a package not installed.
    """
    if isinstance(weights, Backend):
        return weights
    device = device if isinstance(device, torch.device) else select_device(device)
    if isinstance(weights, nn.Module):
        return PyTorchBackend(load_fused(weights), device, half)
    path = Path(weights)
    if not path.exists():
        raise YolorepError(
            f"{path}: not found; pass a .pt checkpoint, a .onnx or .torchscript file, or an OpenVINO model folder "
            "written by yolorep export"
        )
    if path.is_dir() or path.suffix == ".xml":
        backend: Backend = OpenVINOBackend(path, device)
    elif path.suffix == ".onnx":
        backend = ONNXBackend(path, device)
    elif path.suffix == ".torchscript":
        backend = TorchScriptBackend(path, device)
    else:
        return PyTorchBackend(load_fused(path), device, half, source=str(path))
    if half and backend.precision != "fp16":
        LOGGER.warning("--half: %s runs at the precision it was exported with (%s)", path, backend.precision)
    LOGGER.info("%s: %s, %s, input %s", path, backend.format, backend.precision, _input_shape(backend))
    return backend


def _input_shape(backend: Backend) -> str:
    if backend.dynamic:
        return f"dynamic (exported at {backend.imgsz})"
    return f"fixed [{backend.batch}, 3, {backend.imgsz}, {backend.imgsz}]"
