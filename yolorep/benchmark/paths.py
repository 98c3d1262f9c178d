"""The ways the benchmark can run a model ("paths").

A path combines channels-last memory format, reduced precision (fp16 or bf16, either by casting the weights or by
autocast over fp32 weights), ``torch.compile`` and CUDA-graph replay. Every path is checked against the plain fused
model in exact fp32, held to its precision's tolerance (``yolorep.engine.deploy.tolerance``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from yolorep.engine.deploy.tolerance import DTYPE_NAMES, tf32_convs_enabled

__all__ = ["RunOptions", "Runner"]


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
