"""``yolorep export``: the fused detector written in a deploy format (``registry.FORMATS``), fp32, fp16 or INT8
after calibration, then loaded back through its backend and checked against PyTorch.

Exported graph: input ``images`` [B, 3, H, W] float RGB in 0..1, output ``output0`` [B, N, 4 + nc] (boxes xyxy in
input pixels, then class scores), exactly what ``DecodedModel`` returns; NMS is left to the caller. Every file
carries ``ModelMetadata`` (class names, image size, stride, precision ...), so ``yolorep val`` and ``predict`` run
it alone.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from yolorep.checks import check_imgsz
from yolorep.engine.deploy.format import DeployFormat, ExportJob
from yolorep.engine.deploy.optional import require_installed
from yolorep.engine.deploy.pytorch import load_fused
from yolorep.engine.deploy.quantize import calibration_batches, int8_agreement
from yolorep.engine.deploy.registry import FORMATS
from yolorep.engine.deploy.tolerance import Check, exact_fp32
from yolorep.engine.device import select_device
from yolorep.engine.metadata import metadata_of
from yolorep.errors import ArgumentError, YolorepError
from yolorep.options import ExportOptions

__all__ = ["export", "export_path", "max_opset"]

LOGGER = logging.getLogger(__name__)
MIN_OPSET = 11  # the head's chunk of the box distances has no export before opset 11


def export_path(weights: str | Path, format: str, int8: bool = False, half: bool = False) -> Path:
    """Where ``export`` writes: ``best.onnx``, ``best_int8.onnx``, ``best.torchscript``, ``best_openvino_model/``,
    ``best_int8_openvino_model/``, ``best_fp16_ncnn_model/``, ``best_int8.tflite`` ..., beside the weights."""
    return FORMATS[format].path_for(weights, int8, half)


def max_opset() -> int:
    """The newest opset torch's TorchScript-based ONNX exporter writes."""
    from torch.onnx import _constants  # private, hence the fallback

    return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 17))


def _checked_format(o: ExportOptions) -> DeployFormat:
    """The format asked for, with the options it supports and the packages it needs (before minutes of work)."""
    fmt = FORMATS.get(o.format)
    if fmt is None:
        raise YolorepError(f"--format {o.format}: unknown export format; use one of {', '.join(FORMATS)}")
    if fmt.uses_opset and not MIN_OPSET <= o.opset <= max_opset():
        raise ArgumentError(f"--opset {o.opset}: this model exports with opsets {MIN_OPSET} to {max_opset()}; use 17")
    for flag, supported in (("--int8", fmt.int8), ("--half", fmt.half), ("--dynamic", fmt.dynamic)):
        if getattr(o, flag.removeprefix("--")) and not supported:
            able = [name for name, f in FORMATS.items() if getattr(f, flag.removeprefix("--"))]
            raise ArgumentError(f"{flag}: not available with --format {fmt.name}; use --format {' or '.join(able)}")
    if o.int8 and o.half:
        raise ArgumentError("--half: not available with --int8; drop --half")
    if o.int8 and o.data is None:
        raise ArgumentError(
            "--int8: calibration needs images; add --data DATA.yaml (--calib N of its train images set the INT8 "
            f"ranges, default {ExportOptions.calib})"
        )
    purpose = f"--format {fmt.name}{' --int8' if o.int8 else ''}"
    for module in fmt.packages + (fmt.int8_packages if o.int8 else ()):
        require_installed(module, purpose, fmt.extra)
    return fmt


def export(*args: Any, **kwargs: Any) -> Path:
    """``yolorep export``: write the fused model beside the weights (names: ``export_path``).

    The options are ``ExportOptions``, or its fields as keywords (``export("best.pt", format="onnx")``):
    ``weights`` (checkpoint path); ``format`` (``registry.FORMATS``: onnx, torchscript, openvino, ncnn, tflite, coreml,
    tensorrt); ``imgsz``, the square input size the export is traced (and, without ``dynamic``, fixed) at (default:
    the size the checkpoint was trained at, else 640); ``batch``; ``dynamic`` (batch, height and width become dynamic
    axes, checked at a second shape); ``half`` (fp16 weights: traced in fp16 on a CUDA device for onnx, torchscript
    and tensorrt, converted while writing on any device for ncnn, tflite and coreml); ``opset``; ``device`` to trace
    on; ``int8`` (post-training quantization: ONNX Runtime static QDQ for onnx and tensorrt, NNCF for openvino, AI
    Edge Quantizer for tflite) calibrated on ``calib`` train images of ``data``.

    Returns:
        The exported file (a folder for OpenVINO, NCNN and CoreML).
    """
    o = ExportOptions.build(args, kwargs)
    fmt = _checked_format(o)
    device = select_device(o.device)
    if fmt.needs_cuda and device.type != "cuda":
        raise YolorepError(
            f"--format {fmt.name}: builds an engine for the GPU it will run on, and needs a CUDA device, got {device}; "
            "run on the target GPU with --device 0"
        )
    if o.half and not fmt.half_on_cpu and device.type != "cuda":
        raise YolorepError(f"--half: fp16 export needs a CUDA device, got {device}; add --device 0 or drop --half")
    # formats that convert to fp16 while writing are traced in fp32; the others trace the fp16 model on CUDA
    dtype = torch.float16 if o.half and not fmt.half_on_cpu else torch.float32
    model = load_fused(o.weights).to(device, dtype).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    info = metadata_of(model, "fp16" if o.half else "fp32")
    imgsz = check_imgsz(o.imgsz or info.imgsz or 640, info.stride)
    example = torch.zeros(o.batch, 3, imgsz, imgsz, device=device, dtype=dtype)
    info = dataclasses.replace(
        info, imgsz=imgsz, batch=o.batch, dynamic=o.dynamic, eval_args=dict(info.eval_args or {}, imgsz=imgsz)
    )
    calibration = None
    if o.int8:
        calibration = calibration_batches(o.data, imgsz, o.batch, o.calib, info.stride)
        n = sum(len(b) for b in calibration)
        LOGGER.info("INT8 calibration on %d images of the train split of %s", n, o.data)
        info = info.with_precision("int8", f"{n} train images of {Path(o.data).name}")
    path = fmt.path_for(o.weights, o.int8, o.half)
    LOGGER.info("exporting %s -> %s (input %s %s)", o.weights, path, tuple(example.shape), info.precision)
    job = ExportJob(model, example, path, info, o.opset, calibration)
    fmt.export(job)
    _check_export(fmt, job)
    size_mb = sum(f.stat().st_size for f in ([path] if path.is_file() else path.rglob("*")) if f.is_file()) / 1e6
    LOGGER.info("export done: %s (%.1f MB)", path, size_mb)
    return path


def _check_inputs(x: torch.Tensor, dynamic: bool, stride: int) -> list[torch.Tensor]:
    """Random inputs to compare outputs on: the export shape and, for dynamic axes, another batch and width."""
    inputs = [torch.rand_like(x)]
    if dynamic:
        inputs.append(torch.rand(x.shape[0] + 1, 3, x.shape[2], max(x.shape[3] - 2 * stride, stride)).to(x))
    return inputs


def _reference(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """PyTorch output in true fp32 (no TF32 on recent GPUs)."""
    with torch.no_grad(), exact_fp32():
        return model(images)


def _check_export(fmt: DeployFormat, job: ExportJob) -> None:
    """Load the written file through its backend and compare its outputs with the model's: within the tolerance
    of its precision (``tolerance.TOLERANCES``), or for INT8 by agreement on the calibration images."""
    device = job.example.device
    if not fmt.runs_here():
        LOGGER.warning("export: %s does not run on %s; outputs not checked here", fmt.name, sys.platform)
        return
    missing = [m for m in fmt.runtime if importlib.util.find_spec(m) is None]
    if missing:
        LOGGER.warning("export: %s is not installed; outputs not checked (pip install 'yolorep[%s]')", missing[0],
                       fmt.extra)  # fmt: skip
        return
    try:
        backend = fmt.backend(job.path, device)
    except YolorepError:
        raise
    except Exception as err:  # runtimes raise their own exception types, not importable portably
        if job.info.precision != "fp16" or device.type == "cuda":
            raise
        LOGGER.warning("export: %s cannot run this fp16 model on %s (%s); outputs not checked", fmt.name, device, err)
        return
    if job.calibration is not None:
        _check_int8(job, backend)
        return
    for images in _check_inputs(job.example, job.info.dynamic, job.info.stride):
        check = Check.of(fmt.name, backend(images), _reference(job.model, images), job.info.precision,
                         max(images.shape[2:]))  # fmt: skip
        LOGGER.info(
            "%s check on %s: largest |difference| %.3g px in boxes (tolerance %.3g), %.3g in scores (tolerance %.3g)",
            fmt.name, tuple(images.shape), check.box_px, check.box_tol_px, check.score, check.score_tol,
        )  # fmt: skip
        if not check.ok:
            raise YolorepError(
                f"export: {fmt.name} output differs from PyTorch by {check.box_px:.3g} px in boxes and "
                f"{check.score:.3g} in scores (tolerances {check.box_tol_px:.3g} px, {check.score_tol:.3g}); the "
                "exported file is wrong; try another --opset or report it"
            )


def _check_int8(job: ExportJob, backend: Any) -> None:
    images = torch.from_numpy(np.concatenate(job.calibration)).to(job.example.device)
    agreement = int8_agreement(_reference(job.model, images), backend(images))
    LOGGER.info(
        "INT8 check on the %d calibration images: at the 100 most confident fp32 anchors per image, boxes overlap "
        "fp32's with mean IoU %.3f and class scores differ by %.3g on average (largest %.3g)",
        len(images), agreement["box_iou"], agreement["score_mean"], agreement["score_max"],
    )  # fmt: skip
    if not all(np.isfinite(v) for v in agreement.values()):
        raise YolorepError(f"export: {job.path} returns non-finite outputs after INT8 quantization; please report it")
