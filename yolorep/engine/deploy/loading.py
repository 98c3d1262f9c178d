"""``load_backend`` turns a checkpoint, an exported file or a model into a ``Backend``, ``backend(images [B, 3, H, W]
in 0..1) -> [B, N, 4 + nc]``, whatever runs it: a ``.pt`` checkpoint or a model runs in ``PyTorchBackend`` (fused on
load), an exported file in its format's backend (``registry.FORMATS``: ``best.torchscript``, ``best.onnx``,
``best_openvino_model/`` or its ``.xml``, ``best_ncnn_model/``, ``best.tflite``, ``best.mlpackage`` on macOS,
``best.engine`` on a GPU).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from yolorep.engine.deploy.base import Backend
from yolorep.engine.deploy.pytorch import PyTorchBackend, load_fused
from yolorep.engine.deploy.registry import format_of
from yolorep.engine.device import select_device
from yolorep.errors import YolorepError

__all__ = ["load_backend"]

LOGGER = logging.getLogger(__name__)


def load_backend(
    weights: str | Path | nn.Module | Backend, device: str | torch.device | None = None, half: bool = False
) -> Backend:
    """The backend for ``weights``, returning its outputs on ``device``.

    Args:
        weights: a ``.pt`` checkpoint or an in-memory model (fused on load; a model is copied first), a ``.onnx``,
            ``.torchscript``, ``.tflite`` or ``.engine`` file, an OpenVINO or NCNN model folder (or its ``.xml`` or
            ``.param``), an ``.mlpackage``, or a ``Backend`` (returned as is).
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
            f"{path}: not found; pass a .pt checkpoint, or a file or folder written by yolorep export (.onnx, "
            ".torchscript, _openvino_model, _ncnn_model, .tflite, .mlpackage, .engine)"
        )
    deploy_format = format_of(path)
    if deploy_format is None:
        return PyTorchBackend(load_fused(path), device, half, source=str(path))
    backend: Backend = deploy_format.backend(path, device)
    if half and backend.precision != "fp16":
        LOGGER.warning("--half: %s runs at the precision it was exported with (%s)", path, backend.precision)
    LOGGER.info("%s: %s, %s, input %s", path, backend.format, backend.precision, _input_shape(backend))
    return backend


def _input_shape(backend: Backend) -> str:
    if backend.dynamic:
        return f"dynamic (exported at {backend.imgsz})"
    return f"fixed [{backend.batch}, 3, {backend.imgsz}, {backend.imgsz}]"
