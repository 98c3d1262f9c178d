"""One tolerance table and one output comparison, for everything checked against the fused fp32 PyTorch model:
the benchmark's fast paths (channels-last, fp16/bf16, compile, CUDA graphs) and every exported file.

Boxes are compared in pixels against a tolerance proportional to the input size, class scores (probabilities)
absolutely, so a score error is not hidden by the size of pixel coordinates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["DTYPE_NAMES", "TOLERANCES", "Check", "exact_fp32", "output_diff", "tf32_convs_enabled", "tolerance"]

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
