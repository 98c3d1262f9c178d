"""Structural re-parameterization: the fuse protocol, the tree walk and the kernel maths.

A module takes part in fusing by implementing ``fused() -> nn.Module``: it returns a new inference module,
computed from its own raw parameters, that gives the same output in eval mode. The walk replaces the outermost
fusable module and never descends into it, so a block does not depend on anything inside it having been fused.

The maths (RepVGG, Ding et al., CVPR 2021): in eval mode a BatchNorm is the per-channel affine map
``y = gamma * (x - mean) / sqrt(var + eps) + beta``, so ``conv -> BN`` equals one conv with kernel
``W * gamma / std`` and bias ``beta + (b - mean) * gamma / std``. A 1x1 kernel zero-padded to k x k, and the
identity written as a k x k kernel with a single 1 at the centre, add to the k x k kernel because convolution is
linear in its kernel.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from yolorep.errors import YolorepError

__all__ = [
    "FuseRefused",
    "Fusable",
    "add_pointwise_and_identity",
    "average_kernel",
    "bn_kernel_bias",
    "conv_from_kernel",
    "fuse",
    "fuse_conv_bn",
    "fuse_modules",
    "fused_copy",
    "identity_kernel",
    "is_fusable",
    "merge_1x1_kxk",
    "pad_kernel",
    "randomize_batchnorm",
    "unfused_modules",
]

LOGGER = logging.getLogger(__name__)


@runtime_checkable
class Fusable(Protocol):
    """A module that can return an equivalent single-path inference module of itself.

    ``fused()`` may raise :class:`FuseRefused` (the generic fuse does, for a block that is not one convolution);
    the walk then leaves that module exactly as it is and marks it with a ``fuse_refused`` attribute (the reason).
    """

    def fused(self) -> nn.Module: ...


class FuseRefused(YolorepError):
    """A block cannot be replaced by one convolution; the message says which block and why."""


def is_fusable(module: nn.Module) -> bool:
    return isinstance(module, Fusable)


def fuse_modules(module: nn.Module) -> tuple[nn.Module, Counter]:
    """Replace every outermost fusable module in ``module`` (itself included) by its fused form.

    A module whose ``fused()`` refuses is kept, unchanged and not descended into, with the reason in its
    ``fuse_refused`` attribute (and logged as a warning); later walks leave it alone.

    Returns:
        The fused module (``module`` itself, modified in place, unless ``module`` is fusable) and a counter of
        the class names that were fused; refused ones count as ``"<name> (refused)"``.
    """
    counts: Counter = Counter()
    if is_fusable(module):
        if getattr(module, "fuse_refused", None):  # refused before: the walk is idempotent
            return module, counts
        try:
            fused = module.fused()
        except FuseRefused as refusal:
            module.fuse_refused = str(refusal)
            LOGGER.warning("%s", refusal)
            counts[f"{type(module).__name__} (refused)"] += 1
            return module, counts
        counts[type(module).__name__] += 1
        return fused, counts
    for name, child in list(module.named_children()):
        new_child, child_counts = fuse_modules(child)
        counts.update(child_counts)
        if new_child is not child:
            setattr(module, name, new_child)
    return module, counts


def unfused_modules(module: nn.Module, prefix: str = "") -> list[str]:
    """Names of the modules the walk would still fuse: fusable, not refused, not inside a fusable module."""
    if is_fusable(module):
        return [] if getattr(module, "fuse_refused", None) else [prefix or type(module).__name__]
    found = []
    for name, child in module.named_children():
        found += unfused_modules(child, f"{prefix}.{name}" if prefix else name)
    return found


def fuse(module: nn.Module) -> nn.Module:
    """Fuse every fusable module of a tree in place (eval mode) and return the result.

    ``module`` may itself be fusable (a single block), in which case the returned module is a new object (or
    ``module`` itself, if its fuse was refused).
    """
    module.eval()
    with torch.no_grad():
        fused, _ = fuse_modules(module)
    return fused.eval()


def fused_copy(model: nn.Module) -> nn.Module:
    """A fused deep copy of ``model``, which is left untouched (it may go on training).

    A model with its own ``fuse()`` (``DetectionModel``, which also records what was fused) is fused by it; any
    other module tree by :func:`fuse`.
    """
    copied = copy.deepcopy(model)
    return copied.fuse() if callable(getattr(copied, "fuse", None)) else fuse(copied)


def bn_kernel_bias(
    weight: torch.Tensor, bn: _BatchNorm, bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm into the conv kernel ``weight`` [C_out, C_in/g, k, k] that feeds it.

    Args:
        weight: kernel of the conv in front of ``bn``.
        bn: any ``_BatchNorm`` (BatchNorm2d, SyncBatchNorm) with ``C_out`` features and running statistics.
        bias: the conv's own bias [C_out], if any.

    Returns:
        ``(kernel [C_out, C_in/g, k, k], bias [C_out])`` in ``weight``'s dtype and device.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{type(bn).__name__} has no running statistics (track_running_stats=False); cannot fuse it")
    dtype = weight.dtype
    # compute in float32 at least, so fp16/bf16 weights do not lose the fold to rounding
    calc = torch.promote_types(dtype, torch.float32)
    std = (bn.running_var.to(calc) + bn.eps).sqrt()
    gamma = bn.weight.to(calc) if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias.to(calc) if bn.bias is not None else torch.zeros_like(std)
    scale = gamma / std
    conv_bias = bias.to(calc) if bias is not None else torch.zeros_like(std)
    kernel = weight.to(calc) * scale.reshape(-1, 1, 1, 1)
    fused_bias = beta + (conv_bias - bn.running_mean.to(calc)) * scale
    return kernel.to(dtype), fused_bias.to(dtype).to(weight.device)


def conv_from_kernel(reference: nn.Conv2d, kernel: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    """A new biased ``nn.Conv2d`` with ``reference``'s geometry holding ``kernel`` [C_out, C_in/g, k, k] and
    ``bias`` [C_out] (in ``kernel``'s dtype and device), without gradients: the inference form of a fused branch."""
    conv = nn.Conv2d(
        reference.in_channels,
        reference.out_channels,
        reference.kernel_size,
        stride=reference.stride,
        padding=reference.padding,
        dilation=reference.dilation,
        groups=reference.groups,
        bias=True,
        padding_mode=reference.padding_mode,
        device=kernel.device,
        dtype=kernel.dtype,
    ).requires_grad_(False)
    with torch.no_grad():
        conv.weight.copy_(kernel)
        conv.bias.copy_(bias)
    return conv


def fuse_conv_bn(conv: nn.Conv2d, bn: _BatchNorm) -> nn.Conv2d:
    """Return a new ``nn.Conv2d`` with bias equal to ``bn(conv(x))`` in eval mode."""
    return conv_from_kernel(conv, *bn_kernel_bias(conv.weight, bn, conv.bias))


def pad_kernel(weight: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Zero-pad a kernel [C_out, C_in/g, kh, kw] to [C_out, C_in/g, k, k] around its centre (k - kh, k - kw even):
    a 1 x 1, 1 x k or k x 1 branch as a k x k kernel."""
    pad_h = (kernel_size - weight.shape[-2]) // 2
    pad_w = (kernel_size - weight.shape[-1]) // 2
    return F.pad(weight, [pad_w, pad_w, pad_h, pad_h]) if pad_h or pad_w else weight


def merge_1x1_kxk(
    first: tuple[torch.Tensor, torch.Tensor], second: tuple[torch.Tensor, torch.Tensor], groups: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One k x k conv equal to a 1 x 1 conv followed by a k x k conv (both with ``groups`` groups), each with bias.

    Exact at the image border only when the k x k conv sees, outside the image, what the 1 x 1 conv gives for a
    zero input (its bias), as it would if the 1 x 1 conv had run on the zero-padded input: ``DBBlock`` pads the
    1 x 1 conv itself, so its BatchNorm turns the padded zeros into exactly that bias.

    Args:
        first: kernel [M, C_in/g, 1, 1] and bias [M] of the 1 x 1 conv.
        second: kernel [C_out, M/g, k, k] and bias [C_out] of the k x k conv.

    Returns:
        ``(kernel [C_out, C_in/g, k, k], bias [C_out])``: within group ``g``, ``K[o, i] = sum_m K2[o, m] K1[m, i]``
        and ``b[o] = b2[o] + sum_{m, y, x} K2[o, m, y, x] b1[m]``.
    """
    (k1, b1), (k2, b2) = first, second
    out_channels, mid_per_group, k, _ = k2.shape
    k1 = k1.reshape(groups, mid_per_group, -1)  # [g, M/g, C_in/g]
    k2 = k2.reshape(groups, out_channels // groups, mid_per_group, k, k)  # [g, C_out/g, M/g, k, k]
    kernel = torch.einsum("gomyx,gmi->goiyx", k2, k1).reshape(out_channels, -1, k, k)
    bias = b2 + torch.einsum("gomyx,gm->go", k2, b1.reshape(groups, mid_per_group)).reshape(out_channels)
    return kernel, bias


def identity_kernel(channels: int, groups: int, kernel_size: int, like: torch.Tensor) -> torch.Tensor:
    """The k x k grouped-conv kernel that computes the identity on ``channels`` channels.

    Output channel ``i`` reads input ``i``, which inside its group is input slot ``i % (channels // groups)``;
    a plain diagonal is only right for ``groups == 1``.

    Returns:
        [channels, channels // groups, k, k] with ``like``'s dtype and device.
    """
    per_group = channels // groups
    kernel = torch.zeros(channels, per_group, kernel_size, kernel_size, dtype=like.dtype, device=like.device)
    index = torch.arange(channels, device=like.device)
    kernel[index, index % per_group, kernel_size // 2, kernel_size // 2] = 1
    return kernel


def average_kernel(channels: int, groups: int, kernel_size: int, like: torch.Tensor) -> torch.Tensor:
    """The k x k grouped-conv kernel of a k x k average pool (zero padding counted, as ``nn.AvgPool2d`` does by
    default): :func:`identity_kernel` with ``1 / k**2`` at every position instead of 1 at the centre.

    Returns:
        [channels, channels // groups, k, k] with ``like``'s dtype and device.
    """
    eye = identity_kernel(channels, groups, 1, like)
    return eye.expand(-1, -1, kernel_size, kernel_size) / kernel_size**2


def randomize_batchnorm(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm of ``module`` random running statistics and affine parameters, in place.

    A fresh BatchNorm (mean 0, variance 1, weight 1, bias 0) is nearly the identity, so a fuse that mishandles
    BatchNorm still looks exact on a freshly built model; fuse checks randomize first. Returns ``module``.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(n: int, low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, _BatchNorm):
                n = m.num_features
                m.running_mean.copy_(uniform(n, -1.0, 1.0))
                m.running_var.copy_(uniform(n, 0.3, 3.0))
                if m.weight is not None:
                    m.weight.copy_(uniform(n, 0.4, 1.6))
                    m.bias.copy_(uniform(n, -0.5, 0.5))
    return module


def add_pointwise_and_identity(
    kernel: torch.Tensor, bias: torch.Tensor, conv: nn.Conv2d, pointwise: nn.Module | None, identity: nn.Module | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``kernel``, ``bias`` of a k x k branch (``conv``'s shape) plus a 1 x 1 conv+BN branch (``pointwise``, with
    ``kernel_bias()``; padded to k x k) and an identity BatchNorm branch, each when present (RepVGG's and
    MobileOne's shared branches)."""
    k = conv.kernel_size[0]
    if pointwise is not None:
        pointwise_kernel, pointwise_bias = pointwise.kernel_bias()
        kernel, bias = kernel + pad_kernel(pointwise_kernel, k), bias + pointwise_bias
    if identity is not None:
        eye = identity_kernel(conv.in_channels, conv.groups, k, like=conv.weight)
        eye_kernel, eye_bias = bn_kernel_bias(eye, identity)
        kernel, bias = kernel + eye_kernel, bias + eye_bias
    return kernel, bias
