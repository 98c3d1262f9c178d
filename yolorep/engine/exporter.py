"""Export the fused detector to ONNX, TorchScript or OpenVINO (fp32, or INT8 after calibration), and check the
export against PyTorch.

Exported graph: input ``images`` [B, 3, H, W] float RGB in 0..1, output ``output0`` [B, N, 4 + nc] (boxes xyxy in
input pixels, then class scores), exactly what ``DecodedModel`` returns; NMS is left to the caller. Every file
carries ``ModelMetadata`` (class names, image size, stride, precision ...), so ``yolorep val`` and ``predict`` run
it alone. onnx and onnxruntime (``pip install 'yolorep[export]'``), openvino and nncf
(``pip install 'yolorep[openvino]'``) are optional and imported only when used.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from yolorep.atomic import atomic_path
from yolorep.checks import check_imgsz
from yolorep.engine.backends import load_backend, load_fused
from yolorep.engine.backends.pytorch import imgsz_or_trained, model_metadata
from yolorep.engine.device import select_device
from yolorep.engine.metadata import ModelMetadata
from yolorep.engine.openvino_export import export_openvino
from yolorep.engine.optional import require
from yolorep.engine.quantize import calibration_batches, int8_agreement, quantize_onnx
from yolorep.errors import ArgumentError, YolorepError
from yolorep.options import ExportOptions

__all__ = [
    "CALIB_IMAGES",
    "device_constants",
    "export",
    "export_onnx",
    "export_path",
    "export_torchscript",
    "max_difference",
]

LOGGER = logging.getLogger(__name__)

# format -> what follows the weights' stem in the output name
FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript", "openvino": "_openvino_model"}
INT8_FORMATS = ("onnx", "openvino")
CALIB_IMAGES = ExportOptions.calib  # default --calib: train images that set the INT8 ranges
MIN_OPSET = 11  # the head's chunk of the box distances has no export before opset 11
# Largest allowed |export - PyTorch|, relative to the output's scale (pixels for boxes, 1 for scores).
TOLERANCE = {torch.float32: 1e-3, torch.float16: 2e-2}


def max_difference(expected: torch.Tensor, actual: torch.Tensor) -> tuple[float, float]:
    """Largest absolute difference between two [B, N, 4 + nc] outputs, and the tolerance it must meet.

    Boxes (pixels) and scores (0..1) are compared on their own scales, so a score error is not hidden by the
    size of pixel coordinates. Returns ``(difference relative to scale, largest absolute difference)``.
    """
    expected, actual = expected.float().cpu(), actual.float().cpu()
    if expected.shape != actual.shape:
        raise YolorepError(f"export: output shape {tuple(actual.shape)} differs from PyTorch {tuple(expected.shape)}")
    diff = (expected - actual).abs()
    box_scale = expected[..., :4].abs().max().clamp(min=1.0)
    relative = max(float(diff[..., :4].max() / box_scale), float(diff[..., 4:].max()))
    return relative, float(diff.max())


def _check(name: str, expected: torch.Tensor, actual: torch.Tensor, dtype: torch.dtype) -> float:
    """Log the largest difference; raise YolorepError when it is out of tolerance."""
    relative, absolute = max_difference(expected, actual)
    tolerance = TOLERANCE[dtype]
    LOGGER.info(
        "%s check on %s: largest |difference| %.3g (%.3g relative to output scale, tolerance %.0e)",
        name, tuple(expected.shape), absolute, relative, tolerance,
    )  # fmt: skip
    if not relative <= tolerance:  # also catches NaN
        raise YolorepError(
            f"export: {name} output differs from PyTorch by {absolute:.3g} ({relative:.3g} relative, tolerance "
            f"{tolerance:.0e}); the exported file is wrong; try another --opset or report it"
        )
    return absolute


def _metadata(model: nn.Module, imgsz: int, batch: int, dynamic: bool, half: bool) -> ModelMetadata:
    """The fused model's metadata at the export shape; the stored evaluation settings take the export size."""
    info = model_metadata(model, "fp16" if half else "fp32")
    eval_args = dict(info.eval_args or {}, imgsz=imgsz)
    return dataclasses.replace(info, imgsz=imgsz, batch=batch, dynamic=dynamic, eval_args=eval_args)


def export_onnx(model: nn.Module, x: torch.Tensor, path: Path, opset: int, dynamic: bool, meta: dict[str, str]) -> Path:
    """Export with the TorchScript-based exporter, add ``meta`` as metadata_props, check the graph and outputs.

    The dynamo exporter needs onnxscript, which yolorep does not depend on; the TorchScript-based one handles this
    model's shape arithmetic (anchor points from feature-map sizes) for dynamic axes as well.
    """
    try:
        import onnx
    except ImportError:
        raise YolorepError("export: --format onnx needs the onnx package; pip install 'yolorep[export]'") from None
    kwargs: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    if dynamic:
        kwargs["dynamic_axes"] = {
            "images": {0: "batch", 2: "height", 3: "width"},
            "output0": {0: "batch", 1: "anchors"},
        }
    with atomic_path(path) as tmp:  # a full disk or a failed check leaves no .onnx that looks complete
        with warnings.catch_warnings():
            # the exporter warns that it is the legacy one and that iterating over the head's strides is traced
            # unrolled: both expected (the number of levels is fixed)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(
                model, (x,), str(tmp), input_names=["images"], output_names=["output0"], opset_version=opset, **kwargs
            )
        graph = onnx.load(str(tmp))
        _set_onnx_metadata(graph, meta)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(tmp))
    ops = Counter(node.op_type for node in graph.graph.node)
    LOGGER.info("ONNX graph (opset %d): %s", opset, ", ".join(f"{n} {op}" for op, n in ops.most_common()))
    expected_convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    if ops["BatchNormalization"] or ops["Conv"] != expected_convs:
        raise YolorepError(
            f"export: the ONNX graph has {ops['BatchNormalization']} BatchNormalization and {ops['Conv']} Conv nodes "
            f"(expected 0 and {expected_convs}); the model was not exported fused; please report it"
        )
    _verify_onnx(model, path, x, dynamic)
    return path


def _set_onnx_metadata(graph: Any, meta: dict[str, str]) -> None:
    """Replace the ``metadata_props`` of an ``onnx.ModelProto`` with ``meta``."""
    del graph.metadata_props[:]
    for key, value in meta.items():
        graph.metadata_props.add(key=key, value=value)


def _check_inputs(x: torch.Tensor, dynamic: bool, stride: int) -> list[torch.Tensor]:
    """Random inputs to compare outputs on: the export shape and, for dynamic axes, another batch and width."""
    inputs = [torch.rand_like(x)]
    if dynamic:
        inputs.append(torch.rand(x.shape[0] + 1, 3, x.shape[2], max(x.shape[3] - 2 * stride, stride)).to(x))
    return inputs


def _reference(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """PyTorch output in true fp32: cuDNN would otherwise run fp32 convolutions in TF32 on recent GPUs."""
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        return model(images)


def _verify_onnx(model: nn.Module, path: Path, x: torch.Tensor, dynamic: bool) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        LOGGER.warning("export: onnxruntime is not installed; outputs not checked (pip install 'yolorep[export]')")
        return
    # fp32 is checked on the CPU, the reference implementation; fp16 kernels are complete only on CUDA
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    providers = ["CUDAExecutionProvider"] if x.dtype == torch.float16 and has_cuda else ["CPUExecutionProvider"]
    for images in _check_inputs(x, dynamic, int(model.stride.max())):
        try:
            session = ort.InferenceSession(str(path), providers=providers)
            actual = session.run(["output0"], {"images": images.cpu().numpy()})[0]
        except Exception as err:  # onnxruntime raises its own exception types, not importable portably
            if x.dtype != torch.float16 or has_cuda:
                raise
            LOGGER.warning("export: onnxruntime cannot run this fp16 model on the CPU (%s); outputs not checked", err)
            return
        _check("onnxruntime", _reference(model, images), torch.from_numpy(actual), x.dtype)


def export_torchscript(model: nn.Module, x: torch.Tensor, path: Path, dynamic: bool, meta: dict[str, str]) -> Path:
    """Trace the model, store ``meta`` as ``config.txt`` (JSON) in ``_extra_files``, reload and check outputs.

    The trace records the head's shape arithmetic, so the file also runs at other batch and image sizes; with
    ``dynamic`` that is checked.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)  # torch.jit deprecation notice
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(model, x, check_trace=False)
        frozen = device_constants(traced)
        if frozen:  # the file would run only on the device it was traced on
            raise YolorepError(
                f"export: the traced model holds device constants ({', '.join(frozen)}), so "
                f"{path.name} would run only on {x.device}; please report it"
            )
        traced.save(str(path), _extra_files={"config.txt": json.dumps(meta)})
        extra = {"config.txt": ""}
        reloaded = torch.jit.load(str(path), map_location=x.device, _extra_files=extra)
    if json.loads(extra["config.txt"]) != meta:
        raise YolorepError(f"export: {path} does not hold its metadata after reloading; please report it")
    for images in _check_inputs(x, dynamic, int(model.stride.max())):
        with torch.no_grad():
            actual = reloaded(images)
        _check("TorchScript", _reference(model, images), actual, x.dtype)
    return path


def device_constants(module: torch.jit.ScriptModule) -> list[str]:
    """The devices a TorchScript graph has frozen in as constants (a trace records ``torch.arange(...,
    device=...)``'s device); ``torch.jit.load(map_location=...)`` moves weights but not these."""
    graph = module.inlined_graph  # a new graph per access: held while its values are read
    constants = [n.output() for n in graph.nodes() if n.kind() == "prim::Constant"]
    return [str(c.toIValue()) for c in constants if c.type().kind() == "DeviceObjType"]


def export_path(weights: str | Path, format: str, int8: bool = False) -> Path:
    """Where ``export`` writes: ``best.onnx``, ``best_int8.onnx``, ``best.torchscript``, ``best_openvino_model/``,
    ``best_int8_openvino_model/``, beside the weights."""
    weights = Path(weights)
    return weights.with_name(weights.stem + ("_int8" if int8 else "") + FORMATS[format])


def max_opset() -> int:
    """The newest opset torch's TorchScript-based ONNX exporter writes."""
    from torch.onnx import _constants  # private, hence the fallback

    return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 17))


def _check_options(
    format: str, batch: int, half: bool, int8: bool, data: str | Path | None, calib: int, opset: int
) -> None:
    if format not in FORMATS:
        raise YolorepError(f"--format {format}: unknown export format; use one of {', '.join(FORMATS)}")
    if format in ("onnx", "openvino") and not MIN_OPSET <= opset <= max_opset():
        raise ArgumentError(f"--opset {opset}: this model exports with opsets {MIN_OPSET} to {max_opset()}; use 17")
    if int8 and format not in INT8_FORMATS:
        raise ArgumentError(f"--int8: INT8 export is for --format {' or '.join(INT8_FORMATS)}, not {format}")
    if int8 and data is None:
        raise ArgumentError(
            "--int8: calibration needs images; add --data DATA.yaml (--calib N of its train images set the INT8 "
            f"ranges, default {CALIB_IMAGES})"
        )
    if int8 and calib < 1:
        raise ArgumentError(f"--calib {calib}: must be at least 1 image")
    if half and (int8 or format == "openvino"):
        raise ArgumentError(f"--half: not available with {'--int8' if int8 else '--format openvino'}; drop --half")
    # the packages the export needs, before minutes of work rather than after
    needed = {"onnx": ["onnx"], "torchscript": [], "openvino": ["onnx", "openvino"]}[format]
    if int8:
        needed.append("nncf" if format == "openvino" else "onnxruntime.quantization")
    for module in needed:
        require(module, f"--format {format}{' --int8' if int8 else ''}")


def export(*args: Any, **kwargs: Any) -> Path:
    """``yolorep export``: write the fused model beside the weights (names: ``export_path``).

    The options are ``ExportOptions`` (or its fields as keywords): ``weights`` (checkpoint path); ``format``
    (``onnx``, ``torchscript`` or ``openvino``); ``imgsz``, the square input size the export is traced (and,
    without ``dynamic``, fixed) at (default: the size the checkpoint was trained at, else 640); ``batch``;
    ``dynamic`` (batch, height and width become dynamic axes, checked at a second shape); ``half`` (fp16 weights
    and input, on a CUDA device); ``opset``; ``device`` to trace on; ``int8`` (post-training quantization: ONNX
    Runtime static QDQ for onnx, NNCF for openvino) calibrated on ``calib`` train images of ``data``.

    Returns:
        The exported file (a folder for OpenVINO).
    """
    o = ExportOptions.build(args, kwargs)
    weights, format, imgsz, batch, dynamic, half = o.weights, o.format, o.imgsz, o.batch, o.dynamic, o.half
    opset, int8, data, calib = o.opset, o.int8, o.data, o.calib
    _check_options(format, batch, half, int8, data, calib, opset)
    torch_device = select_device(o.device)
    if half and torch_device.type != "cuda":
        raise YolorepError(
            f"--half: fp16 export needs a CUDA device, got {torch_device}; add --device 0 or drop --half"
        )
    model = load_fused(weights)
    dtype = torch.float16 if half else torch.float32
    model = model.to(torch_device, dtype).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    stride = int(model.stride.max())
    imgsz = check_imgsz(imgsz_or_trained(imgsz, getattr(model, "meta", None)), stride)
    x = torch.zeros(batch, 3, imgsz, imgsz, device=torch_device, dtype=dtype)
    path = export_path(weights, format, int8)
    info = _metadata(model, imgsz, batch, dynamic, half)
    precision = "int8" if int8 else info.precision
    LOGGER.info("exporting %s -> %s (input %s %s)", weights, path, tuple(x.shape), precision)
    if format == "torchscript":
        export_torchscript(model, x, path, dynamic, info.to_strings())
    elif format == "onnx" and not int8:
        export_onnx(model, x, path, opset, dynamic, info.to_strings())
    else:
        _export_deployed(model, x, path, opset, info, data, calib if int8 else 0)
    size_mb = sum(f.stat().st_size for f in ([path] if path.is_file() else path.iterdir())) / 1e6
    LOGGER.info("export done: %s (%.1f MB)", path, size_mb)
    return path


def _export_deployed(
    model: nn.Module, x: torch.Tensor, path: Path, opset: int, info: ModelMetadata, data: Any, calib: int
) -> None:
    """ONNX INT8 or OpenVINO (fp32 or INT8, ``calib > 0``): export an fp32 ONNX graph to a temporary folder,
    convert and/or quantize it into ``path``, then check ``path`` through its backend."""
    batches = None
    if calib:
        batches = calibration_batches(data, info.imgsz, info.batch, calib, info.stride)
        n = sum(len(b) for b in batches)
        LOGGER.info("INT8 calibration on %d images of the train split of %s", n, data)
        info = info.with_precision("int8", f"{n} train images of {Path(data).name}")
    with tempfile.TemporaryDirectory(prefix="yolorep_export_") as tmp:
        fp32 = export_onnx(model, x, Path(tmp) / "fp32.onnx", opset, info.dynamic, {})
        if path.suffix == ".onnx":
            quantize_onnx(fp32, path, batches)
            _write_onnx_metadata(path, info.to_strings())
        else:
            export_openvino(fp32, path, info, batches)
    backend = load_backend(path, "cpu")
    if batches is None:  # fp32: the same tolerance as the other exports
        for images in _check_inputs(x, info.dynamic, info.stride):
            _check(backend.format, _reference(model, images.float()), backend(images.float()), torch.float32)
        return
    images = torch.from_numpy(np.concatenate(batches)).to(x.device)
    agreement = int8_agreement(_reference(model, images), backend(images))
    LOGGER.info(
        "INT8 check on the %d calibration images: at the 100 most confident fp32 anchors per image, boxes overlap "
        "fp32's with mean IoU %.3f and class scores differ by %.3g on average (largest %.3g)",
        len(images), agreement["box_iou"], agreement["score_mean"], agreement["score_max"],
    )  # fmt: skip
    if not all(np.isfinite(v) for v in agreement.values()):
        raise YolorepError(f"export: {path} returns non-finite outputs after INT8 quantization; please report it")


def _write_onnx_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx  # present: the graph was just exported with it

    graph = onnx.load(str(path))
    _set_onnx_metadata(graph, meta)
    with atomic_path(path) as tmp:
        onnx.save(graph, str(tmp))
