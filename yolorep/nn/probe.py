"""The generic fuse: the single convolution a linear block computes, found by probing and verified before use.

A block marked with :func:`linear_then_activation` computes ``act(linear(x))``, where ``linear`` is affine in eval
mode (convolutions, BatchNorm with its running statistics, average pools, sums, scalings). If ``linear`` is also
what a zero-padded convolution computes, it is that convolution, and the convolution can be read off the block:

1. Shape: a zero input of 12 x 13 pixels gives the output channels and the stride; the output must be
   ``ceil(size / stride)`` pixels, as for a "same"-padded odd kernel.
2. Structure: the kernel's radius and groups are read from a copy of the block whose parameters and buffers are
   all random positive numbers, so a weight that happens to be zero (a BatchNorm started at gamma = 0) does not
   shrink the kernel: the fused shape depends on the block's structure alone, as loading a fused checkpoint needs.
3. Values, in one batched forward pass: the bias is the response to a zero image, the kernel the responses to
   unit impulses (one per input channel and stride phase) minus that bias.
4. Verification: on random inputs of two sizes, where the border is a large part of the image, the convolution
   must match ``linear`` and ``act`` of it must match ``forward``, every value to ``TOLERANCE`` (of the block's
   dtype) of the output's largest magnitude. Otherwise the block is refused (:class:`FuseRefused`), with the
   reason: it is not linear, or its border behaviour is one no zero-padded convolution has, or its output depends
   on position.

All of it runs on a float64 copy of the block on the CPU, where structural zeros are zero to float64 rounding, and
the kernel is cast to the block's dtype and device at the end.

The walk (:func:`yolorep.nn.fuse.fuse_modules`) leaves a refused block exactly as it is.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor, nn

from yolorep.nn.fuse import FuseRefused
from yolorep.nn.modules.conv import FusedConv, make_activation

__all__ = ["TOLERANCE", "linear_then_activation", "probe_conv"]

T = TypeVar("T", bound=type)
Linear = Callable[[Tensor], Tensor]

SHAPE_PROBE = (12, 13)  # rows, columns: strides 1-6 give distinct output sizes
PROBE_DTYPE = torch.float64  # the probe runs on a float64 CPU copy of the block
IMPULSE = 256.0  # a power of two: exact scaling, and the bias cancels with 1/256 of its rounding
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2}
PROBE_BYTES = 256 * 2**20  # impulse images per forward pass are capped to about this much memory
# Responses below this fraction of the largest are structural zeros. They are rounding, not always exact: torch's
# float64 convolution may round the same pixel of two images of one batch differently (a grouped 3x3 one of DBBlock
# on an AVX2 EPYC, by 1 ulp); the random twin's real responses are sums of products of numbers in [0.5, 1.5).
STRUCTURAL_ZERO = 1e-10


@dataclass(frozen=True)
class Geometry:
    """The convolution a probed block is: ``kernel_size = 2 * radius + 1``, padding ``radius``."""

    in_channels: int
    out_channels: int
    stride: int
    radius: int
    groups: int


def linear_then_activation(
    cls: T | None = None, *, linear: str = "linear", act: str | None = "act", max_kernel_size: int | None = None
) -> T | Callable[[T], T]:
    """Class decorator: the block's ``forward(x)`` is ``self.<act>(self.<linear>(x))`` with ``linear`` affine.

    The class gains ``fused()``, which probes ``linear`` for its equivalent convolution and returns a
    ``FusedConv`` (that convolution, then a copy of the activation), or raises :class:`FuseRefused`.

    Args:
        linear: name of the method computing the linear part.
        act: name of the activation attribute (any module), or ``None`` for none.
        max_kernel_size: the widest kernel the linear part can amount to, when it convolves through
            ``torch.nn.functional`` (the bound is otherwise read from its ``Conv2d`` and pooling modules).
    """

    def decorate(klass: T) -> T:
        if callable(getattr(klass, "fused", None)):
            raise TypeError(f"{klass.__qualname__} already defines fused(); the generic fuse would replace it")

        def fused(self: nn.Module) -> FusedConv:
            conv = probe_conv(self, linear, act=act, max_kernel_size=max_kernel_size)
            activation = make_activation(getattr(self, act)) if act else nn.Identity()
            return FusedConv(conv, copy.deepcopy(activation)).eval()

        fused.__doc__ = "The equivalent FusedConv, found by probing the linear part (yolorep.nn.probe)."
        klass.fused = fused
        return klass

    return decorate(cls) if cls is not None else decorate


def probe_conv(
    block: nn.Module, linear: str | None = None, *, act: str | None = None, max_kernel_size: int | None = None
) -> nn.Conv2d:
    """The biased ``nn.Conv2d`` equal to ``block.<linear>`` (default: ``block`` itself) in eval mode, verified, in
    the block's dtype and on its device.

    The probing runs on a float64 copy of ``block`` on the CPU: structural zeros come out zero to rounding there (no
    Winograd or FFT convolution, no TF32), and ``block`` itself is neither run nor changed. With ``act`` (the name
    of an activation attribute), ``block.forward(x)`` must also equal ``act(linear(x))``. The check holds every
    value to ``TOLERANCE`` of the block's dtype.

    Raises:
        FuseRefused: ``linear`` is not one zero-padded convolution; the message says why.
    """
    name = type(block).__name__
    reference = next((t for t in (*block.parameters(), *block.buffers()) if t.is_floating_point()), torch.zeros(()))
    tolerance = TOLERANCE.get(reference.dtype, 1e-5)
    in_channels = _in_channels(block, name)
    probe = copy.deepcopy(block).to("cpu", PROBE_DTYPE).eval()
    with torch.no_grad():
        function = getattr(probe, linear) if linear else probe
        out_channels, stride = _shape(function, in_channels, name)
        bound = _radius_bound(probe, stride, max_kernel_size)
        twin = _random_twin(probe)
        twin_function = getattr(twin, linear) if linear else twin
        geometry = _structure(twin_function, in_channels, out_channels, stride, bound, name)
        kernel, bias = _impulse_response(function, geometry, bound, name)
        conv = _as_conv(geometry, kernel, bias)
        _verify(function, conv, geometry, name, tolerance)
        if act is not None:
            _verify_forward(probe, FusedConv(conv, make_activation(getattr(probe, act))), geometry, tolerance)
    return conv.to(reference.device, reference.dtype)


def _in_channels(block: nn.Module, name: str) -> int:
    channels = getattr(block, "in_channels", None)
    if isinstance(channels, int):
        return channels
    first = next((m for m in block.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise FuseRefused(f"{name}: cannot tell its input channels; give it an 'in_channels' attribute")
    return first.in_channels


def _run(linear: Linear, x: Tensor, name: str) -> Tensor:
    try:
        y = linear(x)
    except Exception as err:  # any failure of user code means: not probeable
        raise FuseRefused(f"{name}: its linear part failed on a {list(x.shape)} input: {err}") from None
    if not isinstance(y, Tensor) or y.dim() != 4 or y.shape[0] != x.shape[0]:
        raise FuseRefused(f"{name}: its linear part must map [B, C, H, W] to one [B, C', H', W'] tensor")
    return y


def _shape(linear: Linear, in_channels: int, name: str) -> tuple[int, int]:
    """Output channels and stride, from the output size of a 12 x 13 zero input."""
    rows, cols = SHAPE_PROBE
    y = _run(linear, torch.zeros(1, in_channels, rows, cols, dtype=PROBE_DTYPE), name)
    for stride in range(1, rows + 1):
        if y.shape[-2:] == (math.ceil(rows / stride), math.ceil(cols / stride)):
            return y.shape[1], stride
    raise FuseRefused(
        f"{name}: a {rows} x {cols} input gives {tuple(y.shape[-2:])}, which no 'same'-padded convolution of "
        "stride 1-6 does (output = ceil(size / stride)); only such blocks fuse into one convolution"
    )


def _radius_bound(block: nn.Module, stride: int, max_kernel_size: int | None) -> int:
    """A radius the receptive field cannot exceed: the stride times the sum of every conv's and pool's radius
    (chains add up), plus one ring that must come out empty."""
    if max_kernel_size is not None:
        return max_kernel_size // 2 + 1
    total = 0
    for module in block.modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._MaxPoolNd)):
            sizes = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,)
            dilation = getattr(module, "dilation", 1)
            dilation = max(dilation) if isinstance(dilation, tuple) else dilation
            total += max((dilation * (k - 1) + 1) // 2 for k in sizes)
    return stride * total + 1


def _impulse_images(in_channels: int, stride: int, bound: int) -> tuple[Tensor, int]:
    """One image per (input channel, row phase, column phase) with ``IMPULSE`` at (s m + dy, s m + dx), then a
    zero image. Returns the images [C s^2 + 1, C, P, P] and m (the output index of the centre)."""
    m = math.ceil(bound / stride)
    size = stride * (2 * m + 1)
    phases = stride * stride
    images = torch.zeros(in_channels * phases + 1, in_channels, size, size, dtype=PROBE_DTYPE)
    index = torch.arange(in_channels * phases)
    channel, phase = index // phases, index % phases
    images[index, channel, stride * m + phase // stride, stride * m + phase % stride] = IMPULSE
    return images, m


def _probe(linear: Linear, in_channels: int, stride: int, bound: int, name: str) -> tuple[Tensor, Tensor]:
    """Responses to impulses as a full kernel [C_out, C_in, 2 R + 1, 2 R + 1] (R = ``bound``, cross-correlation
    order: entry (R + a, R + b) weighs input offset (a, b) from the output pixel's centre) and the bias map
    [C_out, O, O] of the zero image."""
    images, m = _impulse_images(in_channels, stride, bound)
    zero = images[-1:]
    per_image = images[0].numel() * images.element_size()
    chunk = max(1, PROBE_BYTES // per_image)
    # each chunk carries the zero image, so responses and bias come from the same call (same arithmetic)
    responses, bias_map = [], None
    for part in images[:-1].split(chunk):
        out = _run(linear, torch.cat((part, zero)), name)
        responses.append((out[:-1] - out[-1:]) / IMPULSE)
        bias_map = out[-1]
    response = torch.cat(responses).reshape(in_channels, stride, stride, *responses[0].shape[1:])
    offsets = torch.arange(-bound, bound + 1)
    phase = offsets % stride
    centre = m - torch.div(offsets - phase, stride, rounding_mode="floor")
    # [A, A, C_in, C_out] -> [C_out, C_in, A, A]
    kernel = response[:, phase[:, None], phase[None, :], :, centre[:, None], centre[None, :]].permute(3, 2, 0, 1)
    return kernel, bias_map


def _random_twin(block: nn.Module) -> nn.Module:
    """A copy of ``block`` whose floating parameters and buffers are random numbers in [0.5, 1.5): no weight is
    zero, no variance negative, so its impulse responses are zero only where the structure is."""
    twin = copy.deepcopy(block)
    generator = torch.Generator().manual_seed(0)
    for tensor in (*twin.parameters(), *twin.buffers()):
        if tensor.is_floating_point():
            tensor.copy_(torch.rand(tensor.shape, generator=generator).to(tensor) + 0.5)
    return twin


def _structure(twin: Linear, in_channels: int, out_channels: int, stride: int, bound: int, name: str) -> Geometry:
    """Radius and groups from the impulse responses of the random twin."""
    kernel, _ = _probe(twin, in_channels, stride, bound, name)
    used = kernel.abs() > STRUCTURAL_ZERO * kernel.abs().max()
    ring = used.any(dim=(0, 1))
    if ring[0].any() or ring[-1].any() or ring[:, 0].any() or ring[:, -1].any():
        raise FuseRefused(
            f"{name}: its receptive field is wider than its Conv2d and pooling layers allow ({bound - 1} pixels from "
            "the centre; a convolution through torch.nn.functional?); give @linear_then_activation a max_kernel_size"
        )
    rows = ring.any(dim=1).nonzero().flatten()
    radius = int((rows - bound).abs().max()) if rows.numel() else 0
    cols = ring.any(dim=0).nonzero().flatten()
    radius = max(radius, int((cols - bound).abs().max()) if cols.numel() else 0)
    return Geometry(in_channels, out_channels, stride, radius, _groups(used.any(dim=(2, 3))))


def _groups(used: Tensor) -> int:
    """The most groups whose block-diagonal holds every used [C_out, C_in] pair."""
    out_channels, in_channels = used.shape
    for groups in range(math.gcd(out_channels, in_channels), 1, -1):
        if out_channels % groups or in_channels % groups:
            continue
        blocks = used.reshape(groups, out_channels // groups, groups, in_channels // groups)
        off_diagonal = blocks.any(dim=(1, 3)) & ~torch.eye(groups, dtype=torch.bool)
        if not off_diagonal.any():
            return groups
    return 1


def _impulse_response(linear: Linear, geometry: Geometry, bound: int, name: str) -> tuple[Tensor, Tensor]:
    """The kernel [C_out, C_in / g, k, k] and bias [C_out] of the real block."""
    g, r = geometry.groups, geometry.radius
    full, bias_map = _probe(linear, geometry.in_channels, geometry.stride, bound, name)
    full = full[:, :, bound - r : bound + r + 1, bound - r : bound + r + 1]
    c_out, c_in, k, _ = full.shape
    blocks = full.reshape(g, c_out // g, g, c_in // g, k, k).diagonal(dim1=0, dim2=2)  # [C_out/g, C_in/g, k, k, g]
    kernel = blocks.permute(4, 0, 1, 2, 3).reshape(c_out, c_in // g, k, k)
    centre = bias_map.shape[-1] // 2
    return kernel, bias_map[:, centre, centre]


def _as_conv(geometry: Geometry, kernel: Tensor, bias: Tensor) -> nn.Conv2d:
    k = 2 * geometry.radius + 1
    conv = nn.Conv2d(
        geometry.in_channels, geometry.out_channels, k, geometry.stride, geometry.radius, groups=geometry.groups,
        device=kernel.device, dtype=kernel.dtype,
    ).requires_grad_(False)  # fmt: skip
    conv.weight.copy_(kernel)
    conv.bias.copy_(bias)
    return conv


def _check_inputs(geometry: Geometry) -> list[Tensor]:
    """Random inputs where the border is a large share: tiny, and a few kernels wide (odd by even)."""
    generator = torch.Generator().manual_seed(1)
    span = geometry.stride * (2 * geometry.radius + 1)
    sizes = [(2 * span + 3, 2 * span + 2), (3, 2)]  # the larger first: it has an interior, for the diagnosis
    return [torch.randn(2, geometry.in_channels, *size, generator=generator, dtype=PROBE_DTYPE) for size in sizes]


def _verify(linear: Linear, conv: nn.Conv2d, geometry: Geometry, name: str, tolerance: float) -> None:
    for x in _check_inputs(geometry):
        expected, got = _run(linear, x, name), conv(x)
        if expected.shape != got.shape:
            raise FuseRefused(
                f"{name}: a {tuple(x.shape[-2:])} input gives {tuple(expected.shape[-2:])}, a stride-"
                f"{geometry.stride} 'same' convolution {tuple(got.shape[-2:])}; it is not one convolution"
            )
        scale = expected.abs().max().clamp_min(torch.finfo(expected.dtype).tiny)
        error = (got - expected).abs()
        if error.max() > tolerance * scale:
            raise FuseRefused(f"{name}: {_diagnose(linear, x, error, geometry, scale, tolerance)}; left unfused")


def _diagnose(linear: Linear, x: Tensor, error: Tensor, geometry: Geometry, scale: Tensor, tolerance: float) -> str:
    """Why the probed convolution does not reproduce the block: not linear, its border, or position-dependent."""
    other = torch.randn_like(x)
    zero = torch.zeros_like(x)
    additivity = linear(x + other) - linear(x) - linear(other) + linear(zero)
    if additivity.abs().max() > tolerance * scale:
        return (
            f"not linear: f(a + b) - f(a) - f(b) + f(0) reaches {float(additivity.abs().max() / scale):.2g} of its "
            "output (an activation, max-pool or other non-linear operation inside the linear part?)"
        )
    frame = math.ceil(geometry.radius / geometry.stride) + 1
    interior = error[..., frame:-frame, frame:-frame]
    worst = float(error.max() / scale)
    if interior.numel() and interior.max() <= tolerance * scale:
        return (
            f"linear, but within {frame} pixels of the image border it differs from every zero-padded convolution "
            f"(by {worst:.2g} of its output): a layer that zero-pads the output of an earlier one sees zeros where "
            "one convolution of the padded input sees that layer's response (its bias, or a k x k convolution's "
            "reach); pad the input of the first layer instead (DBBlock pads its bias-free 1 x 1 conv)"
        )
    return f"linear, but no convolution computes it: away from the border it differs by {worst:.2g} of its output"


def _verify_forward(block: nn.Module, replacement: FusedConv, geometry: Geometry, tolerance: float) -> None:
    """``forward`` must be the activation of the linear part, as the decorator declares."""
    for x in _check_inputs(geometry):
        expected, got = block(x), replacement(x)
        scale = expected.abs().max().clamp_min(torch.finfo(expected.dtype).tiny)
        if expected.shape != got.shape or (got - expected).abs().max() > tolerance * scale:
            raise FuseRefused(
                f"{type(block).__name__}: forward(x) is not the activation of its linear part, as "
                "@linear_then_activation declares; left unfused"
            )
