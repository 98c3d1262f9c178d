"""``yolorep export``: the fused detector written in a deploy format (``registry.FORMATS``) in the precision the
deploy rule picks for this CPU (``precision``: fp32, bf16 where the CPU and runtime have it, INT8 where measured
faster and as accurate) or the one ``--precision`` asks for, then loaded back through its backend and checked
against PyTorch with that precision's tolerance.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from yolorep.checks import check_imgsz
from yolorep.engine.deploy.cpu import cpu_features
from yolorep.engine.deploy.format import DeployFormat, ExportJob
from yolorep.engine.deploy.optional import require_installed
from yolorep.engine.deploy.precision import PrecisionChoice, candidates, explicit_choice, static_choice
from yolorep.engine.deploy.pytorch import load_fused
from yolorep.engine.deploy.quantize import calibration_batches, int8_agreement
from yolorep.engine.deploy.registry import FORMATS
from yolorep.engine.deploy.tolerance import Check, exact_fp32
from yolorep.engine.deploy.trial import choose_by_trial
from yolorep.engine.device import select_device
from yolorep.engine.metadata import ModelMetadata, metadata_of
from yolorep.errors import ArgumentError, YolorepError
from yolorep.options import ExportOptions

__all__ = ["export", "export_path", "max_opset", "requested_precision"]

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


def requested_precision(o: ExportOptions) -> str:
    """``--precision``, with ``--int8`` and ``--half`` as its older spellings (``int8``, ``fp16``).

    Raises:
        ArgumentError: two of them ask for different precisions.
    """
    if o.int8 and o.half:
        raise ArgumentError("--half: not available with --int8; drop --half")
    flag, implied = ("--int8", "int8") if o.int8 else ("--half", "fp16") if o.half else ("", o.precision)
    if flag and o.precision not in ("auto", implied):
        raise ArgumentError(f"{flag} and --precision {o.precision}: choose one (--precision {implied} is {flag})")
    return implied


def _precision_flag(o: ExportOptions, precision: str) -> str:
    """How the user asked for ``precision``, for messages: ``--int8``, ``--half`` or ``--precision bf16``."""
    return "--int8" if o.int8 else "--half" if o.half else f"--precision {precision}"


def _runs(fmt: DeployFormat, precision: str) -> bool:
    """Whether ``fmt`` can be exported in ``precision`` (fp16: as fp16 weights, or as its runtime's precision)."""
    return {
        "auto": True,
        "fp32": True,
        "int8": fmt.int8,
        "fp16": fmt.half or "fp16" in fmt.reduced,
        "bf16": "bf16" in fmt.reduced,
    }[precision]


def _checked_format(o: ExportOptions, precision: str) -> DeployFormat:
    """The format asked for, with the options and precision it supports and the packages it needs (before minutes
    of work)."""
    fmt = FORMATS.get(o.format)
    if fmt is None:
        raise YolorepError(f"--format {o.format}: unknown export format; use one of {', '.join(FORMATS)}")
    if fmt.uses_opset and not MIN_OPSET <= o.opset <= max_opset():
        raise ArgumentError(f"--opset {o.opset}: this model exports with opsets {MIN_OPSET} to {max_opset()}; use 17")
    if o.dynamic and not fmt.dynamic:
        able = [name for name, f in FORMATS.items() if f.dynamic]
        raise ArgumentError(f"--dynamic: not available with --format {fmt.name}; use --format {' or '.join(able)}")
    if not _runs(fmt, precision):
        able = [name for name, f in FORMATS.items() if _runs(f, precision)]
        raise ArgumentError(
            f"{_precision_flag(o, precision)}: not available with --format {fmt.name}; use --format {' or '.join(able)}"
        )
    if precision == "int8" and o.data is None:
        raise ArgumentError(
            f"{_precision_flag(o, precision)}: calibration needs images; add --data DATA.yaml (--calib N of its train "
            f"images set the INT8 ranges, default {ExportOptions.calib})"
        )
    quantizes = precision == "int8" or (precision == "auto" and o.data is not None and fmt.int8)
    purpose = f"--format {fmt.name}{' --precision int8' if quantizes else ''}"
    for module in fmt.packages + (fmt.int8_packages if quantizes else ()):
        require_installed(module, purpose, fmt.extra)
    return fmt


@dataclass(frozen=True)
class _Source:
    """What every precision of one export shares: the fused model on the export device, the example input, the
    metadata before the precision is set, the options, and the calibration batches once read."""

    model: nn.Module
    example: torch.Tensor
    info: ModelMetadata
    options: ExportOptions
    fmt: DeployFormat
    calibration: list[np.ndarray] = field(default_factory=list)

    def calibration_batches(self) -> list[np.ndarray]:
        """``--calib`` letterboxed train images of ``--data`` in batches, read once for every quantized candidate."""
        if not self.calibration:
            o, imgsz = self.options, self.example.shape[2]
            self.calibration.extend(calibration_batches(o.data, imgsz, o.batch, o.calib, self.info.stride))
            n = sum(len(b) for b in self.calibration)
            LOGGER.info("INT8 calibration on %d images of the train split of %s", n, o.data)
        return self.calibration


def _source(o: ExportOptions, fmt: DeployFormat, precision: str) -> _Source:
    device = select_device(o.device)
    if fmt.needs_cuda and device.type != "cuda":
        raise YolorepError(
            f"--format {fmt.name}: builds an engine for the GPU it will run on, and needs a CUDA device, got {device}; "
            "run on the target GPU with --device 0"
        )
    # fp16 weights: traced in fp16 on CUDA, or (half_on_cpu formats) traced in fp32 and converted while writing
    fp16_traced = precision == "fp16" and "fp16" not in fmt.reduced and not fmt.half_on_cpu
    if fp16_traced and device.type != "cuda":
        raise YolorepError(
            f"{_precision_flag(o, precision)}: fp16 export needs a CUDA device, got {device}; add --device 0 or drop "
            f"{_precision_flag(o, precision)}"
        )
    dtype = torch.float16 if fp16_traced else torch.float32
    model = load_fused(o.weights).to(device, dtype).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    info = metadata_of(model)
    imgsz = check_imgsz(o.imgsz or info.imgsz or 640, info.stride)
    example = torch.zeros(o.batch, 3, imgsz, imgsz, device=device, dtype=dtype)
    info = dataclasses.replace(
        info, imgsz=imgsz, batch=o.batch, dynamic=o.dynamic, eval_args=dict(info.eval_args or {}, imgsz=imgsz)
    )
    return _Source(model, example, info, o, fmt)


def _write(source: _Source, precision: str, weights: Path, reason: str) -> Path:
    """Export ``source`` in ``precision`` beside ``weights`` (``fmt.path_for``) and check it through its backend."""
    o, fmt, info = source.options, source.fmt, source.info
    calibration, described = None, ""
    if precision == "int8":
        calibration = source.calibration_batches()
        described = f"{sum(len(b) for b in calibration)} train images of {Path(o.data).name}"
    info = info.with_precision(precision, described, reason)
    path = fmt.path_for(weights, precision == "int8", precision == "fp16")
    LOGGER.info("exporting %s -> %s (input %s %s)", o.weights, path, tuple(source.example.shape), info.precision)
    job = ExportJob(source.model, source.example, path, info, o.opset, calibration)
    fmt.export(job)
    _check_export(fmt, job)
    return path


def _choose(source: _Source, requested: str) -> PrecisionChoice:
    """The precision rule (``precision``): as asked; else measured with ``--data``; else from the CPU's flags."""
    o, fmt, device, cpu = source.options, source.fmt, source.example.device, cpu_features()
    if requested != "auto":
        return explicit_choice(requested, fmt, device, cpu)
    found = candidates(fmt, device, cpu, calibrated=o.data is not None)
    if o.data is None or len(found) == 1:
        return static_choice(fmt, device, cpu, o.data)
    weights = Path(o.weights)
    return choose_by_trial(
        found,
        lambda precision, folder: _write(source, precision, _in(folder, weights), "candidate"),
        fmt, str(o.data), source.example.shape[2], o.batch,
    )  # fmt: skip


def _in(folder: Path, weights: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / weights.name


def export(*args: Any, **kwargs: Any) -> Path:
    """``yolorep export``: write the fused model beside the weights (names: ``export_path``).

    The options are ``ExportOptions``, or its fields as keywords (``export("best.pt", format="onnx")``):
    ``weights`` (checkpoint path); ``format`` (``registry.FORMATS``: onnx, torchscript, openvino, ncnn, tflite, coreml,
    tensorrt); ``imgsz``, the square input size the export is traced (and, without ``dynamic``, fixed) at (default:
    the size the checkpoint was trained at, else 640); ``batch``; ``dynamic`` (batch, height and width become dynamic
    axes, checked at a second shape); ``precision`` (``options.inference.PRECISIONS``; ``auto``, the default, applies
    the deploy rule: bf16 where the format's runtime computes it and the CPU has native bf16, else fp32, and with
    ``data`` the fastest candidate measured within 0.005 mAP50-95 of fp32); ``half`` (``precision="fp16"``: fp16
    weights, traced in fp16 on a CUDA device for onnx, torchscript and tensorrt, converted while writing on any device
    for ncnn, tflite and coreml; OpenVINO's fp16 inference precision); ``opset``; ``device`` to trace on; ``int8``
    (``precision="int8"``: post-training quantization: ONNX Runtime static QDQ for onnx and tensorrt, NNCF for
    openvino, AI Edge Quantizer for tflite) calibrated on ``calib`` train images of ``data``.

    Returns:
        The exported file (a folder for OpenVINO, NCNN and CoreML).
    """
    o = ExportOptions.build(args, kwargs)
    requested = requested_precision(o)
    fmt = _checked_format(o, requested)
    source = _source(o, fmt, requested)
    choice = _choose(source, requested)
    LOGGER.info("precision %s", choice)
    path = _write(source, choice.precision, Path(o.weights), choice.reason)
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
        # held to what the backend computes in: a bf16 file on a CPU without bf16 runs, and is checked, in fp32
        check = Check.of(fmt.name, backend(images), _reference(job.model, images), backend.precision,
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
