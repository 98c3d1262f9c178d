"""PyTorch backends: a checkpoint or in-memory model (fused on load), and a TorchScript export."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from yolorep.engine.backends.base import Backend
from yolorep.engine.checkpoint import load_checkpoint
from yolorep.engine.metadata import ModelMetadata
from yolorep.errors import YolorepError
from yolorep.nn.fuse import fused_copy
from yolorep.nn.model import DecodedModel, DetectionModel

__all__ = ["PyTorchBackend", "TorchScriptBackend", "load_fused"]

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


def imgsz_or_trained(imgsz: int | None, meta: dict[str, Any] | None, default: int = 640) -> int:
    """``imgsz`` when given, else the size a checkpoint was trained at (from its metadata), else ``default``."""
    if imgsz is not None:
        return imgsz
    return int(((meta or {}).get("train_args") or {}).get("imgsz") or default)


def _model_label(model: nn.Module) -> str:
    spec = getattr(getattr(model, "model", model), "spec", None)
    if spec is None:
        return ""
    return f"{spec.name}-{spec.scale}" if spec.scale else spec.name


def model_metadata(model: nn.Module, precision: str = "fp32", where: str = "model") -> ModelMetadata:
    """The metadata of an in-memory decoding model (``names``, ``stride`` and, from a checkpoint, ``meta``), whose
    stored values are checked by type and range (``ModelMetadata.checked``)."""
    meta: dict[str, Any] = getattr(model, "meta", None) or {}
    train_args = meta.get("train_args") or {}
    return ModelMetadata.checked(
        where,
        names=tuple(model.names),
        stride=int(torch.as_tensor(model.stride).max()),
        imgsz=train_args.get("imgsz"),
        dynamic=True,
        fused=bool(getattr(model, "is_fused", False)),
        precision=precision,
        model=_model_label(model),
        eval_args=meta.get("eval_args"),
        data=train_args.get("data") or "",
        single_cls=bool(train_args.get("single_cls")),
    )


class PyTorchBackend(Backend):
    """A fused decoding PyTorch model (``load_fused``) on ``device``, in fp32 or (``half``) fp16.

    Attributes:
        model: the module that runs.
    """

    format = "pytorch"

    def __init__(self, model: nn.Module, device: torch.device, half: bool = False, source: str = "model") -> None:
        self.dtype = torch.float16 if half else torch.float32
        self.model = model.to(device, self.dtype).eval()
        super().__init__(source, model_metadata(model, "fp16" if half else "fp32", source), device)

    def _forward(self, images: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.model(images.to(self.device, self.dtype))


def _config_strings(config: str | bytes, path: Path) -> dict[str, str]:
    """The metadata mapping stored as ``config.txt`` (JSON text; empty when the file has none)."""
    try:
        strings = json.loads(config) if config else {}
    except ValueError:  # includes UnicodeDecodeError
        strings = None
    if not isinstance(strings, dict) or not all(isinstance(v, str) for v in strings.values()):
        raise YolorepError(f"{path}: malformed yolorep metadata (config.txt: not a JSON mapping of strings); export "
                           "the model again")  # fmt: skip
    return strings


class TorchScriptBackend(Backend):
    """A ``.torchscript`` file written by ``yolorep export --format torchscript`` (metadata in ``config.txt``)."""

    format = "torchscript"

    def __init__(self, path: Path, device: torch.device) -> None:
        extra = {"config.txt": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=FutureWarning)  # torch.jit deprecation notice
                self.module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        except (RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise YolorepError(f"{path}: not a readable TorchScript file ({first}); export it with yolorep") from None
        info = ModelMetadata.from_strings(_config_strings(extra["config.txt"], path), str(path))
        if info.precision == "fp16" and device.type != "cuda":
            raise YolorepError(
                f"{path}: holds fp16 weights, which run on CUDA; use --device 0 or export without --half"
            )
        self.dtype = torch.float16 if info.precision == "fp16" else torch.float32
        super().__init__(str(path), info, device)

    def _forward(self, images: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.module(images.to(self.device, self.dtype))
