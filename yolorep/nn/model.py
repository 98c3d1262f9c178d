"""``DetectionModel``: layers built from a model YAML, the routing between them, fusing and a summary; and
``DecodedModel``, the same network with its raw maps decoded into boxes and scores (what is exported)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from yolorep.config import ModelSpec, load_model_spec
from yolorep.errors import ConfigError
from yolorep.nn.builder import build_layers
from yolorep.nn.fuse import fuse_modules, unfused_modules
from yolorep.nn.modules.head import DetectionHead

__all__ = ["DecodedModel", "DetectionModel", "build_model"]

LOGGER = logging.getLogger(__name__)


class DetectionModel(nn.Module):
    """A detector described by a ``ModelSpec``; the last layer is a ``DetectionHead`` (``Detect``, ...).

    Routing (which earlier outputs each layer reads) lives here rather than on the modules, so fusing may replace
    any layer by a module of another type.

    ``model(images)`` takes [B, 3, H, W] float RGB in 0..1 and returns the head's raw maps, one
    [B, 4 * reg_max + nc, H_i, W_i] per level, in training and evaluation alike; the loss reads them as they are
    and ``model.decode(maps)`` turns them into [B, N, 4 + nc] detections (xyxy input pixels, class scores).

    Attributes:
        stride: [levels] input pixels per cell of each head level, measured once at build time.
        names: class names (``class0`` ... until a dataset or checkpoint sets them).
        fuse_report: what the last ``fuse()`` did, e.g. ``"fused 20 RepVGGBlock, 15 Conv"``.
    """

    def __init__(self, spec: ModelSpec, in_channels: int = 3, stride_probe: int = 256) -> None:
        super().__init__()
        self.spec = spec
        built = build_layers(spec, in_channels)
        self.layers = built.layers
        self.inputs = built.inputs
        self.saved = built.saved
        if not isinstance(self.layers[-1], DetectionHead) or not isinstance(self.inputs[-1], tuple):
            raise ConfigError(
                f"{spec.layers[-1].where}: the last row must be a detection head (Detect, YOLOv8Detect) reading a "
                "list of layers"
            )
        self._set_batchnorm(spec.cfg.get("bn_eps"), spec.cfg.get("bn_momentum"))
        self.names = [f"class{i}" for i in range(spec.nc)]
        self.fuse_report = ""
        self.register_buffer("stride", self._measure_strides(in_channels, stride_probe), persistent=False)
        self.head.initialize_biases(self.stride)

    def _set_batchnorm(self, eps: float | None, momentum: float | None) -> None:
        """The YAML's ``bn_eps`` / ``bn_momentum`` for every BatchNorm (YOLOv6 and ultralytics train with 1e-3 and
        0.03 instead of torch's 1e-5 and 0.1; eps changes what a trained model computes)."""
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eps = float(eps) if eps is not None else module.eps
                module.momentum = float(momentum) if momentum is not None else module.momentum

    def _measure_strides(self, in_channels: int, size: int) -> Tensor:
        """Input pixels per cell of each head input, from the shapes of one forward pass on a blank image."""
        with torch.no_grad():
            features = self.head_inputs(torch.zeros(1, in_channels, size, size))
        return torch.tensor([size / f.shape[-1] for f in features])

    @property
    def head(self) -> DetectionHead:
        return self.layers[-1]

    @property
    def cfg(self) -> dict[str, Any]:
        """The plain config this model was built from (what a checkpoint stores, with ``spec.scale``)."""
        return self.spec.cfg

    @property
    def nc(self) -> int:
        return self.spec.nc

    @property
    def reg_max(self) -> int:
        return self.head.reg_max

    @property
    def is_fused(self) -> bool:
        """True when every fusable module has been replaced by its fused form, or kept because its fuse was refused
        (read from the modules)."""
        modules = [m for m in self.modules() if m is not self]
        return any(getattr(m, "is_fused", False) for m in modules) and not unfused_modules(self)

    def head_inputs(self, x: Tensor) -> list[Tensor]:
        outputs = self._run(x, len(self.layers) - 1)
        return [outputs[s] for s in self.inputs[-1]]

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.head(self.head_inputs(x))

    def decode(self, maps: list[Tensor]) -> Tensor:
        """Raw maps -> [B, N, 4 + nc]: boxes (x1, y1, x2, y2) in input pixels, then class probabilities."""
        return self.head.decode(maps, self.stride)

    def _run(self, x: Tensor, stop: int) -> dict[int, Tensor]:
        """Run layers [0, stop) and return the outputs a later layer (the head included) reads, by index."""
        kept: dict[int, Tensor] = {-1: x}
        wanted = self.saved | set(self.inputs[-1])
        for index in range(stop):
            source = self.inputs[index]
            if isinstance(source, tuple):
                x = self.layers[index]([x if s == index - 1 else kept[s] for s in source])
            else:
                x = self.layers[index](x if source == index - 1 else kept[source])
            if index in wanted:
                kept[index] = x
        return kept

    def fuse(self) -> DetectionModel:
        """Fuse every re-parameterizable block and conv+BN in place; eval mode; idempotent. Returns self.

        What was fused is kept in ``fuse_report`` (and logged at debug level); a fused model refuses ``train()``.
        A block whose generic fuse is refused (``yolorep.nn.probe``) stays as it is, with a warning saying why.
        """
        self.eval()
        with torch.no_grad():
            _, counts = fuse_modules(self)
        if counts:
            self.fuse_report = _fuse_report(counts)
        elif not self.fuse_report:
            self.fuse_report = "nothing to fuse"
        LOGGER.debug("%s: %s", self.spec.name, self.fuse_report)
        return self

    def info(self, imgsz: int = 640, verbose: bool = True) -> dict[str, Any]:
        """Layers, parameters and GFLOPs (torch's FlopCounterMode, one image at ``imgsz``, 2 FLOPs per MAC)."""
        from torch.utils.flop_counter import FlopCounterMode

        params = sum(p.numel() for p in self.parameters())
        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            dtype = next(self.parameters()).dtype
            counter = FlopCounterMode(display=False)
            with torch.no_grad(), counter:
                self(torch.zeros(1, 3, imgsz, imgsz, device=device, dtype=dtype))
        finally:
            if was_training:
                self.train()
        summary = {
            "layers": sum(1 for _ in self.modules()),
            "params": params,
            "gflops": counter.get_total_flops() / 1e9,
            "imgsz": imgsz,
            "fused": self.is_fused,
        }
        if verbose:
            state = "fused" if summary["fused"] else "unfused"
            LOGGER.info(
                "%s (%s): %d layers, %s parameters, %.1f GFLOPs at %d",
                self.spec.name, state, summary["layers"], f"{params:,}", summary["gflops"], imgsz,
            )  # fmt: skip
        return summary


def _fuse_report(counts: Counter) -> str:
    """``"fused 20 RepVGGBlock, 15 Conv"``, then ``"; refused 1 MyBlock"`` for blocks left unfused."""
    refused_tag = " (refused)"
    fused = [f"{n} {name}" for name, n in counts.most_common() if not name.endswith(refused_tag)]
    refused = [f"{n} {name[: -len(refused_tag)]}" for name, n in counts.most_common() if name.endswith(refused_tag)]
    parts = (["fused " + ", ".join(fused)] if fused else []) + (["refused " + ", ".join(refused)] if refused else [])
    return "; ".join(parts)


class DecodedModel(nn.Module):
    """A ``DetectionModel`` followed by decoding: ``images [B, 3, H, W] -> [B, N, 4 + nc]`` (xyxy input pixels,
    class scores; no NMS). This is the graph yolorep exports and what the runtimes return.

    ``names``, ``stride``, ``is_fused`` and ``meta`` (checkpoint metadata, if any) are the wrapped model's.
    """

    def __init__(self, model: DetectionModel) -> None:
        super().__init__()
        self.model = model

    @property
    def names(self) -> list[str]:
        return self.model.names

    @property
    def stride(self) -> Tensor:
        return self.model.stride

    @property
    def is_fused(self) -> bool:
        return self.model.is_fused

    @property
    def meta(self) -> dict[str, Any]:
        return getattr(self.model, "meta", {})

    def forward(self, images: Tensor) -> Tensor:
        return self.model.decode(self.model(images))


def build_model(
    cfg: str | Path | dict, nc: int | None = None, scale: str | None = None, name: str | None = None
) -> DetectionModel:
    """Build a detector from a model YAML path (``yolorep-s.yaml`` selects scale s), or a config mapping.

    See :func:`yolorep.config.load_model_spec` for the arguments.
    """
    return DetectionModel(load_model_spec(cfg, nc=nc, scale=scale, name=name))
