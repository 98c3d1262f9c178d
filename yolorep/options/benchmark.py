"""The options of ``yolorep benchmark``: one type per mode, since the modes take different flags.

``--train``, ``--sweep``, ``--epoch`` and ``--formats`` select a mode (``BENCHMARK_MODES``); without one the
fused and unfused models are compared (``BenchmarkOptions``). A flag the chosen mode does not use is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yolorep.errors import ArgumentError
from yolorep.options.fields import Options, at_least, between, option, read_bool
from yolorep.options.train import MAX_IMGSZ, read_cache_mode

__all__ = [
    "BENCHMARK_MODES",
    "BenchmarkOptions",
    "EpochOptions",
    "FormatsOptions",
    "SweepOptions",
    "TrainStepOptions",
    "benchmark_options",
]

_DEVICE = "cpu, cuda, 0, 0,1 ... (default: the first GPU if any, else cpu)"


def _model() -> Any:
    return option(None, "model YAML, random weights (default: yolorep-n.yaml)")


def _weights() -> Any:
    return option(None, "trained unfused checkpoint (last.pt or best.pt)")


def _iters() -> Any:
    return option(None, "timed calls per model or format (default: a few seconds' worth)", check=at_least(1))


def _warmup() -> Any:
    return option(None, "untimed calls per model or format first (default: 3 CPU, 25 GPU)", check=at_least(0))


def _out() -> Any:
    return option("runs/benchmark", "folder for --sweep outputs and --formats exports (out/formats)")


@dataclass(frozen=True)
class _Timed(Options):
    """What every timed mode takes: the model, the shape, the device and how long to time."""

    command = "benchmark"

    model: str | None = _model()
    weights: str | None = _weights()
    half: bool = option(False, "fp16 (CUDA)")
    bf16: bool = option(False, "bf16 (CPU or CUDA)")
    channels_last: bool = option(False, "NHWC memory format")
    compile: bool = option(False, "torch.compile both models")
    iters: int | None = _iters()
    warmup: int | None = _warmup()
    json: str | None = option(None, "also write the figures to this JSON file")
    imgsz: int | None = option(
        None, "square input size (default: the checkpoint's, else 640)", check=between(1, MAX_IMGSZ)
    )
    batch: int = option(1, "images per call", check=at_least(1))
    device: str | None = option(None, _DEVICE)


@dataclass(frozen=True)
class TrainStepOptions(_Timed):
    """``--train``: forward + loss + backward + optimizer steps of the unfused model."""


@dataclass(frozen=True)
class BenchmarkOptions(_Timed):
    """The default mode: the unfused and the fused model side by side."""

    cuda_graph: bool = option(False, "replay a captured CUDA graph (CUDA, fixed shapes)")


@dataclass(frozen=True)
class SweepOptions(BenchmarkOptions):
    """``--sweep``: a grid of batch and image sizes around ``batch`` and ``imgsz``, to a CSV and a plot."""

    out: str = _out()


@dataclass(frozen=True)
class EpochOptions(Options):
    """``--epoch``: real training epochs on a data set, each broken down by phase."""

    command = "benchmark"

    model: str | None = _model()
    data: str = option("shapes.yaml", "dataset YAML trained on")
    imgsz: int = option(320, "training image size", check=between(1, MAX_IMGSZ))
    batch: int = option(16, "images per batch", check=at_least(1))
    device: str | None = option(None, _DEVICE)
    epochs: int = option(2, "epochs timed by --epoch", check=at_least(1))
    json: str | None = option(None, "also write the figures to this JSON file")
    workers: int | None = option(None, "data loader worker processes", check=at_least(0))
    cache: bool | str = option("auto", "keep decoded images in RAM: true, false or auto", convert=read_cache_mode)


@dataclass(frozen=True)
class FormatsOptions(Options):
    """``--formats``: exported formats side by side (latency, agreement and, with data, mAP)."""

    command = "benchmark"

    formats: str = option(
        help="compare deploy paths, e.g. torch,torch-bf16,onnx,openvino-bf16,onnx-int8,ncnn-fp16,tflite-int8, or "
        "auto: every path this machine runs, and the recommended one"
    )
    model: str | None = _model()
    weights: str | None = _weights()
    data: str | None = option(None, "dataset YAML calibrating INT8 and, for trained weights, scoring mAP")
    calib: int = option(64, "INT8 calibration images", check=at_least(1))
    imgsz: int | None = option(
        None, "square input size (default: the checkpoint's, else 640)", check=between(1, MAX_IMGSZ)
    )
    batch: int = option(1, "images per call", check=at_least(1))
    device: str | None = option(None, _DEVICE)
    iters: int | None = _iters()
    warmup: int | None = _warmup()
    out: str = _out()
    json: str | None = option(None, "also write the figures to this JSON file")


# mode flag -> (its options, its help); the order is how a clash is named
BENCHMARK_MODES: dict[str, tuple[type[Options], str]] = {
    "sweep": (SweepOptions, "grid of batch and image sizes -> CSV + plot"),
    "train": (TrainStepOptions, "time training steps (forward + loss + backward + step)"),
    "epoch": (EpochOptions, "train --epochs on --data and break each epoch down by phase"),
    "formats": (FormatsOptions, "compare deploy paths (torch,onnx,openvino-bf16,ncnn-fp16 ...) or auto: every one"),
}


def benchmark_options(kwargs: Mapping[str, Any]) -> Options:
    """The options of the mode ``kwargs`` select (``train=True``, ``formats="onnx"`` ...), built from the rest.

    Raises:
        ArgumentError: two modes, or a flag the chosen mode does not take.
    """
    kwargs = dict(kwargs)
    chosen = [m for m in BENCHMARK_MODES if m != "formats" and read_bool(kwargs.pop(m, False) or False)]
    chosen += ["formats"] if kwargs.get("formats") else []
    if len(chosen) > 1:
        flags = " and ".join(f"--{m}" for m in chosen)
        raise ArgumentError(f"{flags}: choose one; --sweep covers inference only, --epoch whole training epochs")
    cls = BENCHMARK_MODES[chosen[0]][0] if chosen else BenchmarkOptions
    names = {f.name for f, _ in cls.specs()}
    extra = [k for k, v in kwargs.items() if k not in names and v not in (None, False)]
    if extra:
        mode = f"--{chosen[0]}" if chosen else "the fused/unfused comparison"
        flags = " ".join("--" + k.replace("_", "-") for k in extra)
        raise ArgumentError(f"{flags}: not used by benchmark {mode}; drop it")
    return cls.from_kwargs({k: v for k, v in kwargs.items() if k in names})
