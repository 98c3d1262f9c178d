"""ImageNet backbones from timm (Wightman, pytorch-image-models) as one row of a model YAML.

``TimmBackbone`` returns one feature map per requested level (level L = stride 2**L); ``Select`` picks one of them
for the rows that follow::

    backbone:
      - [-1, 1, TimmBackbone, {model: mobileone_s0, levels: [3, 4, 5]}]  # 0: [P3, P4, P5]
      - [0, 1, Select, [0]]  # 1: P3/8
      - [0, 1, Select, [1]]  # 2: P4/16
      - [0, 1, Select, [2]]  # 3: P5/32

timm is an optional dependency (``pip install 'yolorep[timm]'``), imported when a ``TimmBackbone`` is built.
``fused()`` re-parameterizes the backbone with timm's own method (``timm.utils.reparameterize_model``: each
block's ``fuse``, ``reparameterize`` or ``switch_to_deploy``); plain conv + BN pairs of timm models stay as timm
has them. ``pretrained: true`` downloads ImageNet weights through timm (Hugging Face Hub); a model rebuilt from a
checkpoint never does (:func:`without_pretrained_weights`), since the checkpoint holds its weights.
"""

from __future__ import annotations

import contextvars
import difflib
import importlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from yolorep.errors import YolorepError
from yolorep.nn.registry import register

__all__ = ["FusedTimmBackbone", "Select", "TimmBackbone", "without_pretrained_weights"]

_LOAD_PRETRAINED = contextvars.ContextVar("yolorep_load_pretrained", default=True)


@contextmanager
def without_pretrained_weights() -> Iterator[None]:
    """Build ``pretrained: true`` backbones without downloading (the weights are about to be overwritten)."""
    token = _LOAD_PRETRAINED.set(False)
    try:
        yield
    finally:
        _LOAD_PRETRAINED.reset(token)


def _import_timm() -> Any:
    try:
        return importlib.import_module("timm")
    except ImportError:
        raise ValueError("TimmBackbone needs timm; install it with pip install 'yolorep[timm]'") from None


def _create(timm: Any, model: str, in_channels: int, pretrained: bool) -> nn.Module:
    if not timm.is_model(model):
        close = difflib.get_close_matches(model, timm.list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "see timm.list_models()"
        raise ValueError(f"timm has no model {model!r}; {hint}")
    # on the meta device (the builder's memory estimate) nothing is downloaded
    pretrained = pretrained and _LOAD_PRETRAINED.get() and torch.empty(0).device.type != "meta"
    try:
        return timm.create_model(model, pretrained=pretrained, features_only=True, in_chans=in_channels)
    except Exception as err:
        if not pretrained:
            raise ValueError(f"timm cannot build {model!r} as a feature backbone: {err}") from None
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"cannot load ImageNet weights for {model!r} ({reason}); check the network connection (timm downloads "
            "them from the Hugging Face Hub) or set pretrained: false"
        ) from None


@register(out_channels=None)
class TimmBackbone(nn.Module):
    """A timm model's feature maps at ``levels`` (stride 2**level): ``forward`` returns a list, one
    [B, C_level, H / 2**level, W / 2**level] per level; ``out_channels`` lists their channels."""

    def __init__(
        self, in_channels: int, model: str, levels: Sequence[int] = (3, 4, 5), pretrained: bool = False
    ) -> None:
        super().__init__()
        body = _create(_import_timm(), model, in_channels, pretrained)
        reductions = list(body.feature_info.reduction())
        available = [r.bit_length() - 1 for r in reductions]
        missing = [level for level in levels if level not in available]
        if missing or not levels:
            raise ValueError(f"levels {list(levels)}: {model!r} has feature levels {available} (stride 2**level)")
        self.model_name = model
        self.body = body
        self.indices = [available.index(level) for level in levels]
        self.out_channels = [body.feature_info.channels()[i] for i in self.indices]

    def forward(self, x: Tensor) -> list[Tensor]:
        features = self.body(x)
        return [features[i] for i in self.indices]

    def fused(self) -> FusedTimmBackbone:
        """A copy re-parameterized by timm's own walk (this module is left as it is)."""
        from timm.utils.model import reparameterize_model

        body = reparameterize_model(self.body, inplace=False)
        return FusedTimmBackbone(body, self.indices, self.out_channels, self.model_name).eval()


class FusedTimmBackbone(nn.Module):
    """A ``TimmBackbone`` after timm's re-parameterization: inference only, as every fused module."""

    is_fused = True

    def __init__(self, body: nn.Module, indices: list[int], out_channels: list[int], model_name: str) -> None:
        super().__init__()
        self.model_name = model_name
        self.body = body
        self.indices = list(indices)
        self.out_channels = list(out_channels)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = self.body(x)
        return [features[i] for i in self.indices]

    def train(self, mode: bool = True) -> FusedTimmBackbone:
        if mode:
            raise YolorepError(
                f"this model is fused ({self.model_name} re-parameterized by timm) and cannot be trained; train the "
                "unfused model and fuse it afterwards"
            )
        return super().train(False)


@register(out_channels=None)
class Select(nn.Module):
    """One map of a layer that returns several (``TimmBackbone``): ``forward(maps)`` returns ``maps[index]``."""

    def __init__(self, in_channels: list[int], index: int) -> None:
        super().__init__()
        if not isinstance(in_channels, (list, tuple)) or not -len(in_channels) <= index < len(in_channels):
            raise ValueError(f"index {index} does not select one of the {in_channels} maps of the layer it reads")
        self.index = index
        self.out_channels = in_channels[index]

    def forward(self, maps: list[Tensor]) -> Tensor:
        return maps[self.index]
