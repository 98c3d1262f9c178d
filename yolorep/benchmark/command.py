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
from yolorep.checks import check_at_least, check_imgsz
from yolorep.engine.backends.pytorch import imgsz_or_trained
from yolorep.engine.checkpoint import load_checkpoint
from yolorep.engine.device import select_device
from yolorep.engine.exporter import CALIB_IMAGES
from yolorep.errors import YolorepError
from yolorep.nn.fuse import fused_copy, randomize_batchnorm
from yolorep.nn.model import DetectionModel, build_model

__all__ = ["benchmark", "randomize_for_check", "run_options"]

LOGGER = logging.getLogger(__name__)
DEFAULT_MODEL = "yolorep-n.yaml"


def benchmark(
    model: str | None = None,
    weights: str | None = None,
    half: bool = False,
    bf16: bool = False,
    channels_last: bool = False,
    compile: bool = False,
    cuda_graph: bool = False,
    iters: int | None = None,
    warmup: int | None = None,
    json: str | None = None,
    sweep: bool = False,
    train: bool = False,
    out: str = "runs/benchmark",
    imgsz: int | None = None,
    batch: int = 1,
    device: str | None = None,
    epoch: bool = False,
    epochs: int = 2,
    formats: str | None = None,
    data: str | None = None,
    calib: int = CALIB_IMAGES,
    workers: int | None = None,
    cache: bool | str = "auto",
) -> dict[str, Any]:
    """Measure the unfused and the fused model (or, with ``train``, training steps; with ``epoch``, where whole
    training epochs spend their time; with ``formats``, the exported formats) and log a table.

    Args:
        model: model YAML (random weights; default ``yolorep-n.yaml``); exclusive with ``weights``.
        weights: an unfused checkpoint (``last.pt``); the fused model is made from it.
        half: fp16 (CUDA only): weights cast to fp16 or autocast, whichever is faster, chosen by a short probe.
        bf16: bf16, chosen the same way (CPU or CUDA).
        channels_last: NHWC memory format for weights and input.
        compile: ``torch.compile`` (default mode) both models.
        cuda_graph: replay a CUDA graph of each model's forward on a static input (CUDA only).
        iters: timed calls per model (default: enough for a few seconds).
        warmup: untimed calls per model first (default 3 on the CPU, 25 on a GPU).
        json: also write the figures to this file.
        sweep: a grid of batch sizes and image sizes around ``batch`` and ``imgsz``; CSV and plot into ``out``.
        train: time forward + loss + backward + optimizer steps of the unfused model instead.
        out: folder for the sweep's CSV and plot.
        imgsz: square input size in pixels, a multiple of the model's largest stride (default: the size the
            checkpoint was trained at, else 640).
        batch: images per call.
        device: ``cpu``, ``cuda``, ``0``, ... (default: first GPU if any).
        epoch: train ``epochs`` epochs of ``model`` on ``data`` (batch ``batch``, default 16 here) and break each
            epoch's wall time down by phase (``yolorep.benchmark.train_epoch``).
        epochs: with ``epoch``: epochs to time.
        formats: comma-separated formats to export and compare with the fused PyTorch model (``torch``,
            ``torchscript``, ``onnx``, ``openvino``, ``onnx-int8``, ``openvino-int8``; see
            ``yolorep.benchmark.formats``); exports go to ``out/formats``.
        data: with ``epoch``: the dataset trained on (default ``shapes.yaml``); with ``formats``: dataset YAML
            calibrating INT8 and, for trained weights, scoring each format.
        calib: with ``formats``: INT8 calibration images.
        workers: with ``epoch``: data loader workers (default: ``yolorep.engine.device.loader_workers``).
        cache: with ``epoch``: keep decoded images in RAM, as ``train(cache=...)``: ``True``, ``False`` or ``"auto"``.

    Returns:
        The figures written to ``json`` (see docs/BENCHMARKS.md for the keys).
    """
    if epoch:
        return _benchmark_epochs(model, data, imgsz, batch, device, epochs, json, workers, cache)
    dev = select_device(device)
    flags = {"half": half, "bf16": bf16, "channels_last": channels_last, "compile": compile, "cuda_graph": cuda_graph}
    options = run_options(dev, train=train, sweep=sweep, **flags)
    for name, value, least in (("imgsz", imgsz, 1), ("batch", batch, 1), ("iters", iters, 1), ("warmup", warmup, 0)):
        if value is not None and value < least:
            raise YolorepError(f"--{name} {value}: must be at least {least}")
    if formats:
        chosen = [f"--{k.replace('_', '-')}" for k, v in dict(flags, sweep=sweep, train=train).items() if v]
        if chosen:
            raise YolorepError(f"--formats: times each format as exported; drop {' '.join(chosen)}")
        result = _run_formats(formats, model, weights, data, calib, imgsz, batch, dev, iters, warmup, out)
        _write_json(result, json)
        return result
    net, randomized = _load_unfused(model, weights, randomize=not train)
    net.to(dev)
    stride = int(net.stride.max())
    imgsz = check_imgsz(imgsz_or_trained(imgsz, getattr(net, "meta", None)), stride)
    meta = {
        "model": _model_label(net),
        "source": str(weights or model or DEFAULT_MODEL),
        "nc": net.nc,
        **environment(dev),
        "imgsz": imgsz,
        "batch": batch,
        "flags": flags,
        "bn_randomized": randomized,
    }
    # CUDA graphs, streams and events use the current device: make it the benchmarked one
    with torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext():
        result = _run(net, options, meta, stride, train=train, sweep=sweep, out=out, iters=iters, warmup=warmup)
    _write_json(result, json)
    return result


def _write_json(result: dict[str, Any], json: str | None) -> None:
    if json:
        path = Path(json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(jsonlib.dumps(result, indent=2) + "\n")
        LOGGER.info("figures written to %s", path)


def _run_formats(
    formats: str,
    model: str | None,
    weights: str | None,
    data: str | None,
    calib: int,
    imgsz: int | None,
    batch: int,
    device: torch.device,
    iters: int | None,
    warmup: int | None,
    out: str,
) -> dict[str, Any]:
    """``--formats``: a trained checkpoint, or a model YAML with random weights (made non-trivial as for the fuse
    check, so that the output comparison means something)."""
    if model and weights:
        raise YolorepError("--model and --weights: give one; --model builds random weights, --weights loads them")
    random_model = None if weights else randomize_for_check(build_model(model or DEFAULT_MODEL).eval())
    result = benchmark_formats(
        formats, weights=weights, random_model=random_model, data=data, calib=calib, imgsz=imgsz, batch=batch,
        device=device, iters=iters, warmup=warmup, out=out,
    )  # fmt: skip
    LOGGER.info("%s", format_formats_table(result))
    return result


def _run(
    net: DetectionModel,
    options: RunOptions,
    meta: dict[str, Any],
    stride: int,
    *,
    train: bool,
    sweep: bool,
    out: str,
    iters: int | None,
    warmup: int | None,
) -> dict[str, Any]:
    """Run the chosen benchmark, log its table, and return ``meta`` with its figures."""
    batch, imgsz = meta["batch"], meta["imgsz"]
    if train:
        from yolorep.benchmark.train_step import benchmark_train, format_train_table  # imports the loss

        result = {**meta, **benchmark_train(net, options, batch=batch, imgsz=imgsz, iters=iters, warmup=warmup)}
        LOGGER.info("%s", format_train_table(result))
    elif sweep:
        batches, imgszs = sweep_grid(batch, imgsz, options.device, stride)
        title = f"{meta['model']} | {meta['device']}"
        swept = sweep_shapes(
            net, fused_copy(net), options, batches, imgszs, out=out, iters=iters, warmup=warmup, title=title
        )
        result = {**meta, **swept}
        LOGGER.info("%s", format_sweep_table(meta, swept["rows"]))
        LOGGER.info("sweep written to %s and %s", swept["csv"], swept["plot"])
    else:
        compared = compare(net, fused_copy(net), options, batch=batch, imgsz=imgsz, iters=iters, warmup=warmup)
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
    sweep: bool = False,
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
    if sweep and train:
        raise YolorepError("--sweep and --train: choose one; --sweep covers inference only")
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


def _model_label(model: DetectionModel) -> str:
    return f"{model.spec.name}-{model.spec.scale}" if model.spec.scale else model.spec.name


def _benchmark_epochs(
    model: str | None,
    data: str | None,
    imgsz: int | None,
    batch: int,
    device: str | None,
    epochs: int,
    json: str | None,
    workers: int | None,
    cache: bool | str,
) -> dict[str, Any]:
    from yolorep.benchmark.train_epoch import benchmark_epochs, format_epoch_table

    check_at_least(epochs, 1, "--epochs")
    result = benchmark_epochs(
        model or DEFAULT_MODEL, data or "shapes.yaml", imgsz=imgsz or 320, batch=batch if batch > 1 else 16,
        device=device, epochs=epochs, workers=workers, cache=cache,
    )  # fmt: skip
    result.update(environment(select_device(device)), model=model or DEFAULT_MODEL, data=data or "shapes.yaml")
    LOGGER.info("%s", format_epoch_table(result))
    _write_json(result, json)
    return result
