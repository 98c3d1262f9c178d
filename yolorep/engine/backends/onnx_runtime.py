"""ONNX Runtime backend: a ``.onnx`` file written by ``yolorep export --format onnx`` (fp32, fp16 or INT8 QDQ)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from yolorep.engine.backends.base import Backend
from yolorep.engine.metadata import ModelMetadata
from yolorep.engine.optional import require
from yolorep.errors import YolorepError

__all__ = ["ONNXBackend", "ort_session"]


def ort_session(path: str | Path, device: torch.device, purpose: str) -> Any:
    """An ``onnxruntime.InferenceSession`` on ``device`` (CUDA when asked for and available, else the CPU) using
    torch's intra-op thread count.

    Thread spinning is off: spinning workers keep burning the cores between calls, which here are shared with
    PyTorch (NMS, data loading) and, in the benchmark, with other runtimes timed in alternation.
    """
    ort = require("onnxruntime", purpose)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    cuda = device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers()
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # onnxruntime raises its own exception types, not importable portably
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise YolorepError(f"{path}: onnxruntime cannot load this file ({first}); is it an ONNX model?") from None


class ONNXBackend(Backend):
    """Runs a yolorep ONNX export with onnxruntime; class names, image size and stride come from its metadata."""

    format = "onnx"

    def __init__(self, path: Path, device: torch.device) -> None:
        self.session = ort_session(path, device, f"--weights {path}")
        info = ModelMetadata.from_strings(self.session.get_modelmeta().custom_metadata_map, str(path))
        (inp,) = self.session.get_inputs()
        self.input_name = inp.name
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        super().__init__(str(path), info, device)

    def _forward(self, images: Tensor) -> Tensor:
        x = images.detach().to("cpu", torch.float32).numpy().astype(self.input_dtype, copy=False)
        (output,) = self.session.run(None, {self.input_name: x})
        return torch.from_numpy(output)
