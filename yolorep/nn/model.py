"""``DetectionModel``: layers built from a model YAML, the routing between them, fusing and a summary."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from yolorep.config import ModelSpec, load_model_spec
from yolorep.errors import ConfigError, YolorepError
from yolorep.nn.builder import build_layers
from yolorep.nn.fuse import fuse_modules, is_fusable
from yolorep.nn.modules.head import Detect

__all__ = ["DetectionModel", "build_model"]

LOGGER = logging.getLogger(__name__)


class DetectionModel(nn.Module):
    """A detector described by a ``ModelSpec``; the last layer is the ``Detect`` head.

    Routing (which earlier outputs each layer reads) lives here rather than on the modules, so fusing may replace
    any layer by a module of another type.

    Eval mode: ``model(images [B, 3, H, W] float in 0..1)`` -> [B, N, 4 + nc] (xyxy input pixels, class scores).
    Train mode: the head's raw maps, one [B, 4 * reg_max + nc, H_i, W_i] per level.
    """

    def __init__(self, spec: ModelSpec, in_channels: int = 3, stride_probe: int = 256) -> None:
        super().__init__()
        self.spec = spec
        built = build_layers(spec, in_channels)
        self.layers = built.layers
        self.sources = built.sources
        self.saved = built.saved
        if not isinstance(self.layers[-1], Detect) or not isinstance(self.sources[-1], tuple):
            raise ConfigError(f"{spec.layers[-1].where}: the last row must be a Detect head reading a list of layers")
        self.names = [f"class{i}" for i in range(spec.nc)]
        self.fuse_report = ""
        with torch.no_grad():
            probe = torch.zeros(1, in_channels, stride_probe, stride_probe)
            features = self.head_inputs(probe)
        self.head.strides.copy_(torch.tensor([stride_probe / f.shape[-1] for f in features]))
        self.head.initialize_biases()

    @property
    def head(self) -> Detect:
        return self.layers[-1]

    @property
    def cfg(self) -> dict[str, Any]:
        """The plain config this model was built from (what a checkpoint stores)."""
        return self.spec.cfg

    @property
    def nc(self) -> int:
        return self.spec.nc

    @property
    def stride(self) -> Tensor:
        return self.head.strides

    @property
    def is_fused(self) -> bool:
        """True when every fusable module has been replaced by its fused form (read from the modules)."""
        modules = [m for m in self.modules() if m is not self]
        return any(getattr(m, "is_fused", False) for m in modules) and not any(is_fusable(m) for m in modules)

    def head_inputs(self, x: Tensor) -> list[Tensor]:
        outputs = self._run(x, len(self.layers) - 1)
        return [outputs[s] for s in self.sources[-1]]

    def forward(self, x: Tensor) -> list[Tensor] | Tensor:
        return self.head(self.head_inputs(x))

    def _run(self, x: Tensor, stop: int) -> dict[int, Tensor]:
        """Run layers [0, stop) and return the outputs a later layer (the head included) reads, by index."""
        kept: dict[int, Tensor] = {-1: x}
        wanted = self.saved | set(self.sources[-1])
        for index in range(stop):
            source = self.sources[index]
            if isinstance(source, tuple):
                x = self.layers[index]([x if s == index - 1 else kept[s] for s in source])
            else:
                x = self.layers[index](x if source == index - 1 else kept[source])
            if index in wanted:
                kept[index] = x
        return kept

    def train(self, mode: bool = True) -> DetectionModel:
        if mode and any(getattr(m, "is_fused", False) for m in self.modules() if m is not self):
            raise YolorepError(
                f"{self.spec.name}: this model is fused (BatchNorm folded into its convolutions) and cannot be "
                "trained; train the unfused model (build it, or load an unfused checkpoint such as last.pt) and "
                "fuse it for evaluation and deployment"
            )
        return super().train(mode)

    def fuse(self, verbose: bool = True) -> DetectionModel:
        """Fuse every re-parameterizable block and conv+BN in place; eval mode; idempotent. Returns self."""
        self.eval()
        with torch.no_grad():
            _, counts = fuse_modules(self)
        if counts:
            self.fuse_report = "fused " + ", ".join(f"{n} {name}" for name, n in counts.most_common())
        elif not self.fuse_report:
            self.fuse_report = "nothing to fuse"
        if verbose:
            LOGGER.info("%s: %s", self.spec.name, self.fuse_report)
        return self.eval()

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
                self.spec.name,
                state,
                summary["layers"],
                f"{params:,}",
                summary["gflops"],
                imgsz,
            )
        return summary


def build_model(cfg: str | Path | dict, nc: int | None = None) -> DetectionModel:
    """Build a detector from a model YAML path (``yolorep-s.yaml`` selects scale s), or a config dict."""
    return DetectionModel(load_model_spec(cfg, nc=nc))
