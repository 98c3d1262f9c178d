"""``yolorep benchmark``: the unfused and the fused model side by side: size, cost, latency and agreement.

Both models see the same input; their timing rounds are interleaved so that background load falls on both alike.
Every fast path (channels-last, fp16/bf16, ``torch.compile``, CUDA graphs) is applied to both models and checked
against the fused model in exact fp32 before anything is timed; a path out of tolerance raises ``YolorepError``.
``--train`` times training steps instead (``benchmark_train``), ``--sweep`` a grid of shapes.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import logging
from pathlib import Path
from typing import Any

import torch

from yolorep.benchmark.compare import compare
from yolorep.benchmark.formats import benchmark_formats
from yolorep.benchmark.paths import RunOptions
from yolorep.benchmark.report import environment, format_formats_table, format_sweep_table, format_table
from yolorep.benchmark.sweep import sweep_grid, sweep_shapes
from yolorep.checks import check_imgsz
from yolorep.engine.checkpoint import load_checkpoint
from yolorep.engine.device import select_device
from yolorep.engine.metadata import metadata_of
from yolorep.errors import YolorepError
from yolorep.nn.fuse import fused_copy, randomize_batchnorm
from yolorep.nn.model import DetectionModel, build_model
from yolorep.options import (
    BenchmarkOptions,
    EpochOptions,
    FormatsOptions,
    Options,
    SweepOptions,
    TrainStepOptions,
    benchmark_options,
)

__all__ = ["benchmark", "randomize_for_check", "run_options"]

LOGGER = logging.getLogger(__name__)
DEFAULT_MODEL = "yolorep-n.yaml"


def benchmark(options: Options | None = None, /, **kwargs: Any) -> dict[str, Any]:
    """Measure the unfused and the fused model (``BenchmarkOptions``) or, with ``train=True``, training steps
    (``TrainStepOptions``); with ``sweep=True`` a grid of shapes (``SweepOptions``); with ``epoch=True`` where whole
    training epochs spend their time (``EpochOptions``); with ``formats="onnx,openvino"`` the exported formats
    (``FormatsOptions``); and log a table. Keywords are the chosen mode's fields (``yolorep.options.benchmark``).

    Returns:
        The figures written to ``json`` (see docs/BENCHMARKS.md for the keys).
    """
    o = options if options is not None else benchmark_options(kwargs)
    if isinstance(o, EpochOptions):
        return _benchmark_epochs(o)
    if isinstance(o, FormatsOptions):
        result = _run_formats(o)
        _write_json(result, o.json)
        return result
    assert isinstance(o, (BenchmarkOptions, TrainStepOptions))
    dev = select_device(o.device)
    flags = {k: getattr(o, k, False) for k in ("half", "bf16", "channels_last", "compile", "cuda_graph")}
    train = isinstance(o, TrainStepOptions)
    run = run_options(dev, **flags, train=train)
    net, randomized = _load_unfused(o.model, o.weights, randomize=not train)
    net.to(dev)
    stride = int(net.stride.max())
    info = metadata_of(net)
    imgsz = check_imgsz(o.imgsz or info.imgsz or 640, stride)
    meta = {
        "model": info.model,
        "source": str(o.weights or o.model or DEFAULT_MODEL),
        "nc": net.nc,
        **environment(dev),
        "imgsz": imgsz,
        "batch": o.batch,
        "flags": flags,
        "bn_randomized": randomized,
    }
    # CUDA graphs, streams and events use the current device: make it the benchmarked one
    with torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext():
        result = _run(net, run, meta, stride, o)
    _write_json(result, o.json)
    return result


def _write_json(result: dict[str, Any], json: str | None) -> None:
    if json:
        path = Path(json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(jsonlib.dumps(result, indent=2) + "\n")
        LOGGER.info("figures written to %s", path)


def _run_formats(o: FormatsOptions) -> dict[str, Any]:
    """``--formats``: a trained checkpoint, or a model YAML with random weights (made non-trivial as for the fuse
    check, so that the output comparison means something)."""
    if o.model and o.weights:
        raise YolorepError("--model and --weights: give one; --model builds random weights, --weights loads them")
    random_model = None if o.weights else randomize_for_check(build_model(o.model or DEFAULT_MODEL).eval())
    result = benchmark_formats(o, random_model, select_device(o.device))
    LOGGER.info("%s", format_formats_table(result))
    return result


def _run(net: DetectionModel, run: RunOptions, meta: dict[str, Any], stride: int, o: Options) -> dict[str, Any]:
    """Run the chosen benchmark, log its table, and return ``meta`` with its figures."""
    batch, imgsz, iters, warmup = meta["batch"], meta["imgsz"], o.iters, o.warmup
    if isinstance(o, TrainStepOptions):
        from yolorep.benchmark.train_step import benchmark_train, format_train_table  # imports the loss

        result = {**meta, **benchmark_train(net, run, batch=batch, imgsz=imgsz, iters=iters, warmup=warmup)}
        LOGGER.info("%s", format_train_table(result))
    elif isinstance(o, SweepOptions):
        grid = sweep_grid(batch, imgsz, run.device, stride)
        title = f"{meta['model']} | {meta['device']}"
        swept = sweep_shapes(net, fused_copy(net), run, grid, out=o.out, iters=iters, warmup=warmup, title=title)
        result = {**meta, **swept}
        LOGGER.info("%s", format_sweep_table(meta, swept["rows"]))
        LOGGER.info("sweep written to %s and %s", swept["csv"], swept["plot"])
    else:
        compared = compare(net, fused_copy(net), run, batch=batch, imgsz=imgsz, iters=iters, warmup=warmup)
        result = {**meta, **compared}
        LOGGER.info("%s", format_table(result))
    return result


def run_options(
    device: torch.device,
    *,
    half: bool = False,
    bf16: bool = False,
    channels_last: bool = False,
    compile: bool = False,
    cuda_graph: bool = False,
    train: bool = False,
) -> RunOptions:
    """Validate the flags for ``device`` and return the path they ask for (precision mode is chosen later)."""
    if half and bf16:
        raise YolorepError("--half and --bf16: choose one reduced precision")
    if half and device.type != "cuda":
        raise YolorepError(f"--half: fp16 needs a CUDA device, got --device {device}; on the CPU use --bf16")
    if bf16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise YolorepError(f"--bf16: {torch.cuda.get_device_name(device)} does not support bf16; use --half")
    if cuda_graph and device.type != "cuda":
        raise YolorepError(
            f"--cuda-graph: CUDA graphs need a CUDA device, got --device {device}; drop the flag or use --device cuda"
        )
    if cuda_graph and train:
        raise YolorepError("--cuda-graph: not available with --train; the training step is timed eagerly")
    dtype = torch.float16 if half else torch.bfloat16 if bf16 else torch.float32
    return RunOptions(device, dtype, channels_last=channels_last, compile=compile, cuda_graph=cuda_graph)


def randomize_for_check(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Make an untrained model's fuse check meaningful; speed is unaffected.

    BatchNorms get random statistics (``yolorep.nn.randomize_batchnorm``: a fresh one is nearly the identity and
    would hide fuse errors), and the class-prediction biases are zeroed: the class prior (about -10) pins every
    score near 0, where any error vanishes.
    """
    randomize_batchnorm(model, seed)
    with torch.no_grad():
        for level in getattr(getattr(model, "head", None), "levels", ()):
            level.cls_pred.bias.zero_()
    return model


def _load_unfused(model: str | None, weights: str | None, randomize: bool) -> tuple[DetectionModel, bool]:
    """The unfused model in eval mode on the CPU, and whether its BatchNorms were randomized."""
    if model and weights:
        raise YolorepError("--model and --weights: give one; --model builds random weights, --weights loads them")
    if weights:
        net = load_checkpoint(weights)
        if net.is_fused:
            raise YolorepError(
                f"--weights {weights}: this checkpoint holds a fused model, and the benchmark compares unfused "
                "against fused; pass the unfused checkpoint it came from (last.pt or best.pt) or --model"
            )
        return net.eval(), False
    net = build_model(model or DEFAULT_MODEL).eval()
    if randomize:
        randomize_for_check(net)
    return net, randomize


def _benchmark_epochs(o: EpochOptions) -> dict[str, Any]:
    from yolorep.benchmark.train_epoch import benchmark_epochs, format_epoch_table

    model = o.model or DEFAULT_MODEL
    result = benchmark_epochs(
        model, o.data, imgsz=o.imgsz, batch=o.batch, device=o.device, epochs=o.epochs, workers=o.workers,
        cache=o.cache,
    )  # fmt: skip
    result.update(environment(select_device(o.device)), model=model, data=o.data)
    LOGGER.info("%s", format_epoch_table(result))
    _write_json(result, o.json)
    return result
