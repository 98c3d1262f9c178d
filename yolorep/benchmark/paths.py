"""The ways the benchmark can run a model ("paths") and the tolerance each is held to.

A path combines channels-last memory format, reduced precision (fp16 or bf16, either by casting the weights or by
autocast over fp32 weights), ``torch.compile`` and CUDA-graph replay. Every path is checked against the plain fused
model in exact fp32: boxes are compared in pixels against a tolerance proportional to the image size, class scores
(probabilities) absolutely.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from yolorep.engine.device import cudnn_autotune

__all__ = [
    "TOLERANCES",
    "Check",
    "RunOptions",
    "Runner",
    "cudnn_autotune",
    "exact_fp32",
    "output_diff",
    "tf32_convs_enabled",
    "tolerance",
]

DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}

# Largest accepted difference from the fused fp32 model: (boxes as a fraction of imgsz, scores absolute).
# Measured on yolorep-n/s with randomized BatchNorm at 64-640 px: fp32 paths differ by ~2e-7 of imgsz and 1e-6
# in score, fp16 by ~1e-3 and 1e-3, bf16 by ~5e-3 and 6e-3. TF32 convolutions (the CUDA default for fp32) keep
# fp16's 10-bit mantissa, so they get fp16's tolerance. About 10x headroom over the measurements.
# fp32_cuda: IEEE fp32 on a GPU (TF32 off), not yet measured. cuDNN may pick Winograd or FFT convolutions, which
# transform kernels and inputs and round more than direct summation (of the order of 1e-5 relative per layer
# instead of 1e-7), and the unfused and fused models, whose convolutions differ in shape, may get different ones.
# Over ~40 layers with random BatchNorm that can exceed the CPU's 1e-4; 1e-3 (0.64 px at 640) stays 10x under
# the TF32 and fp16 tolerances, and a wrong fuse (a misplaced BatchNorm) differs by orders of magnitude more.
TOLERANCES = {
    "fp32": (1e-4, 1e-4),
    "fp32_cuda": (1e-3, 1e-3),
    "tf32": (1e-2, 1e-2),
    "fp16": (1e-2, 1e-2),
    "bf16": (3e-2, 5e-2),
}


def tolerance(precision: str, device: torch.device) -> tuple[float, float]:
    """The ``TOLERANCES`` entry for outputs computed in ``precision`` (fp32, tf32, fp16, bf16) on ``device``."""
    return TOLERANCES["fp32_cuda" if precision == "fp32" and device.type == "cuda" else precision]


def tf32_convs_enabled() -> bool:
    """True when cuDNN may run fp32 convolutions in TF32 (PyTorch's default on Ampere and newer)."""
    return bool(torch.backends.cudnn.allow_tf32)


@contextlib.contextmanager
def exact_fp32() -> Iterator[None]:
    """IEEE fp32 convolutions and matrix products (no TF32) inside the block, for reference outputs; restores the
    settings after."""
    previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous


@dataclass(frozen=True)
class RunOptions:
    """One path. ``cast_weights`` picks how a reduced ``dtype`` is applied: model cast to it, or autocast."""

    device: torch.device
    dtype: torch.dtype = torch.float32
    cast_weights: bool = False
    channels_last: bool = False
    compile: bool = False
    cuda_graph: bool = False

    @property
    def is_reduced(self) -> bool:
        return self.dtype != torch.float32

    @property
    def is_plain(self) -> bool:
        return not (self.is_reduced or self.channels_last or self.compile or self.cuda_graph)

    @property
    def precision(self) -> str:
        """The arithmetic the convolutions use: fp32, tf32, fp16 or bf16."""
        if self.is_reduced:
            return DTYPE_NAMES[self.dtype]
        return "tf32" if self.device.type == "cuda" and tf32_convs_enabled() else "fp32"

    def describe(self) -> str:
        """E.g. ``fp16 weights + channels-last + compile + CUDA graph``."""
        way = "weights" if self.cast_weights else "autocast"
        parts = [f"{self.precision} {way}" if self.is_reduced else self.precision]
        parts += [name for name, on in (("channels-last", self.channels_last), ("compile", self.compile)) if on]
        if self.cuda_graph:
            parts.append("CUDA graph")
        return " + ".join(parts)


class Runner:
    """A model set up for one path: ``x = runner.prepare(images)`` once, then ``runner(x)`` per timed call.

    The model is converted in place (memory format, dtype), so pass a copy. With ``cuda_graph`` the forward pass
    is captured once on ``example``'s shape after a warm-up on a side stream (cuDNN autotuning, compilation and
    allocations must happen outside the capture); a call then replays the graph and returns its static output
    buffer, which the next call overwrites.
    """

    def __init__(self, model: nn.Module, options: RunOptions, example: Tensor) -> None:
        self.options = options
        model.eval()
        if options.channels_last:
            model.to(memory_format=torch.channels_last)
        if options.cast_weights:
            model.to(options.dtype)
        self._model = torch.compile(model) if options.compile else model
        self._graph: torch.cuda.CUDAGraph | None = None
        if options.cuda_graph:
            self._capture(self._convert(example))

    def _convert(self, images: Tensor) -> Tensor:
        x = images.to(self.options.device, self.options.dtype if self.options.cast_weights else torch.float32)
        return x.contiguous(
            memory_format=torch.channels_last if self.options.channels_last else torch.contiguous_format
        )

    def _forward(self, x: Tensor) -> Tensor:
        options = self.options
        # cache_enabled=False: the autocast weight cache must not outlive a CUDA graph capture
        autocast = (
            torch.autocast(options.device.type, dtype=options.dtype, cache_enabled=False)
            if options.is_reduced and not options.cast_weights
            else contextlib.nullcontext()
        )
        with torch.no_grad(), autocast:
            return self._model(x)

    def _capture(self, x: Tensor, warmup: int = 3) -> None:
        self._static_input = x.clone()
        stream = torch.cuda.Stream(self.options.device)
        stream.wait_stream(torch.cuda.current_stream(self.options.device))
        with torch.cuda.stream(stream):
            for _ in range(warmup):
                self._forward(self._static_input)
        torch.cuda.current_stream(self.options.device).wait_stream(stream)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._static_output = self._forward(self._static_input)

    def prepare(self, images: Tensor) -> Tensor:
        """Put ``images`` [B, 3, H, W] fp32 on the device in the path's dtype and memory format."""
        x = self._convert(images)
        if self._graph is None:
            return x
        if x.shape != self._static_input.shape:
            raise ValueError(f"CUDA graph captured for {tuple(self._static_input.shape)}, got {tuple(x.shape)}")
        self._static_input.copy_(x)
        return self._static_input

    def __call__(self, x: Tensor) -> Tensor:
        """[B, 3, H, W] from ``prepare`` -> [B, N, 4 + nc] in the path's dtype."""
        if self._graph is None:
            return self._forward(x)
        if x is not self._static_input:
            self._static_input.copy_(x)
        self._graph.replay()
        return self._static_output


def output_diff(output: Tensor, reference: Tensor) -> tuple[float, float]:
    """Largest absolute difference of boxes (pixels) and of scores between two [B, N, 4 + nc] detector outputs."""
    delta = (output.float() - reference.float()).abs()
    return float(delta[..., :4].max()), float(delta[..., 4:].max())


@dataclass(frozen=True)
class Check:
    """The outcome of comparing one path's output with the fused fp32 reference."""

    name: str
    box_px: float
    score: float
    box_tol_px: float
    score_tol: float

    @property
    def ok(self) -> bool:
        # written so that a NaN difference fails
        return self.box_px <= self.box_tol_px and self.score <= self.score_tol

    @classmethod
    def of(cls, name: str, output: Tensor, reference: Tensor, precision: str, imgsz: int) -> Check:
        """``output`` against ``reference``, held to the tolerance of ``precision`` on the device that computed it."""
        box_frac, score_tol = tolerance(precision, output.device)
        box_px, score = output_diff(output, reference)
        return cls(name, box_px, score, box_frac * imgsz, score_tol)
