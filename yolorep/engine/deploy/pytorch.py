"""The PyTorch backend: a checkpoint or an in-memory model, fused on load; the reference every format is checked
against."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from yolorep.engine.checkpoint import load_checkpoint
from yolorep.engine.deploy.base import Backend
from yolorep.engine.metadata import metadata_of
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
    """A fused decoding PyTorch model (``load_fused``) on ``device``, in fp32 or (``half``) fp16.

    Attributes:
        model: the module that runs.
    """

    format = "pytorch"

    def __init__(self, model: nn.Module, device: torch.device, half: bool = False, source: str = "model") -> None:
        self.dtype = torch.float16 if half else torch.float32
        self.model = model.to(device, self.dtype).eval()
        super().__init__(source, metadata_of(model, "fp16" if half else "fp32"), device)

    def _forward(self, images: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.model(images.to(self.device, self.dtype))
