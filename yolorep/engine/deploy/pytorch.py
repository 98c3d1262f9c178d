"""The PyTorch backend: a checkpoint or an in-memory model, fused on load; the reference every format is checked
against."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from yolorep.engine.checkpoint import load_checkpoint
from yolorep.engine.deploy.base import Backend
from yolorep.engine.deploy.cpu import cpu_features
from yolorep.engine.deploy.precision import half_dtype
from yolorep.engine.deploy.tolerance import DTYPE_NAMES
from yolorep.engine.metadata import metadata_of
from yolorep.errors import YolorepError
from yolorep.nn.fuse import fused_copy
from yolorep.nn.model import DecodedModel, DetectionModel

__all__ = ["PyTorchBackend", "load_fused"]

LOGGER = logging.getLogger(__name__)


def load_fused(weights: str | Path | nn.Module) -> nn.Module:
    """The fused, eval-mode, decoding form of a checkpoint path or a model; logs what was fused.

    A model passed in is copied before fusing, so the caller's (possibly training) model is left untouched. A
    ``DetectionModel`` is wrapped in ``DecodedModel``; any other module must already return [B, N, 4 + nc].
    """
    if isinstance(weights, nn.Module):
        model = fused_copy(weights) if isinstance(weights, DetectionModel) else weights
    else:
        model = load_checkpoint(weights).fuse()
    if isinstance(model, DetectionModel):
        LOGGER.info("%s: %s", model.spec.name, model.fuse_report)
        model = DecodedModel(model)
    return model.eval()


class PyTorchBackend(Backend):
    """A fused decoding PyTorch model (``load_fused``) on ``device``, in fp32 or, with ``half``, the fast half
    precision of the device (``precision.half_dtype``): fp16 weights on CUDA, bf16 autocast over the fp32 weights on
    a CPU with native bf16 (AMX, AVX-512 BF16). Decoding stays fp32 either way (``ops.decode_predictions``).

    Attributes:
        model: the module that runs.
        dtype: the dtype of its weights and input (fp16 with ``half`` on CUDA, else fp32).
        autocast: the dtype autocast computes in, or None.

    Raises:
        YolorepError: ``half`` on a device without a fast half precision.
    """

    format = "pytorch"

    def __init__(self, model: nn.Module, device: torch.device, half: bool = False, source: str = "model") -> None:
        reduced = half_dtype(device, cpu_features()) if half else None
        if half and reduced is None:
            raise YolorepError(
                f"--half: {device} has no fast half precision (fp16 needs CUDA, bf16 a CPU with AMX or AVX-512 BF16; "
                f"this one is {cpu_features().kind}); drop --half"
            )
        self.autocast = reduced if device.type != "cuda" else None
        self.dtype = torch.float16 if reduced == torch.float16 else torch.float32
        self.model = model.to(device, self.dtype).eval()
        super().__init__(source, metadata_of(model, DTYPE_NAMES[reduced or torch.float32]), device)

    def _forward(self, images: Tensor) -> Tensor:
        autocast = (
            torch.autocast(self.device.type, self.autocast) if self.autocast is not None else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            return self.model(images.to(self.device, self.dtype))
